"""The aiohttp transport under httpx, and the TLS and cookie settings every client shares.

httpx's own transport spends several times more CPU per request than aiohttp
under concurrency (``bench/poll.py`` measures both), so the feed client sends
through aiohttp via httpx-aiohttp while callers keep httpx's API. The adapter
here fixes what httpx-aiohttp gets wrong for us: it would decompress without a
size limit, keep cookies, and report failures as the wrong httpx exceptions.
The daemon still works without the packages (httpx's own transport).
"""

from __future__ import annotations

import functools
import http.cookiejar
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

try:
    import aiohttp
    import yarl
    from httpx_aiohttp import AiohttpTransport
except ImportError:  # pragma: no cover - exercised only where the packages are missing
    aiohttp = None  # type: ignore[assignment]
    AiohttpTransport = None  # type: ignore[assignment,misc]

AIOHTTP_AVAILABLE = AiohttpTransport is not None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle is slow."""
    return httpx.create_ssl_context()


class NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: one site's cookie must never follow us to another
    request, and a jar that grows with every Set-Cookie is memory we do not need."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


def aiohttp_transport(pool: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The aiohttp-backed transport with ``pool``'s limits (needs ``AIOHTTP_AVAILABLE``)."""
    if not AIOHTTP_AVAILABLE:
        raise RuntimeError("httpx-aiohttp is not installed")
    return _FastTransport(limits=pool, verify=tls_context())


def _httpx_error(cause: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx exception a caller expects for an aiohttp failure.

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


if AIOHTTP_AVAILABLE:

    class _FastTransport(AiohttpTransport):
        """httpx-aiohttp's transport with our session settings, lean requests and error mapping.

        The session never decompresses (``read_bounded`` does, under the size
        limit), keeps no cookies (a feed must not set state that is sent to
        other feeds), and shares one connection pool. Requests are handed to
        aiohttp with already-encoded URLs and cached timeout objects, and errors
        come out as the httpx exceptions ``transport_errors`` maps to error kinds.
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
