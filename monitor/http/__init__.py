"""HTTP for untrusted servers, shared by the feed fetch and article pages.

Everything a request to a server we do not control needs, in one place that
both callers use through this public API: the shared client and its limits
(``client``), the aiohttp transport (``transport``), size-bounded decoding
(``decode``), what headers mean for waiting (``headers``), one mapping of
failures to ``FetchError`` (``errors``), one redirect follower with a per-hop
check (``redirects``) and per-host politeness (``politeness``). It knows
nothing about feeds or articles; ``monitor.fetch`` and ``monitor.fulltext`` do.
"""

from monitor.http.client import (
    FEED_ACCEPT,
    FeedClient,
    FetchLimits,
    build_client,
    build_get,
    send_once,
)
from monitor.http.decode import ACCEPT_ENCODING, read_bounded, too_large
from monitor.http.errors import status_error, transport_errors
from monitor.http.headers import (
    MAX_RETRY_AFTER_SECONDS,
    build_user_agent,
    freshness_seconds,
    parse_retry_after,
)
from monitor.http.politeness import HostLimiter, HostPausedError
from monitor.http.redirects import RedirectCheck, send_following_redirects
from monitor.http.transport import NoCookies, tls_context

__all__ = [
    "ACCEPT_ENCODING",
    "FEED_ACCEPT",
    "MAX_RETRY_AFTER_SECONDS",
    "FeedClient",
    "FetchLimits",
    "HostLimiter",
    "HostPausedError",
    "NoCookies",
    "RedirectCheck",
    "build_client",
    "build_get",
    "build_user_agent",
    "freshness_seconds",
    "parse_retry_after",
    "read_bounded",
    "send_following_redirects",
    "send_once",
    "status_error",
    "tls_context",
    "too_large",
    "transport_errors",
]
