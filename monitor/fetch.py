"""Fetch one feed: conditional GET, hard limits, and every failure as a typed FetchError.

A feed server is an untrusted party. It may be slow, answer forever, redirect in
circles or send a small gzip body that inflates to gigabytes, so every fetch is
bounded in time (per phase and overall) and in size (counted after
decompression), and every way it can go wrong comes back as ``FetchError`` with
a ``kind`` that the pipeline records and the scheduler can back off on.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import http.cookiejar
import logging
import random
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, url2pathname

import httpx

from monitor.errors import FetchError, SettingsError
from monitor.models import Feed, FeedState, FetchResult
from monitor.netguard import AllowList, HopVerdict, as_allow_list, check_redirect_hop
from monitor.politeness import should_refetch_unconditionally

try:  # the fast transport (issue 3, item 7); the daemon still works without it
    import aiohttp
    import yarl
    from httpx_aiohttp import AiohttpTransport
except ImportError:  # pragma: no cover - exercised only where the packages are missing
    aiohttp = None  # type: ignore[assignment]
    AiohttpTransport = None  # type: ignore[assignment,misc]

try:  # brotli is accepted only if it can be decoded in bounded steps (brotli >= 1.2)
    import brotli

    brotli.Decompressor().process(b"", output_buffer_limit=1)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - depends on the install
    brotli = None  # type: ignore[assignment]

log = logging.getLogger("monitor.fetch")

_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
# Only what we can decode ourselves under a size limit (see _BoundedDecoder).
ACCEPT_ENCODING = "gzip, deflate, br" if brotli is not None else "gzip, deflate"
_BROTLI_STEP = 64 * 1024
_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Per-fetch bounds; the defaults suit news feeds, which are rarely over 1 MB."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    user_agent: str = "dprk-russia-news-monitor/0.1 (+https://example.invalid/contact)"
    unconditional_probability: float = 0.01
    """Share of polls sent without validators, so a server whose 304s are wrong
    (it never notices new items) cannot hide a feed from us for ever."""
    transport: str = "auto"
    """"aiohttp" (fast, needs httpx-aiohttp), "httpx" (httpx's own) or "auto" (the
    first if installed). httpx's own transport costs 3-5 ms of CPU per request
    under concurrency; the aiohttp one about a tenth of that (bench/poll.py)."""
    max_connections: int = 100
    keepalive_seconds: float = 30.0
    allow_internal_hosts: AllowList | tuple[str, ...] = ()
    """Hosts/networks a feed's redirect hops may reach although they are internal
    (``fetch.allow_internal_hosts``; see ``netguard.check_redirect_hop``). Config
    strings are parsed once, here."""

    def __post_init__(self) -> None:
        if not isinstance(self.allow_internal_hosts, AllowList):
            object.__setattr__(self, "allow_internal_hosts", AllowList.parse(
                self.allow_internal_hosts, key="fetch.allow_internal_hosts"))


class FeedClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that also lets ``fetch_feed`` reach its transport directly.

    ``direct_transport`` is set only when nothing in the client's own send path
    matters for feeds: no proxy from the environment (httpx would route those
    through its proxy transports). Everything else uses the client as usual.
    """

    def __init__(
        self, *, direct_transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.direct_transport = direct_transport

    def feed_request(self, url: str | httpx.URL, headers: dict[str, str]) -> httpx.Request:
        """A GET carrying exactly ``headers`` (fetch_feed sets them all) and the client timeout.

        ``build_request`` re-parses the URL and merges client headers, cookies
        and params on every call; feeds need none of that, and the URL of a
        feed polled every few minutes is parsed once.
        """
        if self.direct_transport is None:
            return self.build_request("GET", url, headers=headers)
        target = _parse_url(url) if isinstance(url, str) else url
        return httpx.Request(
            "GET", target, headers=headers, extensions={"timeout": self.timeout.as_dict()}
        )


class _NoCookies(http.cookiejar.CookieJar):
    """Feeds get no cookies back: one publisher's cookie must never follow us to another
    request, and a jar that grows with every Set-Cookie is memory we do not need."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


@functools.lru_cache(maxsize=8192)
def _parse_url(url: str) -> httpx.URL:
    return httpx.URL(url)  # immutable, so one parsed copy can serve every poll


def build_client(limits: FetchLimits) -> httpx.AsyncClient:
    """The one HTTP client the daemon shares across feeds (connection reuse, one pool).

    ``fetch_feed`` follows redirects itself so that redirect bodies are never
    read; the client's own redirect settings only matter to other callers.
    """
    timeout = httpx.Timeout(
        connect=limits.connect_timeout,
        read=limits.read_timeout,
        write=limits.read_timeout,
        pool=limits.connect_timeout,
    )
    pool = httpx.Limits(
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_connections,
        keepalive_expiry=limits.keepalive_seconds,
    )
    transport = _transport(limits, pool)
    proxied = any(k in getproxies() for k in ("http", "https", "all"))
    return FeedClient(
        direct_transport=None if proxied else transport,
        follow_redirects=True,
        max_redirects=limits.max_redirects,
        timeout=timeout,
        limits=pool,
        verify=_tls_context(),
        cookies=_NoCookies(),
        transport=transport,
        headers={
            "User-Agent": limits.user_agent,
            "Accept": _ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        },
    )


def _transport(limits: FetchLimits, pool: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The aiohttp transport when wanted and installed; None means httpx's own."""
    if limits.transport not in ("auto", "aiohttp", "httpx"):
        raise SettingsError(
            f"fetch transport {limits.transport!r} is unknown; use auto, aiohttp or httpx"
        )
    if limits.transport == "httpx":
        return None
    if AiohttpTransport is None:
        if limits.transport == "aiohttp":
            raise SettingsError("fetch transport 'aiohttp' needs: pip install httpx-aiohttp")
        log.warning(
            "httpx-aiohttp is not installed: using httpx's own transport, which costs about "
            "ten times more CPU per request (pip install httpx-aiohttp)"
        )
        return None
    return _FastTransport(limits=pool, verify=_tls_context())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~60 ms each time."""
    return httpx.create_ssl_context()


async def fetch_feed(
    client: httpx.AsyncClient,
    feed: Feed,
    state: FeedState | None,
    limits: FetchLimits,
    *,
    rng: random.Random | None = None,
) -> FetchResult:
    """GET the feed (or read a file:// URL) within ``limits``; 304 gives ``body=None``.

    Raises ``FetchError`` for every failure; nothing else escapes for a bad
    server or a bad URL. ``rng`` decides the occasional unconditional fetch
    (see ``FetchLimits.unconditional_probability``); tests pass a seeded one.
    """
    started = time.monotonic()
    try:
        scheme = urlsplit(feed.url).scheme.lower()
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise FetchError("invalid_url", f"{exc}: {feed.url}") from exc
    try:
        async with asyncio.timeout(limits.total_timeout):
            if scheme == "file":
                body = await asyncio.to_thread(_read_file, feed.url, limits.max_bytes)
                return FetchResult(
                    feed_name=feed.name, url=feed.url, final_url=feed.url, status=200,
                    body=body, elapsed_seconds=time.monotonic() - started,
                )
            if scheme not in ("http", "https"):
                raise FetchError("invalid_url", f"unsupported URL scheme {scheme!r}: {feed.url}")
            return await _fetch_http(client, feed, state, limits, started, rng or _RNG)
    except TimeoutError:
        raise FetchError(
            "timeout", f"no complete response within {limits.total_timeout:g}s"
        ) from None


async def _fetch_http(
    client: httpx.AsyncClient,
    feed: Feed,
    state: FeedState | None,
    limits: FetchLimits,
    started: float,
    rng: random.Random,
) -> FetchResult:
    headers = {
        "User-Agent": limits.user_agent,
        "Accept": _ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
    }
    # Validators belong to the URL they came from: after a feed's URL changes in
    # the config, sending the old ETag could get a wrong 304 for the new URL.
    if (
        state is not None
        and feed.url in (state.url, state.moved_to)
        and not should_refetch_unconditionally(rng, limits.unconditional_probability)
    ):
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
    try:
        request = _request(client, feed.url, headers)
        guard = FeedHopGuard(request.url, limits.allow_internal_hosts)
        response, moved_to = await send_following_redirects(
            client, request, limits.max_redirects, check_hop=guard
        )
        moved_to = _savable_move(feed, moved_to, guard)
        try:
            status = response.status_code
            if status == 304:
                return _result(feed, response, None, started, moved_to)
            if status >= 300:
                raise _status_error(response)
            body = await _read_bounded(response, limits.max_bytes)
            return _result(feed, response, body, started, moved_to)
        finally:
            await response.aclose()
    except FetchError:
        raise
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", f"{type(exc).__name__}: {exc or 'timed out'}") from exc
    except httpx.TooManyRedirects as exc:
        raise FetchError("too_many_redirects", str(exc)) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FetchError("invalid_url", f"{exc}: {feed.url}") from exc
    except httpx.NetworkError as exc:
        # Refused, reset or dropped connections: the server or the network, not the feed.
        raise FetchError("connect", f"{type(exc).__name__}: {exc}") from exc
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise FetchError("protocol", f"{type(exc).__name__}: {exc}") from exc


_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})


RedirectCheck = Callable[[httpx.URL, httpx.URL], Awaitable[object]]
"""A per-hop hook: awaited with (the URL that redirected, the target) before the target is
requested; it refuses a hop by raising ``FetchError``. Its return value is ignored."""


async def send_following_redirects(
    client: httpx.AsyncClient,
    request: httpx.Request,
    max_redirects: int,
    *,
    check_hop: RedirectCheck | None = None,
) -> tuple[httpx.Response, str | None]:
    """Send, following up to ``max_redirects`` redirects without reading their bodies.

    The one redirect follower for feeds and article pages; what each allows is
    its ``check_hop`` (feeds: ``FeedHopGuard``; pages: ``netguard.check_public_url``).
    The hook runs before each hop is requested, so a refused hop never gets a
    connection. The first request is not checked here: whether its URL can be
    trusted is the caller's business.

    httpx's own redirect handling reads every intermediate body into memory with
    no size limit; here each hop is closed unread, and the limit is the caller's.
    Also returns where the leading run of permanent (301/308) hops led: the
    feed's new home. A temporary hop ends that run, because what follows it is
    not promised to last. The caller must close the returned response.
    """
    hops = 0
    moved_to: str | None = None
    permanent_so_far = True
    while True:
        response = await _send(client, request)
        try:
            target = _redirect_target(request, response)
        except BaseException:
            await response.aclose()
            raise
        if target is None:
            return response, moved_to
        permanent_so_far = permanent_so_far and response.status_code in _PERMANENT_REDIRECTS
        if permanent_so_far:
            moved_to = str(target)
        await response.aclose()
        hops += 1
        if hops > max_redirects:
            raise FetchError(
                "too_many_redirects", f"more than {max_redirects} redirects (last to {target})"
            )
        if check_hop is not None:
            await check_hop(request.url, target)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        request = _request(client, target, headers)


class FeedHopGuard:
    """The ``check_hop`` of a feed fetch: ``netguard.check_redirect_hop`` for every hop,
    remembering which targets were internal but allowed (never to be saved as a move)."""

    def __init__(self, origin: httpx.URL, allow: AllowList | tuple[str, ...] = ()) -> None:
        self.origin = origin
        self.allow = as_allow_list(allow)
        self.internal: set[str] = set()
        """Targets followed only because the allow-list let them through."""

    async def __call__(self, source: httpx.URL, target: httpx.URL) -> HopVerdict:
        verdict = await check_redirect_hop(target, origin=self.origin, allow=self.allow)
        if verdict == "allowed":
            self.internal.add(str(target))
        return verdict


_refused_moves: dict[str, str] = {}
"""Feed name → the last permanent move not saved for it, so each is logged once, not
once per poll (one entry per feed: bounded however often the target changes)."""


def _savable_move(feed: Feed, moved_to: str | None, guard: FeedHopGuard) -> str | None:
    """The permanent move to report for saving, or None when it leads somewhere internal.

    A saved move becomes the URL every later poll starts from, and the start URL
    is trusted (``check_redirect_hop``), so a move may be saved only to a public
    host or to the host the fetch started on. A 301 to an allow-listed internal
    host is followed on every poll but never saved: the operator puts the new
    URL in the config if the move is genuine.
    """
    if moved_to is None or moved_to not in guard.internal:
        return moved_to
    if _refused_moves.get(feed.name) != moved_to:
        _refused_moves[feed.name] = moved_to
        log.warning(
            "feed %r: permanent redirect from %s to internal address %s followed but not saved "
            "as the feed's new URL (allowed only by fetch.allow_internal_hosts); put it in the "
            "config if the move is genuine", feed.name, feed.url, moved_to,
        )
    return None


def _request(
    client: httpx.AsyncClient, url: str | httpx.URL, headers: dict[str, str]
) -> httpx.Request:
    if isinstance(client, FeedClient):
        return client.feed_request(url, headers)
    return client.build_request("GET", url, headers=headers)


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """One request, straight to the fast transport when the client has one.

    ``AsyncClient.send`` adds cookie handling, auth, event hooks and logging we
    do not use, at about 0.3 ms of CPU per request: as much as the aiohttp
    transport itself (see bench/poll.py). Other clients take the normal path.
    """
    transport = client.direct_transport if isinstance(client, FeedClient) else None
    if transport is None:
        return await client.send(request, stream=True, follow_redirects=False)
    response = await transport.handle_async_request(request)
    response.request = request
    return response


def _redirect_target(request: httpx.Request, response: httpx.Response) -> httpx.URL | None:
    """Where a redirect points, resolved against the request URL; None if not a redirect."""
    if response.status_code not in _REDIRECT_STATUSES:
        return None
    location = response.headers.get("location")
    if location is None:
        return None
    try:
        url = httpx.URL(location)
        if url.scheme and not url.host:  # "http:/path", seen in the wild
            url = url.copy_with(host=request.url.host)
        if url.is_relative_url:
            url = request.url.join(url)
    except httpx.InvalidURL as exc:
        raise FetchError("protocol", f"unusable Location header {location!r}: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise FetchError("invalid_url", f"redirect to a non-HTTP URL refused: {url}")
    return url


def _result(
    feed: Feed, response: httpx.Response, body: bytes | None, started: float,
    moved_to: str | None,
) -> FetchResult:
    return FetchResult(
        feed_name=feed.name,
        url=feed.url,
        final_url=str(response.url),
        status=response.status_code,
        body=body,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        content_type=response.headers.get("content-type"),
        elapsed_seconds=time.monotonic() - started,
        permanent_redirect=moved_to,
        server_min_seconds=freshness_seconds(response.headers),
    )


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


def freshness_seconds(headers: httpx.Headers, *, now: datetime | None = None) -> float | None:
    """How long the server says its answer stays fresh: a floor for the next poll.

    ``Cache-Control: max-age`` wins over ``Expires`` (RFC 9111, 5.3); an
    ``Expires`` is measured against the server's own ``Date`` when present, so
    a server with a wrong clock does not stretch or shrink it. ``no-cache`` and
    ``no-store`` say nothing about how often to poll, so they give None.
    """
    cache_control = headers.get("cache-control", "")
    match = _MAX_AGE.search(cache_control)
    if match:
        return float(match.group(1))
    expires = headers.get("expires")
    if not expires:
        return None
    when = _http_date(expires)
    if when is None:  # "Expires: 0" and other junk mean "already stale"
        return 0.0
    reference = _http_date(headers.get("date", "")) or now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _status_error(response: httpx.Response) -> FetchError:
    status = response.status_code
    reason = response.reason_phrase or "error"
    return FetchError(
        "http_status",
        f"HTTP {status} {reason} from {response.url}",
        status=status,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    # "-0000" dates come back naive from email.utils; HTTP dates are always GMT.
    when = _http_date(value)
    if when is None:
        return None
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


async def _read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    encoding = response.headers.get("content-encoding", "")
    decoder = _BoundedDecoder(encoding, max_bytes)
    if decoder.identity:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(max_bytes, f"Content-Length {declared}")
    parts: list[bytes] = []
    # Whatever size the transport delivers: re-chunking costs CPU and buys nothing,
    # since the decoder bounds its own output whatever the input size.
    raw: AsyncIterator[bytes] = response.aiter_raw()
    async for chunk in raw:
        parts.append(decoder.decode(chunk))
    parts.append(decoder.flush())
    return b"".join(parts)


def _too_large(max_bytes: int, detail: str) -> FetchError:
    return FetchError("too_large", f"body exceeds max_bytes={max_bytes} ({detail})")


class _BoundedDecoder:
    """Undo Content-Encoding while never producing more than ``max_bytes`` in total.

    zlib's ``max_length`` caps each inflate step, so a compression bomb is
    stopped after at most ``max_bytes + 1`` output bytes rather than after the
    whole network chunk has been inflated in memory.
    """

    def __init__(self, content_encoding: str, max_bytes: int) -> None:
        codings = [
            c.strip().lower() for c in content_encoding.split(",") if c.strip()
        ]
        codings = [c for c in codings if c != "identity"]
        known = ("gzip", "x-gzip", "deflate", *(("br",) if brotli is not None else ()))
        if len(codings) > 1 or (codings and codings[0] not in known):
            raise FetchError("protocol", f"unsupported Content-Encoding {content_encoding!r}")
        self._coding = codings[0] if codings else None
        self._max = max_bytes
        self._total = 0
        self._obj = self._new_obj()
        self._deflate_sniffed = False

    @property
    def identity(self) -> bool:
        return self._coding is None

    def _new_obj(self, *, raw_deflate: bool = False) -> Any:
        if self._coding is None:
            return None
        if self._coding == "br":
            return brotli.Decompressor()
        if self._coding == "deflate":
            # "deflate" should be zlib-wrapped, but some servers send raw deflate.
            return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)
        return zlib.decompressobj(zlib.MAX_WBITS | 16)

    def _count(self, out: bytes) -> bytes:
        self._total += len(out)
        if self._total > self._max:
            raise _too_large(self._max, "after decompression" if self._coding else "streamed")
        return out

    def decode(self, data: bytes) -> bytes:
        if self._obj is None:
            return self._count(data)
        if self._coding == "br":
            return self._unbrotli(data)
        try:
            return self._inflate(data)
        except zlib.error as exc:
            if self._coding == "deflate" and not self._deflate_sniffed and self._total == 0:
                self._deflate_sniffed = True
                self._obj = self._new_obj(raw_deflate=True)
                try:
                    return self._inflate(data)
                except zlib.error as exc2:
                    raise FetchError("protocol", f"corrupt deflate body: {exc2}") from exc2
            raise FetchError("protocol", f"corrupt {self._coding} body: {exc}") from exc

    def _inflate(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            budget = self._max - self._total + 1
            piece = self._obj.decompress(data, budget)
            self._deflate_sniffed = True
            # Output that reached the budget has raised too_large in _count, so
            # from here on all of ``data`` has been consumed (no unconsumed_tail).
            out.append(self._count(piece))
            if self._obj.eof and self._obj.unused_data and self._coding != "deflate":
                data = self._obj.unused_data  # next member of a multi-member gzip
                self._obj = self._new_obj()
                continue
            break
        return b"".join(out)

    def _unbrotli(self, data: bytes) -> bytes:
        """Brotli in steps of at most ~64 KB of output.

        brotli's ``output_buffer_limit`` stops the buffer growing only once it
        has passed the limit, and growth is geometric, so one call with the
        whole remaining budget could overshoot it twofold; small steps keep the
        overshoot to one step.
        """
        out: list[bytes] = []
        try:
            while True:
                budget = min(self._max - self._total + 1, _BROTLI_STEP)
                piece = self._obj.process(data, output_buffer_limit=budget)
                data = b""
                out.append(self._count(piece))
                if self._obj.can_accept_more_data():
                    return b"".join(out)
                if not piece:  # cannot happen with a sane decoder; never spin
                    raise FetchError("protocol", "brotli decoder made no progress")
        except brotli.error as exc:
            raise FetchError("protocol", f"corrupt br body: {exc}") from exc

    def flush(self) -> bytes:
        if self._obj is None:
            return b""
        if self._coding == "br":
            if not self._obj.is_finished():
                raise FetchError("protocol", "truncated br body")
            return b""
        try:
            return self._count(self._obj.flush())
        except zlib.error as exc:
            raise FetchError("protocol", f"corrupt {self._coding} body: {exc}") from exc


def _read_file(url: str, max_bytes: int) -> bytes:
    """Read a file:// feed with the same size limit as HTTP (used for local mirrors and tests)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError("invalid_url", f"file URL with a remote host is not supported: {url}")
    path = Path(url2pathname(parts.path))
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise FetchError("file", f"no such file: {path}") from exc
    except OSError as exc:
        raise FetchError("file", f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise _too_large(max_bytes, f"file {path}")
    return data


# -- the aiohttp transport ------------------------------------------------------------------


def _httpx_error(cause: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx exception ``fetch_feed`` expects for an aiohttp failure.

    httpx-aiohttp's own mapping reports a refused connection as a connect
    *timeout* and lets malformed responses escape as raw aiohttp errors; the
    pipeline's error kinds (and the scheduler's back-off) need the real cause.
    """
    message = f"{type(cause).__name__}: {cause}"
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(cause, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(cause, aiohttp.ClientConnectionError):  # reset, disconnected mid-response
        return httpx.ReadError(message)
    if isinstance(cause, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    return httpx.RemoteProtocolError(message)  # bad status line, headers too long, bad chunking


class _AiohttpBody(httpx.AsyncByteStream):
    """An aiohttp response body as an httpx stream: chunks as they arrive, httpx errors."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self) -> None:
        # Back to the pool if the body was read to the end; closed otherwise.
        self._response.release()
        try:
            await self._response.wait_for_close()
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc) from exc


if AiohttpTransport is not None:

    class _FastTransport(AiohttpTransport):
        """httpx-aiohttp's transport with our session settings, lean requests and error mapping.

        The session never decompresses (``_BoundedDecoder`` does, under the size
        limit), keeps no cookies (a feed must not set state that is sent to
        other feeds), and shares one connection pool. Requests are handed to
        aiohttp with already-encoded URLs and cached timeout objects, and errors
        come out as the httpx exceptions ``fetch_feed`` maps to error kinds.
        """

        def get_client(self) -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections or 0,
                keepalive_timeout=self.limits.keepalive_expiry,
                ssl=self.ssl_context,
                ttl_dns_cache=300,
            )
            return aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if not isinstance(self.client, aiohttp.ClientSession):
                self.client = self.get_client()
            # A redirected GET arrives with an unread (empty) body stream; sent
            # as a stream it would go out chunked, with a stray terminator.
            body = await request.aread() or None
            try:
                response = await self.client.request(
                    request.method,
                    yarl.URL(str(request.url), encoded=True),
                    headers=[(k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in request.headers.raw],
                    data=body,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=False,
                    timeout=_client_timeout(request.extensions.get("timeout") or {}),
                    server_hostname=request.extensions.get("sni_hostname"),
                )
            except aiohttp.ClientError as exc:
                raise _httpx_error(exc) from exc
            extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
            if response.reason:
                extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
            return httpx.Response(
                status_code=response.status,
                headers=response.raw_headers,
                stream=_AiohttpBody(response),
                request=request,
                extensions=extensions,
            )

    @functools.lru_cache(maxsize=64)
    def _timeout_for(connect: float | None, read: float | None, pool: float | None
                     ) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)

    def _client_timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
        return _timeout_for(timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
