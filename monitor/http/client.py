"""The shared HTTP client: its limits, how it is built, and its lean request path.

A daemon polling thousands of feeds spends most of a warm cycle making requests
that end in a 304, so per-request overhead matters: one client (one connection
pool) serves every feed, URLs are parsed once, and when no proxy is in play a
request goes straight to the transport, skipping the parts of httpx's send path
(cookies, auth, event hooks) that feeds never use.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any
from urllib.request import getproxies

import httpx

from monitor.errors import SettingsError
from monitor.http.decode import ACCEPT_ENCODING
from monitor.http.transport import AIOHTTP_AVAILABLE, NoCookies, aiohttp_transport, tls_context
from monitor.netguard import AllowList

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
"""The Accept header of a feed request."""


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
    first if installed). httpx's own transport costs several times more CPU per
    request under concurrency (bench/poll.py)."""
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

    def timeout(self) -> httpx.Timeout:
        """The per-phase timeouts as httpx wants them (writes get the read timeout)."""
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.read_timeout,
            pool=self.connect_timeout,
        )


class FeedClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that also lets ``send_once`` reach its transport directly.

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
        """A GET carrying exactly ``headers`` (the caller sets them all) and the client timeout.

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


@functools.lru_cache(maxsize=8192)
def _parse_url(url: str) -> httpx.URL:
    return httpx.URL(url)  # immutable, so one parsed copy can serve every poll


def build_client(limits: FetchLimits) -> httpx.AsyncClient:
    """The one HTTP client the daemon shares across feeds (connection reuse, one pool).

    ``send_following_redirects`` follows redirects itself so that redirect
    bodies are never read; the client's own redirect settings only matter to
    other callers.
    """
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
        timeout=limits.timeout(),
        limits=pool,
        verify=tls_context(),
        cookies=NoCookies(),
        transport=transport,
        headers={
            "User-Agent": limits.user_agent,
            "Accept": FEED_ACCEPT,
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
    if not AIOHTTP_AVAILABLE:
        if limits.transport == "aiohttp":
            raise SettingsError("fetch transport 'aiohttp' needs: pip install httpx-aiohttp")
        log.warning(
            "httpx-aiohttp is not installed: using httpx's own transport, which costs about "
            "ten times more CPU per request (pip install httpx-aiohttp)"
        )
        return None
    return aiohttp_transport(pool)


def build_get(
    client: httpx.AsyncClient, url: str | httpx.URL, headers: dict[str, str]
) -> httpx.Request:
    """A GET for ``url`` with ``headers``, on the lean path when ``client`` is a ``FeedClient``."""
    if isinstance(client, FeedClient):
        return client.feed_request(url, headers)
    return client.build_request("GET", url, headers=headers)


async def send_once(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """One request, streamed and never redirected, straight to the fast transport if any.

    ``AsyncClient.send`` adds cookie handling, auth, event hooks and logging we
    do not use, at as much CPU per request as the aiohttp transport itself (see
    bench/poll.py). Other clients take the normal path. The caller closes the
    response.
    """
    transport = client.direct_transport if isinstance(client, FeedClient) else None
    if transport is None:
        return await client.send(request, stream=True, follow_redirects=False)
    response = await transport.handle_async_request(request)
    response.request = request
    return response
