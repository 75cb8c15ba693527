"""Settings: the TOML file plus the environment, validated once at start-up.

One concern, long by nature: the schema of every config section with its defaults,
written once here, and the checks that turn a wrong value into one clear line.

Everything downstream receives plain values from here as parameters; no other
module reads files or environment variables for configuration. Secrets (Slack
token, webhook URL) are accepted ONLY from the environment and are wrapped in
``SecretStr`` so that printing the settings never shows them.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.alerts.base import redact
from monitor.errors import SettingsError
from monitor.store import safe_url

REPO_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
ENV_CONFIG = "MONITOR_CONFIG"
log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedSettings(_Section):
    name: str = Field(min_length=1, max_length=200)
    url: str
    interval_seconds: float | None = Field(default=None, ge=30, le=86_400)
    min_interval_seconds: float | None = Field(default=None, ge=10, le=86_400)
    max_interval_seconds: float | None = Field(default=None, ge=60, le=7 * 86_400)
    """This feed's bounds for the adaptive interval, instead of [schedule]'s."""
    enabled: bool = True
    tags: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _bounds(self) -> FeedSettings:
        low, high = self.min_interval_seconds, self.max_interval_seconds
        if low is not None and high is not None and low > high:
            raise ValueError(f"feed {self.name!r}: min_interval_seconds must not exceed "
                             "max_interval_seconds")
        return self

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme in ("http", "https") and parts.netloc:
            return value.strip()
        if parts.scheme == "file" and parts.path:
            return value.strip()
        raise ValueError(
            f"{value!r} is not a usable feed URL; use http://, https:// or file:///absolute/path"
        )


class ScheduleSettings(_Section):
    default_interval_seconds: float = Field(default=600, ge=30, le=86_400)
    jitter_seconds: float = Field(default=30, ge=0, le=3_600)
    drain_interval_seconds: float = Field(default=10, ge=1, le=3_600)
    max_concurrent_feeds: int = Field(default=20, ge=1, le=1_000)
    min_interval_seconds: float = Field(default=120, ge=10, le=86_400)
    max_interval_seconds: float = Field(default=21_600, ge=60, le=7 * 86_400)
    flag_after_failures: int = Field(default=10, ge=1, le=10_000)
    stale_after_hours: float = Field(default=336, gt=0)
    feed_lease_seconds: float = Field(default=120, ge=6, le=3_600)
    """PostgreSQL only: how long a daemon's claim on a feed lasts unless renewed (every
    third of it while the poll runs): a crashed daemon's feeds wait this long."""

    @model_validator(mode="after")
    def _bounds(self) -> ScheduleSettings:
        if self.min_interval_seconds > self.max_interval_seconds:
            raise ValueError("min_interval_seconds must not exceed max_interval_seconds")
        return self


class FetchSettings(_Section):
    connect_timeout: float = Field(default=10, gt=0, le=120)
    read_timeout: float = Field(default=20, gt=0, le=300)
    total_timeout: float = Field(default=60, gt=0, le=600)
    max_bytes: int = Field(default=5_000_000, ge=10_000, le=200_000_000)
    max_redirects: int = Field(default=5, ge=0, le=20)
    contact_url: str = "https://github.com/news-monitor"
    """Where a publisher can reach whoever runs this daemon; goes into the User-Agent."""
    user_agent: str | None = None
    """A complete User-Agent instead of the one built from contact_url."""
    per_host_concurrency: int = Field(default=2, ge=1, le=50)
    min_host_gap_seconds: float = Field(default=1.0, ge=0, le=600)
    unconditional_probability: float = Field(default=0.01, ge=0, le=1)
    transport: Literal["auto", "aiohttp", "httpx"] = "auto"
    allow_internal_hosts: tuple[str, ...] = ()
    """Internal hosts/networks a feed's redirects may lead to (as fulltext.allow_hosts)."""

    @field_validator("allow_internal_hosts")
    @classmethod
    def _check_internal(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from monitor.netguard import AllowList

        try:
            AllowList.parse(value, key="fetch.allow_internal_hosts")
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("contact_url")
    @classmethod
    def _check_contact(cls, value: str) -> str:
        if not value.strip().startswith(("http://", "https://", "mailto:")):
            raise ValueError(f"{value!r} must be an http(s):// or mailto: URL")
        return value.strip()

    @property
    def effective_user_agent(self) -> str:
        from monitor.http import build_user_agent  # lazily: settings must load without httpx

        return self.user_agent or build_user_agent(self.contact_url)


class StorageSettings(_Section):
    database_url: str = "sqlite:///state/monitor.db"
    busy_timeout_seconds: float = Field(default=30, gt=0, le=3_600)
    """How long a write waits for another process's lock before it counts as failed."""
    pool_size: int = Field(default=6, ge=2, le=100)
    """PostgreSQL connections per daemon: polls, the drain, the web view and the story
    lock each take one while they run; ignored for SQLite."""

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str) -> str:
        """Refuse a URL without a file, e.g. ``sqlite:///${DB}`` with ``DB`` unset.

        SQLite would silently open an in-memory database: the daemon would forget every
        article at exit and alert everything again on the next run. In-memory is only
        reachable by asking for it (``sqlite:///:memory:``, for tests).
        """
        if value.startswith(("postgresql://", "postgres://")):
            return _check_postgres_url(value)
        if not value.startswith("sqlite:///"):
            raise ValueError(
                f"{safe_url(value)!r} is not supported; use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or postgresql://user@host:5432/database"
            )
        path = value.removeprefix("sqlite:///")
        if not path.strip() or path.endswith("/"):
            raise ValueError(
                "names no database file (an unset variable in MONITOR_DATABASE_URL?); "
                "SQLite would fall back to an in-memory store that forgets everything and "
                "re-alerts every article on every run; use sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db (sqlite:///:memory: only for tests)"
            )
        return value


def _check_postgres_url(value: str) -> str:
    """A PostgreSQL URL must name a database (``postgresql://user@host:port/db``), else
    libpq would silently use one named after the user; ``?schema=NAME`` must be a plain
    identifier (it becomes the tables' schema)."""
    parts = urlsplit(value)
    if not parts.path.strip("/") or "/" in parts.path.strip("/"):
        raise ValueError(
            f"{safe_url(value)!r} names no database (an unset variable in "
            "MONITOR_DATABASE_URL?); use postgresql://user@host:5432/database")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ValueError(f"{safe_url(value)!r}: {exc}") from None
    for key, item in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", item):
            raise ValueError(f"schema={item!r} is not a plain SQL identifier (letters, digits, "
                             "underscore; not starting with a digit)")
    return value


class ClassifierSettings(_Section):
    model_path: str | None = None
    keywords_path: str = "keywords.toml"
    threshold: float | None = Field(default=None, gt=0, lt=1)
    target_precision: float = Field(default=0.9, gt=0, lt=1)
    prefilter: bool = True
    """Leave items that name neither country unscored (see monitor.classify)."""
    workers: int = Field(default=1, ge=0, le=64)
    """Processes that score articles (see monitor.classify_pool); 0 scores in a thread
    of the daemon, which saves their memory but competes with the event loop."""


class ParseSettings(_Section):
    """feedparser runs in worker processes so a runaway feed cannot stall or sink the daemon."""

    workers: int = Field(default=2, ge=1, le=64)
    timeout_seconds: float = Field(default=20, gt=0, le=600)
    memory_limit_mb: int = Field(default=512, ge=64, le=65_536)
    max_items: int = Field(default=500, ge=1, le=10_000)
    """Entries kept per feed document (the rest are dropped and reported)."""
    fast_path: bool = True
    """Read plain UTF-8 RSS 2.0/Atom 1.0 without feedparser (see monitor.fastparse)."""


class RouteSettings(_Section):
    """Another Slack channel for some alerts (e.g. arms alerts also to #dprk-arms).

    A route adds a destination; every match still goes to ``slack.channel``. Each
    channel gets one thread per story, with the same bot token.
    """

    name: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    event_types: tuple[str, ...] = ()
    """Event types that go there (empty: any), e.g. ["arms/military", "troops"]."""
    min_score: float | None = Field(default=None, ge=0, le=1)
    """A higher bar than the model's threshold for this channel (None: the threshold)."""
    keywords: tuple[str, ...] = ()
    """Words or phrases, at least one of which must be in the headline or summary
    (case-insensitive; empty: no such condition)."""

    @field_validator("channel")
    @classmethod
    def _check_route_channel(cls, value: str) -> str:
        if _looks_like_slack_secret(value):
            raise ValueError(PASTED_SECRET)
        return value.strip()


class AlertSettings(_Section):
    batch_size: int = Field(default=20, ge=1, le=1_000)
    """Alerts claimed at once; at the paced rate a batch must go out within half the lease."""
    lease_seconds: float = Field(default=120, ge=5, le=3_600)
    base_backoff_seconds: float = Field(default=2, ge=1, le=3_600)
    """First wait after the destination failed (then doubling, jittered)."""
    max_backoff_seconds: float = Field(default=30, ge=1, le=3_600)
    """Longest wait between checks while the destination is down: the longest an
    alert waits after it is back."""
    pace_per_second: float = Field(default=1.0, gt=0, le=100)
    """Steady posting rate per destination (Slack allows about one message per second
    per channel); the console is never paced."""
    pace_burst: int = Field(default=10, ge=1, le=1_000)
    """Messages that may go at once before the steady rate applies."""
    snippet_chars: int = Field(default=300, ge=50, le=2_000)
    max_article_age_hours: float = Field(default=72, ge=0)
    routes: tuple[RouteSettings, ...] = ()
    """``[[alerts.routes]]``: further channels by event type, score and keywords."""

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, routes: tuple[RouteSettings, ...]) -> tuple[RouteSettings, ...]:
        names = [r.name for r in routes]
        if len(names) != len(set(names)):
            raise ValueError("route names must be unique")
        return routes


NO_CHANNEL_FIX = (
    "set SLACK_CHANNEL to the channel ID, like C0123ABCD, or unset SLACK_BOT_TOKEN for "
    "console alerts"
)
PASTED_SECRET = (
    "looks like a Slack token; put the token in SLACK_BOT_TOKEN and the channel ID in "
    "SLACK_CHANNEL"
)


_APP_TOKEN = re.compile(r"xapp-[A-Za-z0-9-]+")


def _looks_like_slack_secret(value: str) -> bool:
    """Whether ``value`` holds a Slack token or webhook URL (anything ``redact`` would hide)."""
    return redact(value) != value


def _http_url_problem(value: str) -> str | None:
    """Why ``value`` is not an ``http(s)://host/...`` URL, or None if it is one.

    The messages never quote the value: callers use this for secrets too.
    """
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a well-formed URL (check the host and port)"
    if parts.scheme not in ("http", "https"):
        return "does not start with http:// or https://"
    if not parts.hostname:
        return "has no host name"
    return None


class SlackSettings(_Section):
    channel: str | None = None
    ops_channel: str | None = None
    api_url: str | None = None
    bot_token: SecretStr | None = None
    webhook_url: SecretStr | None = None
    app_token: SecretStr | None = None
    """App-level token (``xapp-``) for Socket Mode: the analysts' buttons (env only)."""

    @field_validator("channel", "ops_channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        """Blank means no channel; a pasted token is refused rather than used.

        The channel is written to every alert row ("slack:<channel>") and to log lines,
        so a token in SLACK_CHANNEL would be leaked by the very first alert.
        """
        if value is None or not value.strip():
            return None
        if _looks_like_slack_secret(value):
            raise ValueError(PASTED_SECRET)
        return value.strip()

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str | None) -> str | None:
        """A malformed base URL would fail every post and be retried forever; refuse it here."""
        if value is None or not value.strip():
            return None
        value = value.strip()
        if _looks_like_slack_secret(value):
            raise ValueError(
                "looks like a webhook URL or token, not the Web API base URL; put a webhook "
                "URL in SLACK_WEBHOOK_URL, a token in SLACK_BOT_TOKEN, and leave SLACK_API_URL "
                "unset to use https://slack.com/api/"
            )
        problem = _http_url_problem(value)
        parts = urlsplit(value) if problem is None else None
        if parts is not None and (parts.query or parts.fragment):
            problem = "has a ?query or #fragment"
        if problem:
            raise ValueError(
                f"{problem}; SLACK_API_URL (or [slack] api_url) must be the Web API base URL, "
                "like https://slack.com/api/, or unset"
            )
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse a URL that can never work; the message must not repeat it (it is a secret)."""
        if value is None:
            return None
        problem = _http_url_problem(value.get_secret_value().strip())
        if problem:
            raise ValueError(
                f"{problem}; SLACK_WEBHOOK_URL must be the incoming webhook's URL as Slack shows "
                "it, starting with https://hooks.slack.com (the value is not shown: it is a secret)"
            )
        return SecretStr(value.get_secret_value().strip())

    @field_validator("app_token")
    @classmethod
    def _check_app_token(cls, value: SecretStr | None) -> SecretStr | None:
        """Only an app-level token opens a Socket Mode connection; the message never repeats
        the value (a bot token pasted here is a secret too)."""
        if value is None:
            return None
        token = value.get_secret_value().strip()
        if token.startswith("xox"):
            raise ValueError(
                "holds a bot or user token (xox…), not an app-level token; SLACK_APP_TOKEN must "
                "be the xapp-… token made under Basic Information → App-Level Tokens with the "
                "connections:write scope (the value is not shown: it is a secret)")
        if not _APP_TOKEN.fullmatch(token):
            raise ValueError(
                "is not an app-level token; SLACK_APP_TOKEN must be the xapp-… token as "
                "Slack shows it under Basic Information → App-Level Tokens (the value is not "
                "shown: it is a secret)")
        return SecretStr(token)

    @model_validator(mode="after")
    def _app_token_needs_bot(self) -> SlackSettings:
        """Button presses are answered by editing the message, which needs the bot token."""
        if self.app_token and not self.bot_token:
            raise ValueError(
                "SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not; the buttons need both "
                "(the app token receives the presses, the bot token edits the alert)")
        return self

    @model_validator(mode="after")
    def _token_needs_channel(self) -> SlackSettings:
        """A token without a channel used to mean console alerts, marked as sent: refuse it.

        With a webhook the token may be there for the ops channel only, so that is allowed.
        """
        if self.bot_token and not self.channel and not self.webhook_url:
            raise ValueError(
                "SLACK_BOT_TOKEN is set but there is no alert channel (slack.channel is "
                f"missing or blank, or SLACK_CHANNEL is set but empty); {NO_CHANNEL_FIX}"
            )
        return self

    @model_validator(mode="after")
    def _api_url_slash(self) -> SlackSettings:
        if self.api_url and not self.api_url.endswith("/"):
            object.__setattr__(self, "api_url", self.api_url + "/")
        return self



class FullTextSettings(_Section):
    """Fetch the article page for short items that name either country (needs trafilatura)."""

    enabled: bool = False
    allow_hosts: tuple[str, ...] = ()
    min_summary_chars: int = Field(default=200, ge=0, le=10_000)
    max_concurrent: int = Field(default=4, ge=1, le=64)
    max_per_batch: int = Field(default=25, ge=1, le=1_000)

    @field_validator("allow_hosts")
    @classmethod
    def _check_allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from monitor.netguard import AllowList

        try:
            AllowList.parse(value)
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        return value


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    """``json``: one object per line for log shippers (see monitor.logs)."""


HTTP_OFF = ("", "off")


class HttpSettings(_Section):
    """The daemon's own HTTP endpoints (health, metrics, the read-only web view)."""

    listen: str = "127.0.0.1:8787"
    """``host:port`` (``[v6]:port`` for IPv6; port 0 picks a free one), or "" / "off"."""
    ready_poll_age_seconds: float = Field(default=3600, ge=1, le=7 * 86_400)
    """/readyz fails when no poll has succeeded for this long (raise it for a few slow feeds)."""

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in HTTP_OFF:
            return ""
        parse_listen(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, or None when the endpoints are switched off."""
        return parse_listen(self.listen) if self.listen else None


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` → (host, port); a ValueError names what is wrong."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65_535 or " " in host:
        raise ValueError(f"{value!r} is not host:port like '127.0.0.1:8787' (or 'off')")
    return host, int(port)


class DigestSettings(_Section):
    """The daily digest: the last day's stories by event type, plus a weekly line."""

    enabled: bool = True
    cron: str = "0 8 * * *"
    """When, as a crontab line (minute hour day month weekday) in ``timezone``."""
    timezone: str = "UTC"
    hours: float = Field(default=24, gt=0, le=24 * 7)
    """The period it covers, ending when it is posted."""
    max_stories: int = Field(default=60, ge=1, le=500)

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a crontab line like '0 8 * * *': {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name like 'UTC' or "
                             "'Asia/Seoul'") from None
        return value


class RetrainSettings(_Section):
    """``train --with-feedback`` and the weekly retrain job (README, "The classifier").

    The job is off by default: installing a model changes what every analyst sees, and
    whoever runs the daemon should choose that (and restart it to use the new model)."""

    enabled: bool = False
    """Run the weekly retrain job in the daemon (install if the guard passes, else a notice)."""
    cron: str = "0 3 * * 1"
    """When, as a crontab line in ``timezone`` (default: Mondays 03:00)."""
    timezone: str = "UTC"
    label_weight: float = Field(default=5.0, gt=0, le=100)
    """One analyst's label counts as this many written examples in the fit."""
    tolerance: float = Field(default=0.005, ge=0, le=0.2)
    """How much worse than the current model the candidate may be on any guarded metric."""
    holdout_fraction: float = Field(default=0.25, ge=0, le=0.5)
    """The newest labels (by label time) kept out of training to compare the two models."""
    min_labels: int = Field(default=20, ge=1, le=1_000_000)
    """Below this many labelled articles there is no retrain, only an explanation."""

    _check_cron = field_validator("cron")(DigestSettings._check_cron.__func__)
    _check_timezone = field_validator("timezone")(DigestSettings._check_timezone.__func__)


class StoriesSettings(_Section):
    """Story threading (``monitor.stories``); unset thresholds keep the engine's tuned defaults."""

    enabled: bool = True
    """Off: every article is a story of its own (one top-level alert per matching article)."""
    min_score_fraction: float = Field(default=0.5, ge=0, le=1)
    """Articles enter the story index when they match or score at least this fraction of
    the threshold (near misses may be edited copies of a match); the rest, most of every
    feed, are stories of their own. 0 puts every article in the index (costlier)."""
    window_hours: float | None = Field(default=None, gt=0, le=24 * 14)
    duplicate_threshold: float | None = Field(default=None, gt=0, le=1)
    similar_threshold: float | None = Field(default=None, gt=0, le=1)
    named_threshold: float | None = Field(default=None, gt=0, le=1)

    def engine_overrides(self) -> dict[str, float]:
        return {key: value for key, value in self.model_dump().items()
                if key not in ("enabled", "min_score_fraction") and value is not None}


class Settings(_Section):
    schedule: ScheduleSettings = ScheduleSettings()
    fetch: FetchSettings = FetchSettings()
    parse: ParseSettings = ParseSettings()
    storage: StorageSettings = StorageSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    alerts: AlertSettings = AlertSettings()
    slack: SlackSettings = SlackSettings()
    fulltext: FullTextSettings = FullTextSettings()
    stories: StoriesSettings = StoriesSettings()
    digest: DigestSettings = DigestSettings()
    retrain: RetrainSettings = RetrainSettings()
    logging: LoggingSettings = LoggingSettings()
    http: HttpSettings = HttpSettings()
    feeds: tuple[FeedSettings, ...] = ()
    config_path: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """``fetch.max_items`` limits parsing, so it lives in [parse]; the old key still works."""
        if not isinstance(data, dict) or not isinstance(data.get("fetch"), dict):
            return data
        if "max_items" not in data["fetch"]:
            return data
        parse = data.get("parse", {})
        if not isinstance(parse, dict):
            return data  # validation reports the bad [parse]
        if "max_items" in parse:
            raise ValueError("fetch.max_items and parse.max_items are both set; keep only "
                             "parse.max_items (fetch.max_items is its deprecated old name)")
        fetch = dict(data["fetch"])
        value = fetch.pop("max_items")
        log.warning("fetch.max_items is deprecated; write it as parse.max_items "
                    "(it limits the entries kept per parsed feed)")
        return {**data, "fetch": fetch, "parse": {**parse, "max_items": value}}

    @field_validator("feeds")
    @classmethod
    def _unique_names(cls, feeds: tuple[FeedSettings, ...]) -> tuple[FeedSettings, ...]:
        seen: set[str] = set()
        for feed in feeds:
            if feed.name in seen:
                raise ValueError(f"feed name {feed.name!r} appears twice; names must be unique")
            seen.add(feed.name)
        return feeds

    @model_validator(mode="after")
    def _absolute_file_urls(self) -> Settings:
        """``file:replay/feed.xml`` is relative to the config file, so configs can ship replays."""
        if self.config_path is None:
            return self
        fixed = []
        for feed in self.feeds:
            parts = urlsplit(feed.url)
            if parts.scheme == "file" and not parts.path.startswith("/"):
                absolute = (self.config_path.parent / unquote(parts.path)).resolve()
                feed = feed.model_copy(update={"url": absolute.as_uri()})
            fixed.append(feed)
        object.__setattr__(self, "feeds", tuple(fixed))
        return self

    @property
    def sink(self) -> Literal["slack", "webhook", "console"]:
        """The kind of destination alerts go to: Slack's Web API when a bot token and a
        channel are set, else an incoming webhook, else the console."""
        if self.slack.bot_token and self.slack.channel:
            return "slack"
        if self.slack.webhook_url:
            return "webhook"
        return "console"

    @property
    def alert_destination(self) -> str:
        """Where alerts go, as stored on each alert row (never includes a secret)."""
        sink = self.sink
        return f"slack:{self.slack.channel}" if sink == "slack" else sink

    @property
    def keywords_file(self) -> Path:
        return self._resolve(self.classifier.keywords_path)

    @property
    def model_file(self) -> Path | None:
        return self._resolve(self.classifier.model_path) if self.classifier.model_path else None

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        if not path.is_absolute() and self.config_path is not None:
            path = self.config_path.parent / path
        return path

    def redacted(self) -> dict[str, Any]:
        """A printable dict: SecretStr fields show as '**********' (pydantic's own masking)."""
        data = self.model_dump(mode="json")
        data["slack"]["bot_token"] = "**********" if self.slack.bot_token else None
        data["slack"]["webhook_url"] = "**********" if self.slack.webhook_url else None
        data["slack"]["app_token"] = "**********" if self.slack.app_token else None
        data["storage"]["database_url"] = safe_url(self.storage.database_url)
        return data


def default_config_path() -> Path:
    """The embedded default config: the repo's config/ in a checkout, else the packaged copy."""
    repo = REPO_CONFIG_DIR / "monitor.toml"
    if repo.is_file():
        return repo
    from importlib.resources import files

    return Path(str(files("monitor.defaults").joinpath("monitor.toml")))


def _env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Deployment knobs that must not require editing files (and secrets, which never may)."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    slack = data.setdefault("slack", {})
    if not isinstance(slack, dict):
        return data  # let validation report the bad type
    for key in ("bot_token", "webhook_url", "app_token"):
        if key in slack:
            raise SettingsError(
                f"[slack] {key} must not be written in the config file (secrets live only in "
                f"the environment); remove it and set SLACK_{key.upper()} instead"
            )
    mapping = {
        "SLACK_BOT_TOKEN": ("slack", "bot_token"),
        "SLACK_CHANNEL": ("slack", "channel"),
        "SLACK_API_URL": ("slack", "api_url"),
        "SLACK_WEBHOOK_URL": ("slack", "webhook_url"),
        "SLACK_APP_TOKEN": ("slack", "app_token"),
        "MONITOR_DATABASE_URL": ("storage", "database_url"),
        "MONITOR_LOG_LEVEL": ("logging", "level"),
        "MONITOR_LOG_FORMAT": ("logging", "format"),
        "MONITOR_MODEL_PATH": ("classifier", "model_path"),
        "MONITOR_HTTP_LISTEN": ("http", "listen"),
    }
    for var, (section, key) in mapping.items():
        value = env.get(var, "").strip()
        if value:
            target = data.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = value
    if "SLACK_CHANNEL" in env and not env["SLACK_CHANNEL"].strip():
        # Set but blank (``SLACK_CHANNEL=${UNSET}``): "no channel", not "the file's channel",
        # so that with a bot token it is reported instead of posting somewhere unintended.
        slack["channel"] = ""
    return data


def _describe(error: dict[str, Any], source: str) -> str:
    location = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        section = ".".join(str(p) for p in error["loc"][:-1]) or "top level"
        return (
            f"{source}: unknown key '{location}' (in {section}); check the spelling against "
            "the configuration reference in README.md"
        )
    if kind == "missing":
        return f"{source}: key '{location}' is required; add it"
    value = error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    if isinstance(value, dict | list | tuple):
        # A whole section failed a cross-field check; its input holds every value of the
        # section (the bot token included), so name the section and never print it.
        return redact(f"{source}: [{location or 'top level'}] {message}")
    secret = (
        "token" in location
        or "webhook" in location
        or (isinstance(value, str) and _looks_like_slack_secret(value))
    )
    if isinstance(value, str) and "://" in value:
        value = safe_url(value)  # a database URL may carry a password
    shown = "<secret>" if secret else repr(value)
    # redact() as well: a message may quote the value (e.g. a feed URL) in its own words.
    return redact(f"{source}: key '{location}' = {shown}: {message}")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the config; every problem becomes one SettingsError naming file and key."""
    env = os.environ if env is None else env
    chosen = Path(path or env.get(ENV_CONFIG) or default_config_path()).expanduser()
    try:
        raw = chosen.read_bytes()
    except FileNotFoundError:
        raise SettingsError(
            f"config file {chosen} not found; pass --config PATH or set {ENV_CONFIG}"
        ) from None
    except OSError as exc:
        raise SettingsError(f"config file {chosen} cannot be read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{chosen}: not valid TOML: {exc}") from exc
    data = _env_overrides(data, env)
    try:
        settings = Settings.model_validate({**data, "config_path": chosen.resolve()})
    except ValidationError as exc:
        problems = [_describe(err, str(chosen)) for err in exc.errors(include_url=False)]
        raise SettingsError("\n".join(problems)) from None
    if not settings.keywords_file.is_file():
        raise SettingsError(
            f"{chosen}: key 'classifier.keywords_path' points to {settings.keywords_file}, "
            "which does not exist; fix the path (relative paths are relative to the config file)"
        )
    _warn_unused_channels(settings, env)
    return settings


def _warn_unused_channels(settings: Settings, env: Mapping[str, str]) -> None:
    """Warn (not fail) about a channel that nothing will post to.

    A warning rather than an error: the shipped config names a channel and runs with
    console alerts until a token is given, so a channel without a token is a normal
    state for the file. Only SLACK_CHANNEL in the environment signals that this
    deployment meant to post to Slack.
    """
    slack = settings.slack
    if env.get("SLACK_CHANNEL", "").strip() and settings.sink == "console":
        log.warning(
            "SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not (nor SLACK_WEBHOOK_URL): alerts "
            "go to the console, not to %s; set SLACK_BOT_TOKEN, or unset SLACK_CHANNEL",
            slack.channel,
        )
    if slack.ops_channel and not slack.bot_token:
        log.warning(
            "slack.ops_channel is %s but SLACK_BOT_TOKEN is not set: feed-health notices go "
            "to the log only; set SLACK_BOT_TOKEN, or remove ops_channel",
            slack.ops_channel,
        )
