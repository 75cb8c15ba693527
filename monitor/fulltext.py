"""Optional full text: fetch the article page for promising items whose feed says too little.

Many feeds carry only a headline and one sentence, which is often too little for
the classifier to tell a story *about* North Korea–Russia ties from one that
mentions a country in passing. For those items only (a country name in the
headline or summary, and a short summary) we fetch the page and add its main
text to the summary, so the classifier sees title + summary + text.

The page is hostile input from a URL an untrusted feed chose: every hop is
checked by monitor.netguard, the fetch has the same time and size bounds as a
feed fetch (overall deadline, size counted after decompression), and the
extraction runs on a small dedicated thread pool so a pathological page can
neither block the event loop nor take the threads the store needs. Any failure
leaves the article exactly as it was: full text is a bonus, never a gate.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import functools
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from monitor.countries import mentions_country
from monitor.errors import FetchError, SettingsError
from monitor.http import (
    ACCEPT_ENCODING,
    FetchLimits,
    HostLimiter,
    NoCookies,
    read_bounded,
    send_following_redirects,
    status_error,
    tls_context,
    transport_errors,
)
from monitor.models import Article
from monitor.netguard import AllowList, as_allow_list, check_public_url, guard_transport
from monitor.normalise import truncate_words

log = logging.getLogger("monitor.fulltext")

DEFAULT_LIMITS = FetchLimits(
    connect_timeout=5.0, read_timeout=10.0, total_timeout=20.0, max_bytes=3_000_000,
    max_redirects=5, max_connections=16,
)
"""Article pages when the caller gives no limits: smaller and faster than a feed's, since
each page is optional. The daemon passes its own, with the size and times of ``[fetch]``."""
MAX_TEXT_CHARS = 5_000
MIN_TEXT_CHARS = 100
"""Less than this is a menu, a cookie notice or "please enable JavaScript", not a story."""
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_ACCEPT_HTML = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
_EXTRACT_WORKERS = 2
_OK_STATUSES = frozenset({200, 203})


# -- the cheap pre-filter --------------------------------------------------------------------


def needs_full_text(
    article: Article,
    terms: tuple[Iterable[str], Iterable[str]],
    *,
    min_summary_chars: int = 200,
) -> bool:
    """Worth fetching the page: a web URL, a short summary, and either country named.

    Either country, not both: a one-line summary about Pyongyang often names
    Moscow only further down the page, and that is exactly the case to catch.
    """
    if not article.url.lower().startswith(("http://", "https://")):
        return False
    if len(article.summary) >= min_summary_chars:
        return False
    return mentions_country(f"{article.title} {article.summary}", terms)


# -- fetching one page -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """An HTML page as fetched: where the redirects ended, the bytes, the declared charset."""

    url: str
    body: bytes
    charset: str | None


def build_fulltext_client(
    limits: FetchLimits = DEFAULT_LIMITS, *, allow: Sequence[str] | AllowList = ()
) -> httpx.AsyncClient:
    """A client for article pages only, separate from the feed client.

    Its transport re-checks every address at connect time (no DNS-rebinding
    window, see monitor.netguard), it ignores proxy settings from the
    environment, keeps no cookies (a page must not plant state for the next
    one) and never follows redirects by itself (``fetch_page`` checks each hop).
    """
    pool = httpx.Limits(
        max_connections=limits.max_connections,
        max_keepalive_connections=min(limits.max_connections, 8),
        keepalive_expiry=limits.keepalive_seconds,
    )
    return httpx.AsyncClient(
        transport=guard_transport(allow=allow, verify=tls_context(), limits=pool),
        timeout=limits.timeout(),
        follow_redirects=False,
        trust_env=False,
        cookies=NoCookies(),
        headers={"User-Agent": limits.user_agent},
    )


async def fetch_page(
    client: httpx.AsyncClient,
    url: str,
    *,
    limits: FetchLimits = DEFAULT_LIMITS,
    allow: Sequence[str] | AllowList = (),
) -> Page:
    """GET an HTML page, checking every redirect hop with netguard; raises ``FetchError``.

    No overall deadline here: ``fetch_full_text`` puts one around fetch and
    extraction together.
    """
    allowed = as_allow_list(allow)
    headers = {
        "User-Agent": limits.user_agent,
        "Accept": _ACCEPT_HTML,
        "Accept-Encoding": ACCEPT_ENCODING,
    }

    async def check_hop(_source: httpx.URL, target: httpx.URL) -> None:
        await check_public_url(str(target), allow=allowed)

    with transport_errors(url):
        # Unlike a feed's URL, the page's first URL is the feed's choice too: checked like a hop.
        await check_public_url(url, allow=allowed)
        request = client.build_request("GET", url, headers=headers)
        response, _moved = await send_following_redirects(
            client, request, limits.max_redirects, check_hop=check_hop
        )
        try:
            return await _read_page(response, limits)
        finally:
            await response.aclose()


async def _read_page(response: httpx.Response, limits: FetchLimits) -> Page:
    if response.status_code not in _OK_STATUSES:
        raise status_error(response)
    mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime and mime not in _HTML_TYPES:
        raise FetchError("not_html", f"content type {mime!r} is not a web page")
    body = await read_bounded(response, limits.max_bytes)
    if not mime and not body.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<":
        raise FetchError("not_html", "no content type and the body does not look like HTML")
    return Page(url=str(response.url), body=body, charset=_charset(response))


def _charset(response: httpx.Response) -> str | None:
    name = response.charset_encoding
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None  # let the extractor sniff the page's own <meta charset>


# -- extraction ------------------------------------------------------------------------------


def extract_text(
    page: Page, *, max_chars: int = MAX_TEXT_CHARS, min_chars: int = MIN_TEXT_CHARS
) -> str | None:
    """The page's main text on one line (no menus, ads or comments), or None if there is none.

    Blocking and CPU-bound: run it off the event loop.
    """
    import trafilatura  # imported here: ~0.3 s, paid only when full text is enabled

    document: str | bytes = page.body
    if page.charset is not None:
        document = page.body.decode(page.charset, errors="replace")
    text = trafilatura.extract(
        document, url=page.url, output_format="txt", favor_precision=True,
        include_comments=False, include_tables=False, include_images=False,
        include_links=False, with_metadata=False,
    )
    text = " ".join((text or "").split())
    if len(text) < min_chars:
        return None
    return truncate_words(text, max_chars)


def require_extractor() -> None:
    """Fail at start-up, not once per article, when full text is on but trafilatura is missing."""
    try:
        import trafilatura  # noqa: F401
    except ImportError as exc:
        raise SettingsError(
            f"fulltext.enabled is true but trafilatura cannot be imported ({exc}): "
            'pip install ".[fulltext]"'
        ) from exc


@functools.cache
def _extractor() -> ThreadPoolExecutor:
    """Threads for extraction only; an extraction cut by the deadline keeps running
    until it ends, and must not do so on the threads the store's calls wait for."""
    return ThreadPoolExecutor(max_workers=_EXTRACT_WORKERS, thread_name_prefix="fulltext")


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    limits: FetchLimits,
    allow: AllowList,
    max_chars: int,
) -> tuple[str | None, FetchError | None]:
    """Fetch and extract within one deadline: (text, None) or (None, why not)."""
    try:
        async with asyncio.timeout(limits.total_timeout):
            page = await fetch_page(client, url, limits=limits, allow=allow)
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(
                _extractor(), functools.partial(extract_text, page, max_chars=max_chars)
            )
    except TimeoutError:
        return None, FetchError("timeout", f"no text within {limits.total_timeout:g}s")
    except FetchError as exc:
        return None, exc
    except Exception as exc:  # an extractor bug must cost one article's extra text, no more
        log.warning("full text of %s failed unexpectedly", url[:300], exc_info=True)
        return None, FetchError("internal", f"{type(exc).__name__}: {exc}")
    if text is None:
        return None, FetchError("no_text", "no main text found on the page")
    return text, None


def _log_failure(url: str, error: FetchError) -> None:
    if error.kind == "internal":
        return  # already logged with its traceback
    level = logging.WARNING if error.kind == "blocked_address" else logging.INFO
    log.log(level, "full text of %s not used (%s): %s", url[:300], error.kind, error)


async def fetch_full_text(
    client: httpx.AsyncClient,
    url: str,
    *,
    limits: FetchLimits = DEFAULT_LIMITS,
    allow: Sequence[str] | AllowList = (),
    max_chars: int = MAX_TEXT_CHARS,
) -> str | None:
    """The article's main text (at most ``max_chars``), or None on any failure, logged once.

    Works with any client because every hop is checked before it is requested;
    with a client from ``build_fulltext_client`` the connect-time check also
    closes the DNS-rebinding window.
    """
    text, error = await _attempt(client, url, limits, as_allow_list(allow), max_chars)
    if error is not None:
        _log_failure(url, error)
    return text


# -- enriching a batch -----------------------------------------------------------------------


def extend_summary(article: Article, text: str) -> Article:
    """The article with ``text`` added to its summary, without repeating headline or lede."""
    if text.startswith(article.title):
        text = text[len(article.title):].lstrip(" .:-")
    if not text:
        return article
    lede = article.summary.rstrip("…").strip()
    summary = text if not lede or lede in text else f"{article.summary} {text}"
    return dataclasses.replace(article, summary=summary)


class FullTextEnricher:
    """The pipeline's enrich step: ``await enricher(articles)`` (see PipelineDeps.enrich).

    One instance per daemon, so its limits hold across all feeds polled at once:
    at most ``max_concurrent`` page fetches in all, ``per_host`` per publisher,
    ``min_gap_seconds`` apart, and a host that answers 429/503 with Retry-After
    is left alone for that long. The limiter is its own, not the feed poller's:
    a feed holding a poller slot while waiting for a page slot on the same
    limiter could deadlock it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        terms: tuple[Iterable[str], Iterable[str]],
        limits: FetchLimits = DEFAULT_LIMITS,
        allow: Sequence[str] | AllowList = (),
        max_concurrent: int = 4,
        per_host: int = 2,
        min_gap_seconds: float = 0.5,
        min_summary_chars: int = 200,
        max_chars: int = MAX_TEXT_CHARS,
        max_per_batch: int = 25,
    ) -> None:
        require_extractor()
        self.client = client
        self.terms = (frozenset(terms[0]), frozenset(terms[1]))
        self.limits = limits
        self.allow = as_allow_list(allow)
        self.min_summary_chars = min_summary_chars
        self.max_chars = max_chars
        self.max_per_batch = max_per_batch
        self._limiter = HostLimiter(
            per_host=min(per_host, max_concurrent), min_gap_seconds=min_gap_seconds,
            global_limit=max_concurrent,
        )

    async def __call__(self, articles: Sequence[Article]) -> list[Article]:
        """The same articles in the same order, some with a longer summary. Never raises
        for a bad page; a feed's first poll fetches at most ``max_per_batch`` pages."""
        out = list(articles)
        picked = [
            i for i, a in enumerate(out)
            if needs_full_text(a, self.terms, min_summary_chars=self.min_summary_chars)
        ]
        if len(picked) > self.max_per_batch:
            log.info(
                "full text: %d candidates from feed %r, fetching the first %d",
                len(picked), out[picked[0]].feed_name, self.max_per_batch,
            )
            picked = picked[: self.max_per_batch]
        results = await asyncio.gather(*(self._one(out[i]) for i in picked))
        for i, article in zip(picked, results, strict=True):
            out[i] = article
        return out

    async def _one(self, article: Article) -> Article:
        async with self._limiter.slot(article.url):
            text, error = await _attempt(
                self.client, article.url, self.limits, self.allow, self.max_chars
            )
        if error is not None:
            _log_failure(article.url, error)
            if error.retry_after:
                self._limiter.pause(article.url, error.retry_after)
            return article
        assert text is not None
        return extend_summary(article, text)


async def enrich(
    articles: Sequence[Article],
    client: httpx.AsyncClient,
    *,
    terms: tuple[Iterable[str], Iterable[str]],
    limits: FetchLimits = DEFAULT_LIMITS,
    allow: Sequence[str] | AllowList = (),
    max_concurrent: int = 4,
    min_summary_chars: int = 200,
    min_gap_seconds: float = 0.5,
) -> list[Article]:
    """One-off form of ``FullTextEnricher`` (its limits hold for this call only)."""
    enricher = FullTextEnricher(
        client, terms=terms, limits=limits, allow=allow, max_concurrent=max_concurrent,
        min_summary_chars=min_summary_chars, min_gap_seconds=min_gap_seconds,
    )
    return await enricher(articles)
