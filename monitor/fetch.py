"""Fetch one feed: conditional GET, hard limits, and every failure as a typed FetchError.

A feed server is an untrusted party. It may be slow, answer forever, redirect in
circles or send a small gzip body that inflates to gigabytes, so every fetch is
bounded in time (per phase and overall) and in size (counted after
decompression), and every way it can go wrong comes back as ``FetchError`` with
a ``kind`` that the pipeline records and the scheduler can back off on. The
HTTP machinery is ``monitor.http``; what is feed-specific is here: validators
and the occasional unconditional poll, which redirect hops a feed may take and
which moves may be saved, and ``file:`` URLs for replays and local mirrors.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from monitor.errors import FetchError
from monitor.http import (
    ACCEPT_ENCODING,
    FEED_ACCEPT,
    FetchLimits,
    build_get,
    freshness_seconds,
    read_bounded,
    send_following_redirects,
    status_error,
    too_large,
    transport_errors,
)
from monitor.models import Feed, FeedState, FetchResult
from monitor.netguard import AllowList, HopVerdict, as_allow_list, check_redirect_hop

log = logging.getLogger("monitor.fetch")

_RNG = random.Random()


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


def should_refetch_unconditionally(rng: random.Random, probability: float = 0.01) -> bool:
    """True for about ``probability`` of polls: send no validators this time.

    Some servers answer 304 while the feed has changed (a stale ETag behind a
    cache, a Last-Modified that never moves); an occasional full fetch is the
    only way to notice, and dedupe in the store makes it harmless.
    """
    if probability <= 0:
        return False
    return probability >= 1 or rng.random() < probability


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
        "Accept": FEED_ACCEPT,
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
    with transport_errors(feed.url):
        request = build_get(client, feed.url, headers)
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
                raise status_error(response)
            body = await read_bounded(response, limits.max_bytes)
            return _result(feed, response, body, started, moved_to)
        finally:
            await response.aclose()


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
            extra={"feed": feed.name, "url": feed.url},
        )
    return None


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
        raise too_large(max_bytes, f"file {path}")
    return data
