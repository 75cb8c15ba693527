"""Command-line interface: ``python -m monitor COMMAND`` (or ``news-monitor COMMAND``).

One concern, the command line: argument parsing and one small function per command,
each handing the real work to the module that owns it.

Exit codes: 0 success, 1 the command failed at run time (e.g. no usable
model), 2 configuration or usage error (the message names the file and key),
3 and 4 from ``once`` (see below). Every error is one line on stderr; ``--debug``
adds the traceback. Read-only commands (``articles``, ``stories``, ``feeds``,
``status``, ``outbox``, ``mutes``) import neither ``monitor.app`` nor scikit-learn,
open the database only if it exists, and start in well under half a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from classifiers.errors import ClassifierError
from classifiers.text import article_text
from monitor.errors import DeliveryError, MonitorError, SettingsError, StoreError
from monitor.logs import ENV_LOG_FORMAT, LogFormat, configure_logging
from monitor.models import FeedState
from monitor.settings import Settings, load_settings
from monitor.store.base import Store

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
EXIT_STORAGE = 3
"""``once``: the database refused a read or write, so some of the cycle was not stored."""
EXIT_ALL_FEEDS_FAILED = 4
"""``once``: every enabled feed failed (for cron jobs and health checks)."""
log = logging.getLogger("monitor.cli")

if TYPE_CHECKING:
    from monitor.daemonlock import DaemonLock

_T = TypeVar("_T")


class InputError(MonitorError):
    """A line of a JSON-lines input file is unusable."""


class UsageError(MonitorError):
    """The command line asks for something impossible (exit 2, like argparse's errors)."""


def _probability(text: str) -> float:
    """``--threshold``: a number in [0, 1]; argparse makes anything else a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $MONITOR_CONFIG or config/monitor.toml)",
    )
    parser = argparse.ArgumentParser(
        prog="news-monitor",
        description="Watch news feeds for North Korea–Russia cooperation and alert analysts.",
    )
    # Accepted before or after the command; SUPPRESS keeps a subcommand's default from
    # overwriting a value given before it.
    for target in (parser, common):
        target.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show tracebacks (default: one line per error)")
        target.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS,
                            help="log lines as text or JSON objects "
                                 "(default: $MONITOR_LOG_FORMAT or logging.format)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon until SIGINT/SIGTERM")
    sub.add_parser("once", parents=[common], help="poll every feed once, deliver alerts, exit")
    sub.add_parser("check-config", parents=[common],
                   help="validate the config and everything it points to; print a summary")
    sub.add_parser("status", parents=[common],
                   help="feeds by condition, alerts waiting, model, last cycle")

    score = sub.add_parser("score", parents=[common], help="score JSON lines {id,title,summary}")
    score.add_argument("--model", metavar="PATH", help="model file (default: configured/shipped)")
    score.add_argument("--input", metavar="FILE", help="JSON-lines input (default: stdin)")
    score.add_argument("--threshold", type=_probability,
                       help="override the match threshold (0-1)")
    score.add_argument("--skip-invalid", action="store_true",
                       help="skip unusable lines (default: write an error object for each)")

    ev = sub.add_parser("eval", parents=[common], help="evaluate on labelled JSON lines")
    ev.add_argument("--data", metavar="FILE", required=True, help="JSON lines with a 'label' 0/1")
    ev.add_argument("--model", metavar="PATH")
    ev.add_argument("--threshold", type=_probability)
    ev.add_argument("--plot", metavar="FILE.png", help="write a precision-recall curve")

    train = sub.add_parser("train", parents=[common], help="train and save the classifier")
    train.add_argument("--out", metavar="PATH", help="where to save (default: configured/shipped)")
    train.add_argument(
        "--with-feedback", action="store_true",
        help="add analysts' labels from the database; install only if the guard passes",
    )
    train.add_argument(
        "--dry-run", action="store_true",
        help="with --with-feedback: train and compare, print the verdict, install nothing",
    )

    label = sub.add_parser("label", parents=[common], help="record an analyst's label")
    label.add_argument("article_id")
    label.add_argument("verdict", choices=["relevant", "irrelevant"])

    feeds = sub.add_parser(
        "feeds", parents=[common], help="feed health; import/export OPML subscriptions"
    )
    feeds.add_argument(
        "action", nargs="?", default="list",
        choices=["list", "add", "disable", "import-opml", "export-opml"]
    )
    feeds.add_argument("file", nargs="?", metavar="FILE|URL|NAME",
                       help="import-opml: the OPML file; add: the feed URL; disable: its name")
    feeds.add_argument("--name", help="add: the feed's name (default: the URL's host)")
    feeds.add_argument("--output", metavar="PATH",
                       help="import: config file to write (default: the config itself); "
                            "export: OPML file (default: stdout)")

    articles = sub.add_parser("articles", parents=[common], help="show recently stored articles")
    articles.add_argument("--limit", type=int, default=20)
    articles.add_argument("--matches", action="store_true", help="only matches")

    stories = sub.add_parser("stories", parents=[common],
                             help="recent stories with their outlets and alerts")
    stories.add_argument("--since", default="24h", type=_duration,
                         help="how far back, e.g. 90m, 24h, 7d (default 24h)")
    stories.add_argument("--limit", type=int, default=50)
    stories.add_argument("--all", action="store_true",
                         help="also stories with one report and no alert")

    digest = sub.add_parser("digest", parents=[common],
                            help="show the daily digest now (--post: also send it)")
    digest.add_argument("--post", action="store_true",
                        help="send it to the alert destination (once per day, as the job does)")

    sub.add_parser("slack-test", parents=[common],
                   help="check the Slack token and channel and post a test message")

    mutes = sub.add_parser("mutes", parents=[common],
                           help="outlets and stories muted from Slack; lift a mute")
    mutes.add_argument("action", nargs="?", default="list", choices=["list", "remove"])
    mutes.add_argument("mute_id", nargs="?", type=int, metavar="ID", help="the mute to remove")

    outbox = sub.add_parser("outbox", parents=[common], help="alert outbox status / requeue")
    outbox.add_argument("action", nargs="?", default="status", choices=["status", "requeue-failed"])

    db = sub.add_parser("db", parents=[common],
                        help="database schema: `db upgrade`, or `db migrate-from sqlite:///old.db` "
                             "(copy an SQLite state into the configured PostgreSQL)")
    db.add_argument("action", choices=["upgrade", "migrate-from"])
    db.add_argument("source", nargs="?", metavar="SOURCE_URL",
                    help="migrate-from: the SQLite database to copy (sqlite:///path.db)")
    return parser


def _log_format(args: argparse.Namespace, configured: str = "text") -> LogFormat:
    """--log-format, else $MONITOR_LOG_FORMAT (also when the config failed to load), else
    the config's logging.format."""
    chosen = getattr(args, "log_format", None) or os.environ.get(ENV_LOG_FORMAT, "").strip()
    chosen = chosen or configured
    return "json" if chosen == "json" else "text"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return _main(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `… | head` closed the pipe: end quietly, as a filter should
        _quiet_stdout()
        return EXIT_OK
    except Exception as exc:  # a bug: one line unless --debug, never a bare traceback
        if debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug for "
              "the traceback)", file=sys.stderr)
        return EXIT_FAILURE


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    # ValueError/OSError: stdout is not a real file (tests capture it); nothing to protect.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _main(args: argparse.Namespace) -> int:
    debug = getattr(args, "debug", False)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        configure_logging("INFO", _log_format(args))
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.logging.level, _log_format(args, settings.logging.format))
    handler = COMMANDS[args.command]
    try:
        code = handler(settings, args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught above
        return code
    except SettingsError as exc:
        if debug:
            raise
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as exc:
        if debug:
            raise
        print(f"usage error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (MonitorError, ClassifierError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


# --- daemon commands -----------------------------------------------------------------
def _daemon_preflight(settings: Settings) -> int | None:
    """The checks ``check-config`` makes, before a daemon starts: errors stop it (exit 2),
    warnings are logged. A missing ``file:`` feed only warns here: the other feeds work."""
    from monitor.preflight import preflight

    failed = False
    for finding in preflight(settings, load_model=False):
        if finding.level == "error" and finding.stops_daemon:
            print(f"configuration error: {finding.message}", file=sys.stderr)
            failed = True
        else:
            log.warning("%s", finding.message)
    return EXIT_CONFIG if failed else None


def _daemon_lock(settings: Settings) -> DaemonLock | None:
    """The database's daemon lock (``monitor.daemonlock``), or None for an in-memory store."""
    from monitor.daemonlock import DaemonLock
    from monitor.store import sqlite_path

    url = settings.storage.database_url
    path = sqlite_path(url)
    if path == ":memory:" or not url.startswith("sqlite:///"):
        return None
    lock = DaemonLock(Path(path), database_url=url)
    try:
        lock.acquire()
    except OSError as exc:
        import errno

        why = ("read-only file system" if exc.errno == errno.EROFS
               else str(exc.strerror or exc).lower())
        raise StoreError(f"cannot create the daemon lock {lock.path} ({why}); the database "
                         "and its directory must be writable by this user") from exc
    return lock


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from monitor.app import run_forever

    if (code := _daemon_preflight(settings)) is not None:
        return code
    lock = _daemon_lock(settings)
    try:
        asyncio.run(run_forever(settings))
    finally:
        if lock is not None:
            lock.release()
    return EXIT_OK


def cmd_once(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from monitor.app import run_once

    if (code := _daemon_preflight(settings)) is not None:
        return code
    lock = _daemon_lock(settings)
    try:
        result = asyncio.run(run_once(settings))
    finally:
        if lock is not None:
            lock.release()
    if result.store_errors:
        print(f"error: {result.store_errors} storage operation(s) failed during the cycle; "
              "what failed is polled again on the next run", file=sys.stderr)
        return EXIT_STORAGE
    if result.all_failed:
        print(f"error: all {len(result.reports)} feed(s) failed", file=sys.stderr)
        return EXIT_ALL_FEEDS_FAILED
    return EXIT_OK


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    """Everything ``run`` checks before it starts, the model loaded included (so this
    command takes about a second: it imports scikit-learn)."""
    from monitor.preflight import preflight

    findings = preflight(settings, load_model=True)
    enabled = sum(f.enabled for f in settings.feeds)
    print(f"config: {settings.config_path}")
    print(f"feeds: {len(settings.feeds)} ({enabled} enabled)")
    for feed in settings.feeds:
        every = f"every {feed.interval_seconds:g}s" if feed.interval_seconds else "adaptive"
        flag = "" if feed.enabled else "  [disabled]"
        print(f"  - {feed.name}: {feed.url} ({every}){flag}")
    from monitor.store import safe_url

    print(f"storage: {safe_url(settings.storage.database_url)}")
    print(f"keywords: {settings.keywords_file}")
    print(f"model: {_effective_model(settings) or 'shipped default'}")
    print(f"alerts: {settings.alert_destination}")
    print("settings (secrets redacted):")
    print(json.dumps(settings.redacted(), indent=2, default=str))
    sys.stdout.flush()
    for finding in findings:
        print(f"{finding.level}: {finding.message}", file=sys.stderr)
    errors = sum(f.level == "error" for f in findings)
    if errors:
        print(f"configuration error: {errors} problem(s) would stop `run` (see above)",
              file=sys.stderr)
        return EXIT_CONFIG
    print("ok: `run` would start with this configuration")
    return EXIT_OK


# --- classifier commands ---------------------------------------------------------------
def _parse_line(line: str, source: str, number: int) -> dict[str, Any]:
    """One JSON-lines item, or InputError saying what is wrong with the line."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source} line {number}: not valid JSON ({exc.msg})") from None
    if not isinstance(item, dict) or "title" not in item:
        raise InputError(f"{source} line {number}: expected an object with at least 'title'")
    return item


def _read_jsonl(stream: IO[str], source: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield _parse_line(line, source, number)


def _read_jsonl_lenient(stream: IO[str], source: str
                        ) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    """(line number, item or the error for that line): a bad line never ends the input."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield number, _parse_line(line, source, number)
        except InputError as exc:
            yield number, exc


def _open_input(path: str | None) -> tuple[IO[str], str]:
    if path is None:
        return sys.stdin, "<stdin>"
    try:
        return open(path, encoding="utf-8"), path
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def _text(item: dict[str, Any]) -> str:
    title = str(item.get("title") or "").strip()
    summary = str(item.get("summary") or "").strip()
    return article_text(title, summary)


def _load_classifier(settings: Settings, model: str | None, threshold: float | None):
    from monitor.classify import ArticleClassifier

    path = Path(model) if model else _effective_model(settings)
    return ArticleClassifier.load(
        path, threshold=threshold if threshold is not None else settings.classifier.threshold
    )


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


MAX_LINE_ERRORS_SHOWN = 10
"""``score``: bad lines named on stderr before only their count is given."""


def cmd_score(settings: Settings, args: argparse.Namespace) -> int:
    """Score every usable line, in input order. A bad line becomes
    ``{"line": N, "error": "..."}`` in its place (or is skipped with ``--skip-invalid``);
    it never costs the output of the valid lines around it. Exit 1 if any line was bad
    and not skipped, so a pipeline notices."""
    classifier = _load_classifier(settings, args.model, args.threshold)
    model = classifier.model
    stream, source = _open_input(args.input)
    out = sys.stdout
    invalid = 0
    try:
        for batch in _batches(_read_jsonl_lenient(stream, source), 2000):
            good = [item for _, item in batch if not isinstance(item, InputError)]
            results = iter(model.score([_text(item) for item in good],
                                       threshold=classifier.threshold) if good else [])
            for number, item in batch:
                if isinstance(item, InputError):
                    invalid += 1
                    if invalid <= MAX_LINE_ERRORS_SHOWN:
                        print(f"warning: {item}", file=sys.stderr)
                    if not args.skip_invalid:
                        out.write(json.dumps({"line": number, "error": str(item)},
                                             ensure_ascii=False) + "\n")
                    continue
                result = next(results)
                match = result.match
                record = {
                    "id": item.get("id"),
                    "score": round(float(result.score), 6),
                    "match": bool(match),
                    "reason": result.reason,
                }
                if match and result.event_type:
                    record["event_type"] = result.event_type
                why = getattr(result, "why", None)
                if match and why:
                    record["why"] = why
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if stream is not sys.stdin:
            stream.close()
    out.flush()
    if invalid:
        what = "skipped" if args.skip_invalid else "written as error objects"
        print(f"warning: {invalid} unusable line(s) in {source} {what}", file=sys.stderr)
        return EXIT_OK if args.skip_invalid else EXIT_FAILURE
    return EXIT_OK


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    import importlib.util

    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError('eval --plot needs matplotlib: pip install ".[plot]" (or run '
                         "without --plot)")
    from classifiers.evaluate import evaluate, plot_pr_curve

    classifier = _load_classifier(settings, args.model, args.threshold)
    stream, source = _open_input(args.data)
    with stream:
        items = list(_read_jsonl(stream, source))
    labels = []
    for number, item in enumerate(items, start=1):
        if item.get("label") not in (0, 1, True, False):
            raise InputError(f"{source} item {number}: 'label' must be 0 or 1")
        labels.append(int(item["label"]))
    if not items:
        raise InputError(f"{source}: no items")
    scores = classifier.model.predict_proba([_text(item) for item in items])
    report = evaluate(scores, labels, classifier.threshold)
    print(f"model {classifier.version} on {source}")
    print(report.format())
    if args.plot:
        plot_pr_curve(scores, labels, classifier.threshold, args.plot)
        print(f"precision-recall curve written to {args.plot}")
    return EXIT_OK


def _effective_model(settings: Settings) -> Path | None:
    """The model the daemon would load (configured, else a retrained one in the state dir)."""
    from monitor.retrain import effective_model_file

    return effective_model_file(settings)


def _default_model_out(settings: Settings, out: str | None) -> Path:
    if out:
        return Path(out)
    if settings.model_file:
        return settings.model_file
    from classifiers.artefact import default_model_path

    return default_model_path()


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from classifiers import train as training

    if args.dry_run and not args.with_feedback:
        print("error: --dry-run only applies to train --with-feedback", file=sys.stderr)
        return EXIT_CONFIG
    if not args.with_feedback:
        out = _default_model_out(settings, args.out)
        report = training.train(
            keywords_path=settings.keywords_file,
            out_path=out,
            target_precision=settings.classifier.target_precision,
        )
        print(report.format())
        print(f"model saved to {out}")
        return EXIT_OK
    from monitor.app import open_store
    from monitor.retrain import run_retrain

    # Installs to --out, else classifier.model_path, else beside the database: never over
    # the model shipped in the package (see monitor.retrain).
    store = open_store(settings, check_writable=False)
    try:
        outcome = run_retrain(settings, store, out=Path(args.out) if args.out else None,
                              dry_run=args.dry_run)
    finally:
        store.close()
    print(outcome.report)
    if outcome.status == "installed":
        print("restart the daemon (`run`) to use the new model")
    return EXIT_FAILURE if outcome.status in ("too_few_labels", "failed") else EXIT_OK


# --- store commands ----------------------------------------------------------------------
def _database_file(settings: Settings) -> Path | None:
    """The SQLite file, or None for an in-memory database or a server (PostgreSQL)."""
    from monitor.store import is_postgres, sqlite_path

    if is_postgres(settings.storage.database_url):
        return None
    path = sqlite_path(settings.storage.database_url)
    return None if path == ":memory:" else Path(path)


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    """``db upgrade`` applies the migrations the configured database lacks (the daemon does
    too, at start-up); ``db migrate-from`` copies an SQLite state into PostgreSQL."""
    from monitor import store as backend

    url = settings.storage.database_url
    if args.action == "migrate-from":
        if not args.source or not args.source.startswith("sqlite:///"):
            raise UsageError("db migrate-from needs the SQLite database to copy: "
                             "db migrate-from sqlite:///path/to/old.db")
        if not backend.is_postgres(url):
            raise UsageError("db migrate-from copies into PostgreSQL: set storage.database_url "
                             "(or MONITOR_DATABASE_URL) to a postgresql:// URL")
    elif args.source:
        raise UsageError("db upgrade takes no argument (it upgrades the configured database)")
    store = _open_writing(settings)
    try:
        if args.action == "upgrade":
            print(f"schema version {store.schema_version()}: up to date")
            return EXIT_OK
        from monitor.store.pg_import import copy_sqlite_state

        copies = copy_sqlite_state(backend.sqlite_path(args.source), store)
    finally:
        store.close()
    for copy in copies:
        print(f"{copy.table:<13} {copy.copied:>8} copied  {copy.already_there:>8} already there")
    print(f"done: {sum(c.copied for c in copies)} row(s) copied from {args.source}")
    return EXIT_OK


def _open_reading(settings: Settings) -> Store | None:
    """The store for a command that only reads, or None when the database does not exist
    yet: looking must never create one (in the wrong directory, say)."""
    from monitor import store as backend

    path = _database_file(settings)
    if path is not None and not path.exists():
        return None
    return backend.open_store(settings.storage.database_url,
                              busy_timeout=settings.storage.busy_timeout_seconds)


def _open_writing(settings: Settings) -> Store:
    """The store for a command that writes, proven writable (as ``monitor.app.open_store``,
    without importing the daemon)."""
    from monitor import store as backend

    store = backend.open_store(settings.storage.database_url,
                               busy_timeout=settings.storage.busy_timeout_seconds)
    try:
        store.check_writable()
    except StoreError:
        store.close()
        raise
    return store


def _no_database(settings: Settings) -> str:
    return (f"no database at {_database_file(settings)} yet: nothing stored (run `once` or "
            "`run` first, or check storage.database_url and the working directory)")


def cmd_label(settings: Settings, args: argparse.Namespace) -> int:
    store = _open_writing(settings)
    try:
        found = store.get_article(args.article_id)
        if found is None:
            print(f"error: no stored article with id {args.article_id!r} "
                  "(see `articles` for ids)", file=sys.stderr)
            return EXIT_FAILURE
        value = 1 if args.verdict == "relevant" else 0
        store.add_label(args.article_id, value, source="cli", at=datetime.now(UTC),
                        user_id=_os_user())
    finally:
        store.close()
    article, _ = found
    print(f"labelled {args.article_id} as {args.verdict}: {article.title}")
    return EXIT_OK


def _os_user() -> str | None:
    """Who ran ``label`` (kept with the label, as a Slack user id is for a button press)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name (some containers)
        return None


def cmd_mutes(settings: Settings, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.action == "remove":
        if args.mute_id is None:
            raise UsageError("mutes remove needs the ID shown by `mutes list`")
        store = _open_writing(settings)
        try:
            removed = store.remove_mute(args.mute_id, at=now)
        finally:
            store.close()
        if not removed:
            print(f"error: no active or expired mute with id {args.mute_id} "
                  "(see `mutes list`)", file=sys.stderr)
            return EXIT_FAILURE
        print(f"mute {args.mute_id} removed: alerts for it are sent again")
        return EXIT_OK
    reader = _open_reading(settings)
    found = []
    if reader is not None:
        try:
            found = reader.list_mutes()
        finally:
            reader.close()
    if not found:
        print("no mutes (analysts mute an outlet or a story with the buttons on a Slack alert)")
        return EXIT_OK
    print(f"{'id':>4}  {'kind':<6}  {'status':<7}  {'by':<12}  {'expires (UTC)':<16}  value")
    for mute in found:
        status = mute.status(now)
        print(f"{mute.id:>4}  {mute.kind:<6}  {status:<7}  {mute.created_by[:12]:<12}  "
              f"{mute.expires_at.astimezone(UTC):%Y-%m-%d %H:%M}  {mute.value[:80]}")
    return EXIT_OK


def _feed_states(settings: Settings) -> dict[str, FeedState]:
    reader = _open_reading(settings)
    if reader is None:
        return {}
    try:
        return {s.name: s for s in reader.all_feed_states()}
    finally:
        reader.close()


def _styled() -> bool:
    """A rich table for a person at a terminal; plain lines for pipes and scripts."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def cmd_feeds(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "import-opml":
        return _import_opml(settings, args)
    if args.action == "export-opml":
        return _export_opml(settings, args)
    if args.action == "add":
        return _add_feed(settings, args)
    if args.action == "disable":
        return _disable_feed(settings, args)
    from monitor.feedview import feed_health, print_feeds

    rows = feed_health(settings.feeds, _feed_states(settings))
    print_feeds(rows, sys.stdout, rich_table=_styled())
    return EXIT_OK


def _add_feed(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.configedit import add_feed

    if not args.file:
        raise UsageError("feeds add needs the feed URL: feeds add URL [--name NAME]")
    assert settings.config_path is not None
    added, name = add_feed(settings.config_path, args.file, name=args.name)
    if not added:
        print(f"{args.file} is already in {settings.config_path} as {name!r}; nothing changed")
        return EXIT_OK
    print(f"feed {name!r} added to {settings.config_path}; a running daemon picks it up "
          "when restarted")
    return EXIT_OK


def _disable_feed(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.configedit import disable_feed

    if not args.file:
        raise UsageError("feeds disable needs the feed's NAME (see `feeds`)")
    assert settings.config_path is not None
    if disable_feed(settings.config_path, args.file):
        print(f"feed {args.file!r} disabled in {settings.config_path}; a running daemon "
              "stops polling it when restarted")
    else:
        print(f"feed {args.file!r} is already disabled; nothing changed")
    return EXIT_OK


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """The whole daemon at a glance, from the database and the model's sidecar only."""
    from monitor.errors import ClassifyError
    from monitor.feedview import feed_health, print_status, status_view
    from monitor.preflight import model_info

    reader = _open_reading(settings)
    states: dict[str, FeedState] = {}
    outbox: dict[str, int] = {}
    if reader is not None:
        try:
            states = {s.name: s for s in reader.all_feed_states()}
            outbox = reader.outbox_counts()
        finally:
            reader.close()
    try:
        info = model_info(settings)
        version, threshold = info.version, info.threshold
    except ClassifyError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        version = threshold = None
    source = "the model's"
    if settings.classifier.threshold is not None:
        threshold, source = settings.classifier.threshold, "classifier.threshold"
    from monitor.store import safe_url

    database = str(_database_file(settings) or safe_url(settings.storage.database_url))
    if reader is None:
        database += " (does not exist yet)"
    view = status_view(feed_health(settings.feeds, states), outbox, model_version=version,
                       threshold=threshold, threshold_source=source, database=database)
    print_status(view, sys.stdout, rich_table=_styled())
    return EXIT_OK


def _import_opml(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.configedit import replace_config
    from monitor.opml import merge_into_config_toml, read_opml_file

    if not args.file:
        raise UsageError("feeds import-opml needs the OPML FILE to read")
    assert settings.config_path is not None
    doc = read_opml_file(args.file)
    for warning in doc.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    target = Path(args.output) if args.output else settings.config_path
    text = settings.config_path.read_bytes().decode("utf-8")
    note = f"imported from {Path(args.file).name} on {datetime.now(UTC):%Y-%m-%d}"
    merged, added, skipped = merge_into_config_toml(text, doc.feeds, note=note)
    if added:
        # Validated next to the config (relative paths resolve the same), then swapped in.
        replace_config(settings.config_path, merged, target)
    print(f"{added} feed(s) added to {target}, {skipped} already present")
    return EXIT_OK


def _export_opml(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.opml import write_opml

    feeds = [(f.name, f.url, f.tags) for f in settings.feeds if f.url.startswith("http")]
    data = write_opml(feeds, title="DPRK–Russia news monitor feeds")
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"{len(feeds)} feed(s) written to {args.output}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def cmd_articles(settings: Settings, args: argparse.Namespace) -> int:
    store = _open_reading(settings)
    if store is None:
        print(_no_database(settings))
        return EXIT_OK
    try:
        rows = store.recent_articles(limit=args.limit, matches_only=args.matches)
    finally:
        store.close()
    if not rows:
        print("no matches stored yet" if args.matches else
              "no articles stored yet (the database is empty: run `once` or `run`)")
        return EXIT_OK
    for row in rows:
        score = f"{row.score:.2f}" if row.score is not None else "  - "
        mark = "MATCH" if row.match else "     "
        story = row.story_id or "-"
        print(f"{row.article_id}  {score} {mark}  story {story[:14]}  [{row.source}] "
              f"{row.title[:100]}")
    return EXIT_OK


def cmd_stories(settings: Settings, args: argparse.Namespace) -> int:
    store = _open_reading(settings)
    if store is None:
        print(_no_database(settings))
        return EXIT_OK
    try:
        found = store.recent_stories(since=datetime.now(UTC) - args.since, limit=args.limit)
    finally:
        store.close()
    shown = [s for s in found if args.all or s.member_count > 1 or s.parent_status]
    if not shown:
        print(f"no stories in the last {_describe_duration(args.since)}"
              + ("" if args.all else " with an alert or more than one report (--all shows all)"))
        return EXIT_OK
    for story in shown:
        alert = story.parent_status or "no alert"
        print(f"{story.story_id[:14]}  {story.source_count:>3} outlet(s) {story.member_count:>3} "
              f"report(s)  last {story.last_seen_at:%Y-%m-%d %H:%M}  alert: {alert}"
              + (f", {story.replies} repl{'y' if story.replies == 1 else 'ies'}"
                 if story.replies else ""))
        print(f"    [{story.source}] {story.title[:110]}")
    return EXIT_OK


def _duration(text: str) -> timedelta:
    """``90m``, ``24h``, ``7d``: argparse turns a ValueError into a usage error (exit 2)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", text or "")
    if not match:
        raise ValueError(f"not a duration like 90m, 24h or 7d: {text!r}")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def _describe_duration(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"


def cmd_outbox(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "requeue-failed":
        store: Store | None = _open_writing(settings)
    else:
        store = _open_reading(settings)
    if store is None:
        print(_no_database(settings))
        return EXIT_OK
    try:
        if args.action == "requeue-failed":
            print(f"requeued {store.requeue_failed_alerts(now=datetime.now(UTC))} parked alert(s)")
        print(" ".join(f"{k}={v}" for k, v in store.outbox_counts().items()))
        groups = store.outbox_causes()
    finally:
        store.close()
    for group in groups:
        next_try = (f", next attempt {group.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
                    if group.status == "pending" and group.next_attempt_at else "")
        print(f"  {group.status:<9} {group.count:>5} alert(s), up to {group.max_attempts} "
              f"attempt(s){next_try}: {group.cause}")
    return EXIT_OK


def cmd_digest(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from monitor.app import build_deliverers, open_store
    from monitor.digest import build_digest, digest_console, post_digest

    store = open_store(settings, check_writable=args.post)
    try:
        d = settings.digest
        now = datetime.now(UTC)
        digest = build_digest(store, now=now, timezone=d.timezone, hours=d.hours,
                              max_stories=d.max_stories)
        if not args.post:
            print(digest_console(digest))
            return EXIT_OK
        destination = settings.alert_destination
        deliverer = build_deliverers(settings)[destination]

        async def send() -> bool:
            try:
                return await post_digest(store, deliverer, digest, destination=destination,
                                         now=now)
            finally:
                await deliverer.aclose()

        posted = asyncio.run(send())
        print(f"digest {digest.digest_id}: " + ("posted" if posted else
                                                 "not posted (already sent today, or failed)"))
        return EXIT_OK if posted else EXIT_FAILURE
    finally:
        store.close()


def cmd_slack_test(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from monitor.app import build_deliverers

    if settings.sink != "slack":
        print("error: Slack is not configured: set SLACK_BOT_TOKEN and SLACK_CHANNEL "
              "(see README, Slack setup)", file=sys.stderr)
        return EXIT_CONFIG
    failed = False
    for destination, deliverer in build_deliverers(settings).items():

        async def check(deliverer: object = deliverer) -> list[str]:
            try:
                return await deliverer.check(post_test_message=True)  # type: ignore[attr-defined]
            finally:
                await deliverer.aclose()  # type: ignore[attr-defined]

        try:
            for line in asyncio.run(check()):
                print(f"ok: {destination}: {line}")
        except DeliveryError as exc:
            print(f"error: {destination}: {exc}", file=sys.stderr)
            failed = True
    return EXIT_FAILURE if failed else EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "once": cmd_once,
    "check-config": cmd_check_config,
    "status": cmd_status,
    "score": cmd_score,
    "eval": cmd_eval,
    "train": cmd_train,
    "label": cmd_label,
    "feeds": cmd_feeds,
    "articles": cmd_articles,
    "stories": cmd_stories,
    "slack-test": cmd_slack_test,
    "digest": cmd_digest,
    "outbox": cmd_outbox,
    "mutes": cmd_mutes,
    "db": cmd_db,
}
