"""B-cubed scores of story assignment on a labelled file, and the threshold search.

    python -m monitor.stories.evaluate [--split frozen|tune|all] [--tune] [--errors]
                                       [--as-daemon] [PATH]

PATH defaults to tests/fixtures/stories/ground_truth.jsonl (one JSON object a line:
id, story, event, split, outlet, style, published, title, summary, url, lang). Items
of the chosen split are replayed in order of time through a fresh StoryIndex, as the
daemon would see them; an item without a date gets the time of the item before it in
the file as its ``seen_at`` (we saw it when we saw its neighbours).

B-cubed (Bagga & Baldwin 1998), per item i with predicted cluster C(i) and labelled
story L(i): precision |C(i) ∩ L(i)| / |C(i)|, recall |C(i) ∩ L(i)| / |L(i)|, each
averaged over items. "Parents per story" is the number of distinct predicted stories
among a labelled story's items, averaged over labelled stories: how many top-level
Slack messages an analyst sees for one development (1.0 is perfect).

``--as-daemon`` scores what the Slack channel will show instead. Every item is first
scored by the shipped classifier (``ArticleClassifier.load(None)`` with the keyword
file's pre-filter, as the daemon runs it); the items then go through the daemon's own
``StoryStage`` in order of time, so only its candidates (a match, or a score of at least
half the threshold) reach the index and the rest are stories of their own. Each story
with a matching member is one top-level message and its other matching members are
thread replies, so the scores are taken over the MATCHING items: B-cubed of the threads
as posted, and "top-level messages per labelled story" (the distinct predicted stories
holding a labelled story's matching items, averaged over labelled stories with at least
one match). The same clustering over every item is printed alongside.

``--tune`` searches a small grid on the tune split only and prints the best settings:
the highest recall (which also means the fewest parents per story) with precision at
least ``MIN_PRECISION`` (a margin over the 0.85 target), else the best F1. With
``--as-daemon`` the grid is scored as the daemon runs (the defaults' provenance).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.models import Article, Verdict
from monitor.stories.index import StoryIndex
from monitor.stories.items import Assignment, StoryItem, item_time
from monitor.stories.names import NameMatcher, default_keywords_path, load_names
from monitor.stories.settings import StorySettings

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "stories" \
    / "ground_truth.jsonl"


@dataclass(frozen=True, slots=True)
class Labelled:
    """One ground-truth line as the evaluation needs it."""

    item: StoryItem
    story: str
    event: str
    split: str


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    parents_per_story: float
    items: int
    stories: int
    predicted: int


def bcubed(predicted: Mapping[str, Hashable], gold: Mapping[str, Hashable]) -> tuple[float, float]:
    """B-cubed (precision, recall) of a clustering; both map item id → cluster label."""
    ids = list(gold)
    if not ids:
        return 1.0, 1.0
    pred_members: dict[Hashable, set[str]] = defaultdict(set)
    gold_members: dict[Hashable, set[str]] = defaultdict(set)
    for i in ids:
        pred_members[predicted[i]].add(i)
        gold_members[gold[i]].add(i)
    precision = recall = 0.0
    for i in ids:
        cluster, story = pred_members[predicted[i]], gold_members[gold[i]]
        both = len(cluster & story)
        precision += both / len(cluster)
        recall += both / len(story)
    return precision / len(ids), recall / len(ids)


def parents_per_story(predicted: Mapping[str, Hashable], gold: Mapping[str, Hashable]) -> float:
    """Mean over labelled stories of the number of predicted stories their items fell into."""
    parents: dict[Hashable, set[Hashable]] = defaultdict(set)
    for i, story in gold.items():
        parents[story].add(predicted[i])
    return sum(len(p) for p in parents.values()) / len(parents) if parents else 1.0


def score(predicted: Mapping[str, Hashable], gold: Mapping[str, Hashable]) -> Scores:
    p, r = bcubed(predicted, gold)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Scores(p, r, f1, parents_per_story(predicted, gold), len(gold),
                  len(set(gold.values())), len(set(predicted[i] for i in gold)))


#: When the replay "sees" an undated item: this long after its labelled story's first
#: dated report (a syndicated copy without a date turns up while the story runs).
UNDATED_DELAY = timedelta(hours=2)


def load(path: str | Path) -> list[Labelled]:
    """Read a labelled JSONL file.

    Every item's ``seen_at`` is its published time. An undated item needs a time at
    which the replay sees it; the daemon would use the moment it first polled it, which
    a file cannot tell, so it is simulated as ``UNDATED_DELAY`` after the first dated
    report of its labelled story (of the file's first item if the story has none).
    The label only places the item in time; it is never shown to the index.
    """
    raw_rows: list[tuple[int, dict[str, object], datetime | None]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                # The file may be appended to while we read it: skip a torn last line.
                continue
            raw_rows.append((number, data, _parse_time(data.get("published"))))
    first_of: dict[str, datetime] = {}
    for _, data, published in raw_rows:
        if published is not None:
            story = str(data["story"])
            first_of[story] = min(first_of.get(story, published), published)
    default = min(first_of.values(), default=datetime(2020, 1, 1, tzinfo=UTC))
    rows: list[Labelled] = []
    for number, data, published in raw_rows:
        story = str(data["story"])
        seen = published or first_of.get(story, default) + UNDATED_DELAY
        item = StoryItem(article_id=str(data.get("id") or f"line-{number}"),
                         title=str(data.get("title") or ""),
                         summary=str(data.get("summary") or ""),
                         published_at=published, source=str(data.get("outlet") or ""),
                         seen_at=seen)
        rows.append(Labelled(item, story, str(data.get("event") or ""),
                             str(data.get("split") or "")))
    return rows


def _parse_time(value: object) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def replay(rows: Sequence[Labelled], settings: StorySettings,
           names: NameMatcher | None) -> dict[str, Assignment]:
    """Assign every item in order of time through a fresh index; article id → Assignment."""
    index = StoryIndex(settings, names)
    out: dict[str, Assignment] = {}
    for row in sorted(rows, key=lambda r: item_time(r.item)):
        index.expire(datetime.fromtimestamp(item_time(row.item), UTC))
        out[row.item.article_id] = index.assign(row.item)
    return out


def evaluate(rows: Sequence[Labelled], settings: StorySettings,
             names: NameMatcher | None) -> tuple[Scores, dict[str, Assignment]]:
    assignments = replay(rows, settings, names)
    predicted = {i: a.story_id for i, a in assignments.items()}
    gold = {r.item.article_id: r.story for r in rows}
    return score(predicted, gold), assignments


def select(rows: Iterable[Labelled], split: str) -> list[Labelled]:
    return [r for r in rows if split == "all" or r.split == split]


# -- the daemon's view: classifier first, only candidates indexed, Slack over matches ------

@dataclass(frozen=True, slots=True)
class DaemonScores:
    """Story scores as the Slack channel shows them (see ``--as-daemon``)."""

    matching: Scores
    """Over the matching items only: B-cubed of the threads as posted, and in
    ``parents_per_story`` the top-level messages per labelled story (stories with a match)."""
    everything: Scores
    """The same clustering over every item (non-candidates are stories of their own)."""
    candidates: int
    matches: int


def _article(item: StoryItem) -> Article:
    """The Article the daemon would have built (an undated item is dated when first seen)."""
    return Article(id=item.article_id, feed_name=item.source, source=item.source,
                   url=f"https://example.invalid/{item.article_id}", title=item.title,
                   summary=item.summary, published_at=item.published_at or item.seen_at,
                   first_seen_at=item.seen_at)


def classify_rows(rows: Sequence[Labelled]) -> dict[str, Verdict]:
    """The shipped classifier's verdicts (with the keyword file's pre-filter, as the
    daemon's default config runs it); article id → Verdict."""
    from monitor.classify import ArticleClassifier  # loads numpy and the model: ~1.5 s
    from monitor.countries import load_prefilter_terms

    classifier = ArticleClassifier.load(None,
                                        prefilter=load_prefilter_terms(default_keywords_path()))
    verdicts = classifier.classify([_article(r.item) for r in rows])
    return {v.article_id: v for v in verdicts}


class _RecordingIndex(StoryIndex):
    """A StoryIndex that keeps every Assignment it hands out, for ``--errors``."""

    def __init__(self, settings: StorySettings, names: NameMatcher | None) -> None:
        super().__init__(settings, names)
        self.given: dict[str, Assignment] = {}

    def assign_many(self, items: Sequence[StoryItem]) -> list[Assignment]:
        out = super().assign_many(items)
        self.given.update(zip((i.article_id for i in items), out, strict=True))
        return out


def replay_as_daemon(rows: Sequence[Labelled], settings: StorySettings,
                     names: NameMatcher | None, verdicts: Mapping[str, Verdict],
                     min_score_fraction: float = 0.5) -> dict[str, Assignment]:
    """Every item in order of time through the daemon's own ``StoryStage`` (so candidate
    selection and expiry are exactly the daemon's); article id → Assignment, where a
    non-candidate gets the story of its own that the stage gives it."""
    from monitor.decide import AlertRules
    from monitor.stories.stage import StoryStage

    index = _RecordingIndex(settings, names)
    clock = [datetime.fromtimestamp(0, UTC)]
    stage = StoryStage(index, rules=AlertRules("evaluate", 0.0, 300), now=lambda: clock[0],
                       min_score_fraction=min_score_fraction)
    out: dict[str, Assignment] = {}
    for row in sorted(rows, key=lambda r: item_time(r.item)):
        article = _article(row.item)
        clock[0] = datetime.fromtimestamp(item_time(row.item), UTC)
        link = stage.link([article], [verdicts[article.id]])[0]
        out[article.id] = index.given.get(article.id) or Assignment(
            link.story_id, link.is_new, None, None, 0.0, "new")
    return out


def evaluate_as_daemon(rows: Sequence[Labelled], settings: StorySettings,
                       names: NameMatcher | None, verdicts: Mapping[str, Verdict],
                       min_score_fraction: float = 0.5,
                       ) -> tuple[DaemonScores, dict[str, Assignment]]:
    """Scores over the matching items (what Slack shows) and over all items."""
    assignments = replay_as_daemon(rows, settings, names, verdicts, min_score_fraction)
    predicted = {i: a.story_id for i, a in assignments.items()}
    gold = {r.item.article_id: r.story for r in rows}
    matching = {i: story for i, story in gold.items() if verdicts[i].match}
    candidates = sum(1 for i in gold if verdicts[i].match
                     or verdicts[i].score >= verdicts[i].threshold * min_score_fraction)
    return DaemonScores(score(predicted, matching), score(predicted, gold), candidates,
                        len(matching)), assignments


#: The grid searched by --tune (on the tune split only).
GRID: dict[str, tuple[float, ...]] = {
    "similar_threshold": (0.14, 0.17, 0.20, 0.25),
    "named_threshold": (0.10, 0.13, 0.16),
    "time_penalty": (0.0, 0.05, 0.1, 0.2),
    "event_weight": (0.35, 0.7),
    "place_weight": (1.5, 2.5),
    "centroid_weight": (0.0, 0.3),
}


#: The tune split must show this B-cubed precision before recall counts. The target on
#: unseen news is 0.85. Scored over every item a margin of 0.03 proved too thin (the
#: frozen split came out 0.075 under the tune split), so the bar is 0.92. Scored as the
#: daemon runs (``--as-daemon``) a bar of 0.90 was tried: its pick lost 0.057 of precision
#: from tune to frozen (0.909 to 0.852), so 0.92 stays for both views.
MIN_PRECISION = 0.92


def tune(rows: Sequence[Labelled], names: NameMatcher | None, base: StorySettings,
         grid: Mapping[str, Sequence[float]] = GRID,
         min_precision: float = MIN_PRECISION,
         verdicts: Mapping[str, Verdict] | None = None) -> list[tuple[StorySettings, Scores]]:
    """Every grid point's scores, best first (see the module docstring for "best").

    With ``verdicts`` the points are scored as the daemon runs (``--as-daemon``: over the
    matching items, parents meaning top-level messages), else over every item.
    """
    results = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        settings = replace(base, **dict(zip(keys, values, strict=True)))
        if settings.named_threshold > settings.similar_threshold:
            continue
        if verdicts is None:
            results.append((settings, evaluate(rows, settings, names)[0]))
        else:
            results.append((settings,
                            evaluate_as_daemon(rows, settings, names, verdicts)[0].matching))

    def rank(result: tuple[StorySettings, Scores]) -> tuple[bool, float, float, float]:
        s = result[1]
        ok = s.precision >= min_precision
        return (ok, s.recall if ok else s.f1, -s.parents_per_story, s.f1)

    return sorted(results, key=rank, reverse=True)


def format_row(name: str, s: Scores) -> str:
    return (f"| {name} | {s.items} | {s.stories} | {s.predicted} | {s.precision:.3f} | "
            f"{s.recall:.3f} | {s.f1:.3f} | {s.parents_per_story:.2f} |")


HEADER = ("| split | items | labelled stories | predicted stories | B³ precision | B³ recall "
          "| B³ F1 | parents/story |\n|---|---:|---:|---:|---:|---:|---:|---:|")


def _errors(rows: Sequence[Labelled], assignments: Mapping[str, Assignment]) -> None:
    by_pred: dict[str, list[Labelled]] = defaultdict(list)
    for row in rows:
        by_pred[assignments[row.item.article_id].story_id].append(row)
    print("\nmerged (a predicted story with items of several labelled stories):")
    for members in by_pred.values():
        if len({m.story for m in members}) > 1:
            for m in members:
                a = assignments[m.item.article_id]
                print(f"  {m.story:28} {a.how:14} {a.score:.2f} {m.item.title[:80]}")
            print()
    print("split (a labelled story spread over several predicted stories):")
    by_gold: dict[str, list[Labelled]] = defaultdict(list)
    for row in rows:
        by_gold[row.story].append(row)
    for story, members in by_gold.items():
        if len({assignments[m.item.article_id].story_id for m in members}) > 1:
            print(f"  [{story}]")
            for m in members:
                a = assignments[m.item.article_id]
                print(f"    {a.story_id[-12:]:12} {a.how:14} {a.score:.2f} {m.item.title[:80]}")


SPLITS = {"frozen": ("frozen",), "tune": ("tune",), "all": ("all",),
          "each": ("tune", "frozen", "all")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.stories.evaluate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH))
    parser.add_argument("--split", default="frozen", choices=tuple(SPLITS),
                        help="which split to score; 'each' scores tune, frozen and all")
    parser.add_argument("--tune", action="store_true",
                        help="search the grid on the tune split and print the best settings")
    parser.add_argument("--as-daemon", action="store_true",
                        help="classify first, index only the daemon's candidates, and score "
                             "what Slack shows (matching items, top-level messages per story)")
    parser.add_argument("--errors", action="store_true", help="list merged and split stories")
    parser.add_argument("--keywords", default=None, help="keyword file (default: config's)")
    parser.add_argument("--no-names", action="store_true", help="ignore the keyword file")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    rows = load(path)
    names = None if args.no_names else load_names(args.keywords)
    settings = StorySettings()
    verdicts = classify_rows(rows) if args.as_daemon else None
    if args.tune:
        ranked = tune(select(rows, "tune"), names, settings, verdicts=verdicts)
        print("best on the tune split" + (" (as the daemon runs)" if verdicts else "") + ":")
        for candidate, s in ranked[:5]:
            changed = {k: getattr(candidate, k) for k in GRID}
            print(f"  P={s.precision:.3f} R={s.recall:.3f} F1={s.f1:.3f} "
                  f"parents={s.parents_per_story:.2f}  {changed}")
        settings = ranked[0][0]
    splits = SPLITS["each"] if args.tune else SPLITS[args.split]
    if verdicts is None:
        print(HEADER)
    for split in splits:
        chosen = select(rows, split)
        if not chosen:
            continue
        if verdicts is None:
            scores, assignments = evaluate(chosen, settings, names)
            print(format_row(split, scores))
            hows = Counter(a.how for a in assignments.values())
            print(f"|   how: {dict(hows)} | | | | | | | |")
            shown = chosen
        else:
            daemon, assignments = evaluate_as_daemon(chosen, settings, names, verdicts)
            print(f"\n{split}: {len(chosen)} items, {daemon.candidates} candidates for the "
                  f"index, {daemon.matches} matching (posted to Slack)")
            print(HEADER.replace("parents/story", "top-level msgs/story", 1)
                  .replace("| split |", "| items scored |", 1))
            print(format_row(f"{split}, matching", daemon.matching))
            print(format_row(f"{split}, all items", daemon.everything))
            shown = [r for r in chosen if verdicts[r.item.article_id].match]
        if args.errors and split in SPLITS[args.split]:
            _errors(shown, assignments)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
