"""Composition root: builds the real components from settings and runs them.

One concern, wiring: nothing here decides anything about a feed or an alert.

This is the one place that turns settings into objects (HTTP client, store,
model, deliverer) and hands them to the pipeline and scheduler as parameters.
``run_once`` is the burst mode (one cycle, then exit); ``run_forever`` is the
daemon, which drains gracefully on SIGINT/SIGTERM.

On a database several daemons share (PostgreSQL, ``monitor.claims.shared_backend``)
three parts are wired differently: feeds are claimed with leases by a claim loop
instead of one APScheduler job each, stories are assigned under the store's story
lock (``SharedStories``), and the send pace lives in the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import store as store_backend
from monitor.alerts.base import Deliverer
from monitor.alerts.console import ConsoleDeliverer
from monitor.alerts.notices import Notifier
from monitor.alerts.outbox import DrainOptions, drain_outbox
from monitor.alerts.sinks import Sinks
from monitor.claims import ClaimLoop, ClaimOptions, daemon_owner_id, shared_backend
from monitor.classify import ArticleClassifier
from monitor.classify_pool import ClassifierPool
from monitor.countries import load_country_terms, load_prefilter_terms
from monitor.decide import AlertRules, Route
from monitor.errors import DeliveryError, StoreError
from monitor.feeds import CadencePolicy, FeedStates, LifecyclePolicy
from monitor.http import FetchLimits, HostLimiter, build_client
from monitor.models import Feed
from monitor.parse_pool import ParserPool
from monitor.pipeline import FeedReport, PipelineDeps, run_feed
from monitor.schedule import TaskTracker, build_scheduler
from monitor.settings import RouteSettings, Settings
from monitor.store.base import Store
from monitor.storehealth import StoreHealth

if TYPE_CHECKING:
    from monitor.pipeline import SharedStoryFn, StoryFn
    from monitor.web.metrics import Metrics

log = logging.getLogger("monitor")

SHUTDOWN_GRACE_SECONDS = 15.0
MAX_HOST_PAUSE_WAIT_SECONDS = 30.0
"""A feed whose host asked for a longer pause (429/503) is rescheduled, not queued."""


def freeze_startup_heap() -> None:
    """Take everything built at start-up out of the cyclic garbage collector's scans.

    The model, the imported modules and the loaded feed states live as long as the
    daemon, yet every full collection walked all of them: about 0.1 s with the
    event loop stopped, the worst heartbeat delay of a warm cycle. ``gc.freeze``
    (after one last collection) parks them in a permanent generation; reference
    counting still frees them, only reference cycles among them would be kept.
    """
    gc.collect()
    gc.freeze()


def utc_now() -> datetime:
    return datetime.now(UTC)


def feeds_from(settings: Settings) -> list[Feed]:
    return [
        Feed(
            name=f.name,
            url=f.url,
            interval_seconds=f.interval_seconds,
            min_interval_seconds=f.min_interval_seconds,
            max_interval_seconds=f.max_interval_seconds,
            enabled=f.enabled,
            tags=f.tags,
        )
        for f in settings.feeds
    ]


def fetch_limits(settings: Settings) -> FetchLimits:
    f = settings.fetch
    return FetchLimits(
        connect_timeout=f.connect_timeout,
        read_timeout=f.read_timeout,
        total_timeout=f.total_timeout,
        max_bytes=f.max_bytes,
        max_redirects=f.max_redirects,
        user_agent=f.effective_user_agent,
        unconditional_probability=f.unconditional_probability,
        transport=f.transport,
        max_connections=max(settings.schedule.max_concurrent_feeds, 10),
        allow_internal_hosts=f.allow_internal_hosts,
    )


def open_store(settings: Settings, *, check_writable: bool = True) -> Store:
    """Open, migrate and prove a write commits: a daemon that cannot store would poll
    blind (alerts never queued, every item fetched again), so it refuses to start.
    Commands that only read skip the write check."""
    store = store_backend.open_store(settings.storage.database_url,
                                     busy_timeout=settings.storage.busy_timeout_seconds,
                                     pool_size=settings.storage.pool_size)
    try:
        if check_writable:
            store.check_writable()
    except StoreError:
        store.close()
        raise
    return store


def lifecycle_policy(settings: Settings) -> LifecyclePolicy:
    s = settings.schedule
    return LifecyclePolicy(
        cadence=CadencePolicy(
            min_seconds=s.min_interval_seconds,
            max_seconds=s.max_interval_seconds,
            default_seconds=s.default_interval_seconds,
        ),
        flag_after_failures=s.flag_after_failures,
        stale_after=timedelta(hours=s.stale_after_hours),
    )


def alert_rules(settings: Settings) -> AlertRules:
    return AlertRules(
        destination=settings.alert_destination,
        max_article_age_hours=settings.alerts.max_article_age_hours,
        snippet_chars=settings.alerts.snippet_chars,
        routes=tuple(
            Route(destination=f"slack:{r.channel}", event_types=frozenset(r.event_types),
                  min_score=r.min_score, keywords=tuple(k.lower() for k in r.keywords))
            for r in active_routes(settings)),
    )


def drain_options(settings: Settings) -> DrainOptions:
    a = settings.alerts
    return DrainOptions(batch_size=a.batch_size, lease_seconds=a.lease_seconds,
                        base_backoff=a.base_backoff_seconds, max_backoff=a.max_backoff_seconds)


def active_routes(settings: Settings) -> tuple[RouteSettings, ...]:
    """Routes post to Slack channels: they apply only when alerts go to Slack."""
    if settings.alerts.routes and settings.sink != "slack":
        log.warning("alerts.routes are ignored: they post to Slack channels and SLACK_BOT_TOKEN "
                    "and SLACK_CHANNEL are not both set (alerts go to the %s)", settings.sink)
        return ()
    return tuple(r for r in settings.alerts.routes
                 if f"slack:{r.channel}" != settings.alert_destination)


def build_notifier(settings: Settings) -> Notifier:
    slack = settings.slack
    token = slack.bot_token.get_secret_value() if slack.bot_token else None
    return Notifier(token=token, channel=slack.ops_channel, base_url=slack.api_url)


def _slack_sink(settings: Settings, channel: str | None = None) -> Deliverer:
    from monitor.alerts.slack import SlackDeliverer

    slack = settings.slack
    assert slack.bot_token is not None and slack.channel is not None
    return SlackDeliverer(slack.bot_token.get_secret_value(), channel or slack.channel,
                          base_url=slack.api_url, buttons=slack.app_token is not None)


def _webhook_sink(settings: Settings) -> Deliverer:
    from monitor.alerts.webhook import WebhookDeliverer

    assert settings.slack.webhook_url is not None
    return WebhookDeliverer(settings.slack.webhook_url.get_secret_value())


def _console_sink(settings: Settings) -> Deliverer:
    return ConsoleDeliverer()


SINK_BUILDERS: dict[str, Callable[[Settings], Deliverer]] = {
    "slack": _slack_sink,
    "webhook": _webhook_sink,
    "console": _console_sink,
}
"""How each kind of destination is built from the settings: a new kind is one entry."""


def build_deliverers(settings: Settings) -> dict[str, Deliverer]:
    """The registry the drainer routes by: destination → deliverer. Each deliverer keeps
    (and redacts) its own secrets."""
    deliverers = {settings.alert_destination: SINK_BUILDERS[settings.sink](settings)}
    for route in active_routes(settings):
        deliverers.setdefault(f"slack:{route.channel}", _slack_sink(settings, route.channel))
    return deliverers


@dataclass
class Monitor:
    """The running parts, built once and shared by every job."""

    settings: Settings
    store: Store
    sinks: Sinks
    deps: PipelineDeps
    semaphore: asyncio.Semaphore
    notifier: Notifier
    store_health: StoreHealth
    totals: Counter[str] = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by a graceful stop: no new poll starts and the drain sends no new alert."""
    metrics: Metrics | None = None
    """Prometheus metrics (``run`` with [http] on): fed here from each poll and drain."""
    model_version: str | None = None
    shared: bool = False
    """The database is shared with other daemons: feeds are claimed (``monitor.claims``)."""

    async def poll(self, feed: Feed) -> FeedReport | None:
        """One feed's poll; None when a stop came before it started (its stored
        schedule is kept, so the next start resumes it)."""
        async with self.semaphore:
            if self.stopping.is_set():
                return None
            report = await run_feed(feed, self.deps)
        # A storage failure is logged once, as an incident (``StoreHealth``), not again
        # on every poll line.
        quiet = report.store_error is not None
        if report.store_error is not None:
            await self._notify(self.store_health.failed(report.store_error,
                                                        f"feed {feed.name!r}"))
        elif report.status not in ("disabled",):
            await self._notify(self.store_health.succeeded())
        if report.notice:
            await self.notifier.notify(report.notice)
        if self.metrics is not None:
            self.metrics.observe_poll(report)
        self.totals["polls"] += 1
        self.totals[f"status:{report.status}"] += 1
        self.totals["new"] += report.new_items
        self.totals["alerts"] += report.alerts
        if report.store_error is not None:
            self.totals["store_errors"] += 1
        level = logging.INFO if report.error is None else logging.WARNING
        # The URL in the text too: two outlets' feeds may share a name pattern, and the
        # operator acts on the address.
        log.log(logging.DEBUG if quiet else level, report.log_line(url=feed.url),
                extra={"feed": feed.name, "url": feed.url})
        return report

    async def drain(self) -> object:
        try:
            result = await drain_outbox(
                self.store,
                self.sinks,
                now=utc_now,
                options=drain_options(self.settings),
                logger=logging.getLogger("monitor.outbox"),
                should_stop=self.stopping.is_set,
            )
        except StoreError as exc:
            self.totals["store_errors"] += 1
            await self._notify(self.store_health.failed(exc, "outbox"))
            result = None
        if self.metrics is not None:
            self.metrics.observe_drain(result)
        return result

    async def post_digest(self) -> bool:
        """The scheduled daily digest, to the main destination (once per local day)."""
        from monitor.digest import build_digest, post_digest

        d = self.settings.digest
        destination = self.settings.alert_destination
        try:
            digest = await asyncio.to_thread(build_digest, self.store, now=utc_now(),
                                             timezone=d.timezone, hours=d.hours,
                                             max_stories=d.max_stories)
            return await post_digest(self.store, self.sinks.deliverer(destination), digest,
                                     destination=destination, now=utc_now())
        except StoreError as exc:
            await self._notify(self.store_health.failed(exc, "digest"))
            return False

    async def _notify(self, notice: str | None) -> None:
        if notice:
            await self.notifier.notify(notice)


def _build_enricher(settings: Settings, limits: FetchLimits, stack: AsyncExitStack) -> object:
    """One enricher for the whole daemon, on its own guarded client (see monitor.netguard).

    Pages get the size and time limits of ``[fetch]`` and the feeds' User-Agent;
    their pool size and redirect limit are fulltext's own.
    """
    from monitor import fulltext

    ft = settings.fulltext
    page_limits = dataclasses.replace(
        fulltext.DEFAULT_LIMITS,
        connect_timeout=settings.fetch.connect_timeout,
        read_timeout=settings.fetch.read_timeout,
        total_timeout=settings.fetch.total_timeout,
        max_bytes=settings.fetch.max_bytes,
        user_agent=limits.user_agent,
    )
    client = fulltext.build_fulltext_client(page_limits, allow=ft.allow_hosts)
    stack.push_async_callback(client.aclose)
    return fulltext.FullTextEnricher(
        client,
        terms=load_country_terms(settings.keywords_file),
        limits=page_limits,
        allow=ft.allow_hosts,
        max_concurrent=ft.max_concurrent,
        min_summary_chars=ft.min_summary_chars,
        max_per_batch=ft.max_per_batch,
    )


async def _build_stories(settings: Settings, store: Store, rules: AlertRules,
                         *, shared: bool = False) -> tuple[StoryFn | None, SharedStoryFn | None]:
    """The story index, rebuilt from the articles first seen within its window; on a
    shared database wrapped so that each poll catches up with the other daemons.
    Returns the pipeline's ``stories`` or ``shared_stories`` (the other one None)."""
    from monitor.stories import StoryIndex, StorySettings, load_names
    from monitor.stories.stage import SharedStories, StoryStage

    engine = StorySettings(**settings.stories.engine_overrides())
    fraction = settings.stories.min_score_fraction
    stage = StoryStage(StoryIndex(engine, load_names(settings.keywords_file)), rules=rules,
                       now=utc_now, min_score_fraction=fraction)
    if shared:
        turns = SharedStories(stage, store, window=timedelta(hours=engine.window_hours))
        restored = await asyncio.to_thread(turns.start)
        log.info("stories: %d recent article(s) restored into the story index (window %g h; "
                 "kept in step with the other daemons under the story lock)",
                 restored, engine.window_hours)
        return None, turns.link_and_record
    since = utc_now() - timedelta(hours=engine.window_hours)
    members = await asyncio.to_thread(store.story_members_since, since,
                                      min_score_fraction=fraction)
    restored = await asyncio.to_thread(stage.restore, members)
    log.info("stories: %d recent article(s) restored into the story index (window %g h)",
             restored, engine.window_hours)
    return stage.link, None


async def _build(settings: Settings, stack: AsyncExitStack,
                 metrics: Metrics | None = None) -> Monitor:
    from monitor.retrain import effective_model_file

    model_file = effective_model_file(settings)  # configured, else a retrained one, else shipped
    classifier = ArticleClassifier.load(
        model_file, threshold=settings.classifier.threshold,
        prefilter=load_prefilter_terms(settings.keywords_file)
        if settings.classifier.prefilter else None,
    )
    store = open_store(settings)
    stack.callback(store.close)
    shared = shared_backend(settings.storage.database_url)
    limits = fetch_limits(settings)
    client = build_client(limits)
    stack.push_async_callback(client.aclose)
    deliverers = build_deliverers(settings)
    if metrics is not None:
        deliverers = metrics.timed_deliverers(deliverers)
    sinks = Sinks.build(deliverers, logger=logging.getLogger("monitor.outbox"),
                        probe_base=settings.alerts.base_backoff_seconds,
                        probe_cap=settings.alerts.max_backoff_seconds,
                        pace_per_second=settings.alerts.pace_per_second,
                        pace_burst=settings.alerts.pace_burst,
                        shared_pace=store if shared else None)
    stack.push_async_callback(sinks.aclose)
    rules = alert_rules(settings)
    classify = classifier.classify_in_thread
    if settings.classifier.workers > 0:
        pool = await stack.enter_async_context(ClassifierPool(
            classifier, model_path=model_file, workers=settings.classifier.workers))
        classify = pool.classify
    if metrics is not None:
        classify = metrics.timed_classify(classify)
    parse = settings.parse
    parser = await stack.enter_async_context(
        ParserPool(workers=parse.workers, timeout_seconds=parse.timeout_seconds,
                   memory_limit_mb=parse.memory_limit_mb, fast_path=parse.fast_path)
    )
    states = FeedStates(store)
    await states.load()
    stories, shared_stories = (await _build_stories(settings, store, rules, shared=shared)
                               if settings.stories.enabled else (None, None))
    enrich = None
    if settings.fulltext.enabled:
        enrich = _build_enricher(settings, limits, stack)
    deps = PipelineDeps(
        client=client,
        store=store,
        classify=classify,
        fetch_limits=limits,
        rules=rules,
        max_items=settings.parse.max_items,
        now=utc_now,
        parse=parser.parse,
        lifecycle=lifecycle_policy(settings),
        enrich=enrich,
        states=states,
        stories=stories,
        shared_stories=shared_stories,
        limiter=HostLimiter(
            per_host=settings.fetch.per_host_concurrency,
            min_gap_seconds=settings.fetch.min_host_gap_seconds,
            global_limit=settings.schedule.max_concurrent_feeds,
            max_pause_wait=MAX_HOST_PAUSE_WAIT_SECONDS,
        ),
    )
    freeze_startup_heap()
    log.info(
        "monitor ready: %d feeds, model %s (threshold %.2f), store %s, alerts to %s",
        len(settings.feeds), classifier.version, classifier.threshold,
        store_backend.safe_url(settings.storage.database_url), ", ".join(sinks.destinations),
    )
    return Monitor(
        settings, store, sinks, deps,
        asyncio.Semaphore(settings.schedule.max_concurrent_feeds),
        build_notifier(settings),
        StoreHealth(store.reopen, logger=logging.getLogger("monitor.store")),
        metrics=metrics, model_version=classifier.version, shared=shared,
    )


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What ``once`` did; the CLI turns it into the exit code cron and health checks see."""

    reports: list[FeedReport]
    store_errors: int

    @property
    def all_failed(self) -> bool:
        return bool(self.reports) and all(r.error is not None for r in self.reports)


async def run_once(settings: Settings) -> CycleResult:
    """One cycle of every enabled feed, then one drain of the outbox."""
    async with AsyncExitStack() as stack:
        monitor = await _build(settings, stack)
        feeds = [f for f in feeds_from(settings) if f.enabled]
        if monitor.shared:
            polled = await _poll_claimed(monitor, feeds)
        else:
            polled = await asyncio.gather(*(monitor.poll(f) for f in feeds))
        reports = [r for r in polled if r is not None]
        drained = await monitor.drain()
        try:
            counts: object = await asyncio.to_thread(monitor.store.outbox_counts)
        except StoreError as exc:
            monitor.totals["store_errors"] += 1
            counts = f"unknown ({exc})"
        failed = sum(1 for r in reports if r.error is not None)
        log.info(
            "cycle done: %d feeds (%d failed), %d new articles, %d alerts queued; drain: %s; "
            "outbox now %s",
            len(reports), failed, monitor.totals["new"], monitor.totals["alerts"], drained,
            counts,
        )
        return CycleResult(reports, monitor.totals["store_errors"])


async def _poll_claimed(monitor: Monitor, feeds: list[Feed]) -> list[object]:
    """``once`` beside daemons sharing the database: poll only the due feeds nobody else
    holds, under leases, so a cron job never polls a feed at the same moment as a daemon
    (and never one that a daemon just polled)."""
    try:
        return await _claim_loop(monitor, feeds, TaskTracker()).run_once()
    except StoreError as exc:
        monitor.totals["store_errors"] += 1
        log.error("could not claim feeds: %s; nothing polled", exc)
        return []


async def run_forever(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The daemon: poll on schedule until SIGINT/SIGTERM (or ``stop``), then drain and exit."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals
            pass
    tracker = TaskTracker()
    try:
        async with AsyncExitStack() as stack:
            monitor = await _build(settings, stack, _metrics_for(settings))
            await _start_buttons(settings, monitor.store, stack)
            feeds = feeds_from(settings)
            claims = _claim_loop(monitor, feeds, tracker) if monitor.shared else None
            states = await asyncio.to_thread(monitor.store.all_feed_states)
            scheduler = build_scheduler(
                [] if claims is not None else feeds,
                poll=monitor.poll,
                drain=monitor.drain,
                drain_interval_seconds=settings.schedule.drain_interval_seconds,
                jitter_seconds=settings.schedule.jitter_seconds,
                safety_net_seconds=min(settings.schedule.default_interval_seconds,
                                       settings.schedule.max_interval_seconds),
                tracker=tracker,
                first_runs={s.name: s.next_poll_at for s in states if s.next_poll_at},
            )
            if settings.digest.enabled:
                from apscheduler.triggers.cron import CronTrigger

                scheduler.add_job(
                    tracker.wrap(monitor.post_digest),
                    CronTrigger.from_crontab(settings.digest.cron,
                                             timezone=settings.digest.timezone),
                    id="digest", name="daily digest", max_instances=1, coalesce=True,
                    misfire_grace_time=3600)
            if settings.retrain.enabled:
                from apscheduler.triggers.cron import CronTrigger

                from monitor.retrain import scheduled_retrain

                async def retrain() -> object:
                    return await scheduled_retrain(settings, monitor.notifier)

                scheduler.add_job(
                    tracker.wrap(retrain),
                    CronTrigger.from_crontab(settings.retrain.cron,
                                             timezone=settings.retrain.timezone),
                    id="retrain", name="weekly retrain", max_instances=1, coalesce=True,
                    misfire_grace_time=6 * 3600)
            await check_sinks(monitor.sinks)
            scheduler.start()
            claiming = None
            if claims is not None:
                claiming = asyncio.create_task(claims.run(stop), name="claim feeds")
                # A claim loop that died would leave the daemon alive and polling nothing:
                # stop instead, so that the failure is seen (and systemd restarts it).
                claiming.add_done_callback(lambda task: task.cancelled() or (
                    task.exception() is not None and stop.set()))
                log.info("sharing the feeds with any other daemon on this database: "
                         "claiming due feeds as %s (leases of %.0f s)", claims.owner,
                         claims.options.lease_seconds)
            await _start_web(monitor, scheduler, stack)
            log.info("scheduler started; press Ctrl+C (or send SIGTERM) to stop")
            await stop.wait()
            if claiming is not None:
                await claiming
            await _stop_gracefully(monitor, scheduler, tracker)
            if claims is not None:
                await claims.close()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _claim_loop(monitor: Monitor, feeds: list[Feed], tracker: TaskTracker) -> ClaimLoop:
    """The feeds' schedule on a shared database: claimed in batches with leases."""
    s = monitor.settings.schedule
    return ClaimLoop(
        monitor.store, feeds, poll=monitor.poll, owner=daemon_owner_id(), tracker=tracker,
        states=monitor.deps.states, now=utc_now,
        options=ClaimOptions(
            lease_seconds=s.feed_lease_seconds, batch=s.max_concurrent_feeds,
            safety_net_seconds=min(s.default_interval_seconds, s.max_interval_seconds)),
    )


def _metrics_for(settings: Settings) -> Metrics | None:
    """Metrics are kept only when something serves them ([http] on)."""
    if settings.http.address is None:
        return None
    from monitor.web.metrics import Metrics

    return Metrics()


async def _start_web(monitor: Monitor, scheduler: AsyncIOScheduler,
                     stack: AsyncExitStack) -> None:
    """/healthz, /readyz, /metrics and the web view; closed before the store they read."""
    address = monitor.settings.http.address
    if address is None or monitor.metrics is None:
        return
    from apscheduler.schedulers.base import STATE_STOPPED

    from monitor.web.server import WebServer

    await stack.enter_async_context(WebServer(
        monitor, monitor.metrics, host=address[0], port=address[1],
        scheduler_running=lambda: scheduler.state != STATE_STOPPED))


async def check_sinks(sinks: Sinks) -> bool:
    """At start-up, prove each destination that can be checked works (token, channel,
    membership) and say what to fix if not. The daemon runs on either way: alerts wait
    in the outbox, nothing is lost, and the fix takes effect without a restart."""
    ok = True
    for destination, deliverer in sinks.items():
        check = getattr(deliverer, "check", None)
        if check is None:
            continue
        try:
            for line in await check():
                log.info("%s: %s", destination, line)
        except DeliveryError as exc:
            ok = False
            log.error("%s is not usable yet: %s; alerts wait in the outbox until this is "
                      "fixed (`python -m monitor slack-test` checks again)", destination, exc)
    return ok


async def _start_buttons(settings: Settings, store: Store, stack: AsyncExitStack) -> None:
    """The analysts' buttons, when SLACK_APP_TOKEN is set: only the daemon listens (``once``
    exits before anyone could press); closed before the store it writes to."""
    slack = settings.slack
    if slack.app_token is None or slack.bot_token is None:
        return
    if settings.sink != "slack":
        log.warning("SLACK_APP_TOKEN is set but alerts go to %s, which has no buttons; the "
                    "buttons need SLACK_BOT_TOKEN and SLACK_CHANNEL", settings.sink)
        return
    from monitor.interact import ButtonListener

    listener = ButtonListener(app_token=slack.app_token.get_secret_value(),
                              bot_token=slack.bot_token.get_secret_value(), store=store,
                              now=utc_now, base_url=slack.api_url)
    await stack.enter_async_context(listener)


async def _stop_gracefully(monitor: Monitor, scheduler: AsyncIOScheduler,
                           tracker: TaskTracker) -> None:
    """Stop taking jobs, let running polls and the post in flight finish, then cancel quietly.

    The scheduler is paused, not shut down, while jobs finish: shutting down its
    asyncio executor cancels every running coroutine at once. Polls waiting for a
    slot do not start; the drain sends no new alert once ``stopping`` is set, so
    only the alert already on the wire is waited for.
    """
    running = tracker.running
    log.info("stopping: no new jobs; waiting up to %.0f s for %d running job(s)",
             SHUTDOWN_GRACE_SECONDS, running)
    monitor.stopping.set()
    scheduler.pause()
    abandoned = await tracker.drain(SHUTDOWN_GRACE_SECONDS)
    scheduler.shutdown(wait=False)
    if abandoned:
        log.warning(
            "stopped %d job(s) still running after %.0f s; their feeds are polled again and "
            "their alerts checked before any resend on the next start",
            abandoned, SHUTDOWN_GRACE_SECONDS,
        )
    log.info("stopped cleanly after %d polls, %d new articles, %d alerts queued",
             monitor.totals["polls"], monitor.totals["new"], monitor.totals["alerts"])
