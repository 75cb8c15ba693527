"""The read-only web view: server-rendered HTML, no JavaScript at all.

Feed text is hostile input (any outlet, or anyone who can edit one, writes it), so
every value that reaches a page goes through ``esc`` (``html.escape`` with quotes)
and every link through ``href``, which keeps only http(s) URLs: a
``javascript:`` link in a feed becomes plain text. The pages are also served with
a Content-Security-Policy that allows no script (``monitor.web.server``), so a
mistake here would still not run anything. The templates are plain f-strings: a
handful of pages do not justify a template engine dependency.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from urllib.parse import urlsplit

from monitor.models import FeedState
from monitor.store.base import HIT_END, HIT_START, ArticleHit, StoryAlert, StoryBoardEntry
from monitor.web.search import SearchForm

__all__ = ["esc", "feeds_page", "href", "search_page", "stories_page"]

STYLE = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#dde1e8; --bg:#f6f7f9; --ok:#1f7a3d;
        --warn:#9a6700; --bad:#b42318; --accent:#1f4fb4; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#152238; color:#fff; padding:10px 24px; display:flex; gap:24px;
         align-items:baseline; }
header strong { font-size:16px; }
header a { color:#c9d7ff; text-decoration:none; margin-right:16px; }
header a.here { color:#fff; border-bottom:2px solid #fff; }
main { padding:16px 24px 40px; max-width:1280px; }
h1 { font-size:20px; margin:4px 0 12px; }
a { color:var(--accent); }
.muted { color:var(--muted); }
.story { background:#fff; border:1px solid var(--line); border-radius:6px; margin:0 0 14px;
         padding:10px 14px; }
.story h2 { font-size:16px; margin:0 0 2px; }
table { border-collapse:collapse; width:100%; background:#fff; }
th, td { text-align:left; vertical-align:top; padding:5px 8px;
         border-bottom:1px solid var(--line); }
th { font-size:12px; text-transform:uppercase; letter-spacing:.03em; color:var(--muted); }
.story table { margin-top:8px; }
.reason { font-size:12px; color:var(--muted); max-width:420px; }
.badge { display:inline-block; padding:0 6px; border-radius:9px; font-size:12px;
         border:1px solid var(--line); background:#f0f2f5; white-space:nowrap; }
.sent, .ok, .relevant { color:var(--ok); border-color:#b7dfc3; background:#edf8f0; }
.pending, .in_flight, .warn { color:var(--warn); border-color:#f0d9a8; background:#fdf6e7; }
.failed, .bad, .irrelevant { color:var(--bad); border-color:#f3c3bd; background:#fdf0ee; }
form.search { display:flex; flex-wrap:wrap; gap:10px; align-items:end; background:#fff;
              border:1px solid var(--line); border-radius:6px; padding:10px 14px;
              margin-bottom:14px; }
form.search label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
form.search input[type=text] { width:280px; }
mark { background:#fff1a8; }
.hit { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 14px;
       margin-bottom:8px; }
.pager { margin-top:12px; display:flex; gap:16px; }
.problem { color:var(--bad); }
"""


def esc(value: object) -> str:
    """Text for an element or a quoted attribute; None shows as an empty string."""
    return "" if value is None else html.escape(str(value), quote=True)


def href(url: str | None, text: str) -> str:
    """A link when ``url`` is http(s), else just the (escaped) text: feeds choose URLs."""
    if url and urlsplit(url.strip()).scheme.lower() in ("http", "https"):
        return f'<a href="{esc(url.strip())}" rel="noopener noreferrer">{esc(text)}</a>'
    return esc(text)


def when(value: datetime | None) -> str:
    return esc(f"{value:%Y-%m-%d %H:%M} UTC") if value is not None else "–"


def badge(text: str, kind: str = "") -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


NAV = (("/", "Stories"), ("/feeds", "Feeds"), ("/search", "Search"),
       ("/metrics", "Metrics"), ("/readyz", "Ready?"))


def layout(title: str, body: str, *, here: str) -> str:
    current = ' class="here"'
    links = " ".join(f'<a href="{path}"{current if path == here else ""}>{name}</a>'
                     for path, name in NAV)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · DPRK–Russia monitor</title>"
        '<link rel="stylesheet" href="/style.css"></head>'
        f"<body><header><strong>DPRK–Russia monitor</strong><nav>{links}</nav></header>"
        f"<main>{body}</main></body></html>\n"
    )


# --- stories -----------------------------------------------------------------------
def _label(alert: StoryAlert) -> str:
    if alert.label is None:
        return '<span class="muted">–</span>'
    text, kind = ("relevant", "relevant") if alert.label == 1 else ("not relevant", "irrelevant")
    who = f' <span class="muted">by {esc(alert.labelled_by)}</span>' if alert.labelled_by else ""
    return badge(text, kind) + who


def _status(alert: StoryAlert) -> str:
    out = badge(alert.status.replace("_", " "), alert.status)
    if alert.delivered_at is not None:
        out += f'<div class="muted">{when(alert.delivered_at)}</div>'
    if alert.last_error and alert.status != "sent":
        out += f'<div class="reason">{esc(alert.last_error)}</div>'
    return out


def _story(story: StoryBoardEntry) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{badge(a.kind)}</td>"
        f"<td>{href(a.url, a.title)}<div class=\"muted\">{esc(a.source)} · "
        f"{when(a.published_at)}</div></td>"
        f"<td>{a.score:.2f}</td>"
        f"<td>{esc(a.event_type or '–')}</td>"
        f'<td class="reason">{esc(a.reason)}</td>'
        f"<td>{esc(a.destination)}</td>"
        f"<td>{_status(a)}</td>"
        f"<td>{_label(a)}</td>"
        "</tr>"
        for a in story.alerts)
    return (
        '<section class="story">'
        f"<h2>{href(story.url, story.title)}</h2>"
        f'<div class="muted">{story.member_count} report(s) from {story.source_count} '
        f"outlet(s) · first seen {when(story.first_seen_at)} · last "
        f"{when(story.last_seen_at)} · <code>{esc(story.story_id)}</code></div>"
        "<table><thead><tr><th>alert</th><th>report</th><th>score</th><th>event type</th>"
        "<th>reason</th><th>destination</th><th>status</th><th>label</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def stories_page(stories: Sequence[StoryBoardEntry], *, hours: float) -> str:
    body = (f"<h1>Recent stories</h1><p class=\"muted\">Stories with alerts seen in the last "
            f"{hours:g} h, newest first ({len(stories)} shown).</p>")
    if not stories:
        body += "<p>No story has alerted in this period.</p>"
    body += "".join(_story(s) for s in stories)
    return layout("Stories", body, here="/")


# --- feeds -------------------------------------------------------------------------
def feeds_page(feeds: Iterable[tuple[str, str, bool]],
               states: Mapping[str, FeedState]) -> str:
    """``feeds``: (name, url, enabled) from the config; ``states``: stored rows by name."""
    rows = []
    for name, url, enabled in feeds:
        state = states.get(name)
        errors = state.consecutive_errors if state else 0
        health = ("bad" if errors or (state and state.disabled)
                  else "warn" if state and state.flagged else "ok")
        flags = []
        if not enabled:
            flags.append(badge("off in config", "warn"))
        if state and state.flagged:
            flags.append(badge(state.flagged, "warn"))
        if state and state.disabled:
            flags.append(badge(f"disabled: {state.disabled}", "failed"))
        rows.append(
            "<tr>"
            f"<td>{badge('●', health)} {esc(name)}<div class=\"muted\">{href(url, url)}</div></td>"
            f"<td>{when(state.last_success_at if state else None)}</td>"
            f"<td>{errors}</td>"
            f'<td class="reason">{esc(state.last_error if state and errors else "")}</td>'
            f"<td>{when(state.next_poll_at if state else None)}</td>"
            f"<td>{' '.join(flags)}</td>"
            f"<td>{href(state.moved_to, state.moved_to) if state and state.moved_to else ''}"
            "</td></tr>")
    body = ("<h1>Feed health</h1><table><thead><tr><th>feed</th><th>last success</th>"
            "<th>errors in a row</th><th>last error</th><th>next poll</th><th>flags</th>"
            f"<th>moved to</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return layout("Feeds", body, here="/feeds")


# --- search ------------------------------------------------------------------------
def _snippet(text: str) -> str:
    """Escape first, then turn the store's hit markers into <mark> (the markers are
    private-use characters that ``html.escape`` leaves alone)."""
    return esc(text).replace(HIT_START, "<mark>").replace(HIT_END, "</mark>")


def _hit(hit: ArticleHit) -> str:
    score = f"score {hit.score:.2f}" if hit.score is not None else "not scored"
    tags = badge("match", "sent") if hit.match else ""
    if hit.event_type and hit.match:
        tags += " " + badge(hit.event_type)
    return (f'<div class="hit"><div>{href(hit.url, hit.title)} {tags}</div>'
            f'<div class="muted">{esc(hit.source)} · {when(hit.published_at)} · {score}</div>'
            f"<div>{_snippet(hit.snippet)}</div></div>")


def search_page(form: SearchForm, hits: Sequence[ArticleHit], outlets: Sequence[str], *,
                more: bool) -> str:
    options = '<option value="">any outlet</option>' + "".join(
        f'<option value="{esc(o)}"{" selected" if o == form.outlet else ""}>{esc(o)}</option>'
        for o in outlets)
    checked = " checked" if form.matches_only else ""
    body = (
        f"<h1>Search: {esc(form.words)}</h1>" if form.words else "<h1>Search articles</h1>")
    body += (
        '<form class="search" method="get" action="/search">'
        f'<label>words<input type="text" name="q" value="{esc(form.words)}" '
        'placeholder="e.g. artillery shells Kursk"></label>'
        f'<label>published from<input type="date" name="since" '
        f'value="{esc(form.since.isoformat() if form.since else "")}"></label>'
        f'<label>until<input type="date" name="until" '
        f'value="{esc(form.until.isoformat() if form.until else "")}"></label>'
        f'<label>outlet<select name="outlet">{options}</select></label>'
        f'<label><span><input type="checkbox" name="matches" value="1"{checked}> '
        "matches only</span></label>"
        '<button type="submit">Search</button></form>')
    body += "".join(f'<p class="problem">{esc(p)}</p>' for p in form.problems)
    first = form.offset + 1
    if hits:
        body += (f'<p class="muted">Results {first}–{form.offset + len(hits)}'
                 f"{' (more on the next page)' if more else ''}.</p>")
    else:
        body += "<p>Nothing found.</p>"
    body += "".join(_hit(h) for h in hits)
    pager = []
    if form.page > 1:
        pager.append(f'<a href="{esc(form.page_url(form.page - 1))}">← previous</a>')
    if more:
        pager.append(f'<a href="{esc(form.page_url(form.page + 1))}">next →</a>')
    if pager:
        body += f'<div class="pager">{"".join(pager)}</div>'
    title = f"Search: {form.words}" if form.words else "Search"
    return layout(title, body, here="/search")
