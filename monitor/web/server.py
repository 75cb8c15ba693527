"""The daemon's HTTP server: /healthz, /readyz, /metrics and the read-only web view.

An aiohttp application on the daemon's own event loop, started by ``run`` after
the scheduler and closed before the store (``run_forever``'s exit stack). Every
store read runs in a worker thread, so a slow query never stalls polling. Nothing
here writes: the view has no forms that change state and no login, which is why
the default address is loopback (put an authenticating proxy in front to share it).

A port that is taken does not stop the daemon: alerting matters more than its
dashboard, so the error is logged and ``run`` goes on without the endpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from monitor.errors import StoreError
from monitor.web import views
from monitor.web.health import Check, Health, Heartbeat
from monitor.web.metrics import CONTENT_TYPE, Metrics
from monitor.web.search import PAGE_SIZE, SearchForm

if TYPE_CHECKING:
    from monitor.alerts.sinks import Sinks
    from monitor.pipeline import PipelineDeps
    from monitor.settings import Settings
    from monitor.store.base import Store


class Monitor(Protocol):
    """What the web view reads of the running daemon (``monitor.app.Monitor``); a
    protocol so this package does not import the composition root that starts it."""

    settings: Settings
    store: Store
    sinks: Sinks
    deps: PipelineDeps
    model_version: str | None

__all__ = ["WebServer"]

log = logging.getLogger("monitor.web")

SECURITY_HEADERS = {
    # No script may run on these pages, whatever a feed managed to put in them.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STORY_HOURS = 72.0
MAX_STORIES = 50

_MONITOR: web.AppKey[Monitor] = web.AppKey("monitor")
_HEALTH: web.AppKey[Health] = web.AppKey("health")
_METRICS: web.AppKey[Metrics] = web.AppKey("metrics")


class WebServer:
    """Serves one daemon's endpoints on ``host:port`` (port 0 picks a free port)."""

    def __init__(self, monitor: Monitor, metrics: Metrics, *, host: str, port: int,
                 scheduler_running: Callable[[], bool]) -> None:
        self.monitor = monitor
        self.metrics = metrics
        self.host = host
        self.port = port
        self.heartbeat = Heartbeat(on_lag=metrics.loop_lag.observe)
        settings = monitor.settings
        self.health = Health(
            heartbeat=self.heartbeat, metrics=metrics, store=monitor.store,
            scheduler_running=scheduler_running,
            model_version=monitor.model_version,
            drain_every=settings.schedule.drain_interval_seconds,
            drain_grace=settings.alerts.lease_seconds + 60,
            ready_poll_age=settings.http.ready_poll_age_seconds,
            polls_expected=any(f.enabled for f in settings.feeds),
        )
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> WebServer:
        await self.heartbeat.__aenter__()
        app = web.Application(middlewares=[_headers])
        app[_MONITOR] = self.monitor
        app[_HEALTH] = self.health
        app[_METRICS] = self.metrics
        app.add_routes([
            web.get("/healthz", healthz), web.get("/readyz", readyz),
            web.get("/metrics", metrics), web.get("/", stories),
            web.get("/feeds", feeds), web.get("/search", search),
            web.get("/style.css", style),
        ])
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self.heartbeat.__aexit__(None, None, None)
            log.error("http: cannot listen on %s:%d (%s); running without the health, "
                      "metrics and web endpoints (set [http] listen or MONITOR_HTTP_LISTEN)",
                      self.host, self.port, exc.strerror or exc)
            return self
        self._runner = runner
        bound = runner.addresses
        if bound:
            self.port = int(bound[0][1])
        log.info("http: health, metrics and the web view on %s/", self.url)
        return self

    @property
    def serving(self) -> bool:
        return self._runner is not None

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            await self.heartbeat.__aexit__(None, None, None)


@web.middleware
async def _headers(request: web.Request, handler):  # type: ignore[no-untyped-def]
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _checks(checks: list[Check]) -> web.Response:
    ok = all(c.ok for c in checks)
    body = {"status": "ok" if ok else "failing",
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}}
    return web.Response(text=json.dumps(body, indent=2) + "\n", status=200 if ok else 503,
                        content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return _checks(request.app[_HEALTH].liveness())


async def readyz(request: web.Request) -> web.Response:
    return _checks(await request.app[_HEALTH].readiness())


async def metrics(request: web.Request) -> web.Response:
    monitor = request.app[_MONITOR]
    registry = request.app[_METRICS]
    try:
        outbox: dict[str, int] | None = await asyncio.to_thread(monitor.store.outbox_counts)
    except StoreError:
        outbox = None
    states = monitor.deps.states.known() if monitor.deps.states is not None else []
    sinks = monitor.sinks
    registry.refresh(outbox=outbox, feeds=states,
                     destinations={d: sinks.health(d).down_since is None
                                   for d in sinks.destinations})
    return web.Response(body=registry.exposition(), headers={"Content-Type": CONTENT_TYPE})


def _page(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def _store_failed(exc: StoreError) -> web.Response:
    body = f"<h1>The database did not answer</h1><p>{views.esc(exc)}</p>"
    return web.Response(text=views.layout("Error", body, here=""), status=503,
                        content_type="text/html", charset="utf-8")


async def stories(request: web.Request) -> web.Response:
    store = request.app[_MONITOR].store
    since = datetime.now(UTC) - timedelta(hours=STORY_HOURS)
    try:
        board = await asyncio.to_thread(store.story_board, since=since, limit=MAX_STORIES)
    except StoreError as exc:
        return _store_failed(exc)
    return _page(views.stories_page(board, hours=STORY_HOURS))


async def feeds(request: web.Request) -> web.Response:
    monitor = request.app[_MONITOR]
    try:
        states = await asyncio.to_thread(monitor.store.all_feed_states)
    except StoreError as exc:
        return _store_failed(exc)
    configured = [(f.name, f.url, f.enabled) for f in monitor.settings.feeds]
    return _page(views.feeds_page(configured, {s.name: s for s in states}))


async def search(request: web.Request) -> web.Response:
    monitor = request.app[_MONITOR]
    form = SearchForm.parse(request.query)
    try:
        hits = await asyncio.to_thread(
            monitor.store.search_articles, form.words, since=form.since_at,
            until=form.until_at, outlet=form.outlet or None, matches_only=form.matches_only,
            limit=PAGE_SIZE + 1, offset=form.offset)
    except StoreError as exc:
        return _store_failed(exc)
    outlets = sorted({f.name for f in monitor.settings.feeds})
    return _page(views.search_page(form, hits[:PAGE_SIZE], outlets,
                                   more=len(hits) > PAGE_SIZE))


async def style(request: web.Request) -> web.Response:
    return web.Response(text=views.STYLE, content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "max-age=300"})
