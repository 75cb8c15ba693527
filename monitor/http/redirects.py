"""Following redirects ourselves, one checked hop at a time.

httpx's own redirect handling reads every intermediate body into memory with no
size limit and offers no point at which a hop can be refused before it is
requested. Feeds and article pages need both: each hop is closed unread, and a
per-hop hook decides whether the next URL may be requested at all (feeds:
internal addresses only where the operator allowed them; pages: public
addresses only). Where a run of permanent redirects leads is reported, since
that is a feed's new home.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from monitor.errors import FetchError
from monitor.http.client import build_get, send_once

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
    its ``check_hop``. The hook runs before each hop is requested, so a refused
    hop never gets a connection. The first request is not checked here: whether
    its URL can be trusted is the caller's business.

    Also returns where the leading run of permanent (301/308) hops led: the
    feed's new home. A temporary hop ends that run, because what follows it is
    not promised to last. The caller must close the returned response.
    """
    hops = 0
    moved_to: str | None = None
    permanent_so_far = True
    while True:
        response = await send_once(client, request)
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
        request = build_get(client, target, headers)


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
