"""Command-line interface: ``python -m monitor COMMAND`` (or ``news-monitor COMMAND``).

Exit codes: 0 success, 1 the command failed at run time (e.g. no usable
model), 2 configuration or usage error (the message names the file and key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from classifiers.text import article_text
from monitor.errors import ClassifyError, DeliveryError, MonitorError, SettingsError, StoreError
from monitor.logs import configure_logging
from monitor.opml import OpmlError
from monitor.settings import Settings, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
EXIT_STORAGE = 3
"""``once``: the database refused a read or write, so some of the cycle was not stored."""
EXIT_ALL_FEEDS_FAILED = 4
"""``once``: every enabled feed failed (for cron jobs and health checks)."""
log = logging.getLogger("monitor.cli")


class InputError(MonitorError):
    """A line of a JSON-lines input file is unusable."""


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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon until SIGINT/SIGTERM")
    sub.add_parser("once", parents=[common], help="poll every feed once, deliver alerts, exit")
    sub.add_parser("check-config", parents=[common], help="validate the config and print a summary")

    score = sub.add_parser("score", parents=[common], help="score JSON lines {id,title,summary}")
    score.add_argument("--model", metavar="PATH", help="model file (default: configured/shipped)")
    score.add_argument("--input", metavar="FILE", help="JSON-lines input (default: stdin)")
    score.add_argument("--threshold", type=float, help="override the match threshold")

    ev = sub.add_parser("eval", parents=[common], help="evaluate on labelled JSON lines")
    ev.add_argument("--data", metavar="FILE", required=True, help="JSON lines with a 'label' 0/1")
    ev.add_argument("--model", metavar="PATH")
    ev.add_argument("--threshold", type=float)
    ev.add_argument("--plot", metavar="FILE.png", help="write a precision-recall curve")

    train = sub.add_parser("train", parents=[common], help="train and save the classifier")
    train.add_argument("--out", metavar="PATH", help="where to save (default: configured/shipped)")
    train.add_argument(
        "--with-feedback", action="store_true",
        help="add analysts' labels from the database; install only if not worse",
    )

    label = sub.add_parser("label", parents=[common], help="record an analyst's label")
    label.add_argument("article_id")
    label.add_argument("verdict", choices=["relevant", "irrelevant"])

    feeds = sub.add_parser(
        "feeds", parents=[common], help="feed health; import/export OPML subscriptions"
    )
    feeds.add_argument(
        "action", nargs="?", default="list", choices=["list", "import-opml", "export-opml"]
    )
    feeds.add_argument("file", nargs="?", metavar="FILE", help="OPML file to import")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        configure_logging("INFO")
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.logging.level)
    handler = COMMANDS[args.command]
    try:
        return handler(settings, args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (ClassifyError, StoreError, InputError, OpmlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `… | head` closed the pipe: end quietly, as a filter should
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


# --- daemon commands -----------------------------------------------------------------
def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.app import run_forever

    asyncio.run(run_forever(settings))
    return EXIT_OK


def cmd_once(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.app import run_once

    result = asyncio.run(run_once(settings))
    if result.store_errors:
        print(f"error: {result.store_errors} storage operation(s) failed during the cycle; "
              "what failed is polled again on the next run", file=sys.stderr)
        return EXIT_STORAGE
    if result.all_failed:
        print(f"error: all {len(result.reports)} feed(s) failed", file=sys.stderr)
        return EXIT_ALL_FEEDS_FAILED
    return EXIT_OK


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    enabled = sum(f.enabled for f in settings.feeds)
    print(f"config: {settings.config_path}")
    print(f"feeds: {len(settings.feeds)} ({enabled} enabled)")
    for feed in settings.feeds:
        every = f"every {feed.interval_seconds:g}s" if feed.interval_seconds else "adaptive"
        flag = "" if feed.enabled else "  [disabled]"
        print(f"  - {feed.name}: {feed.url} ({every}){flag}")
    print(f"storage: {settings.storage.database_url}")
    print(f"keywords: {settings.keywords_file}")
    print(f"model: {settings.model_file or 'shipped default'}")
    print(f"alerts: {settings.alert_destination}")
    print("settings (secrets redacted):")
    print(json.dumps(settings.redacted(), indent=2, default=str))
    return EXIT_OK


# --- classifier commands ---------------------------------------------------------------
def _read_jsonl(stream: IO[str], source: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(item, dict) or "title" not in item:
            raise InputError(f"{source} line {number}: expected an object with at least 'title'")
        yield item


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

    path = Path(model) if model else settings.model_file
    return ArticleClassifier.load(
        path, threshold=threshold if threshold is not None else settings.classifier.threshold
    )


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_score(settings: Settings, args: argparse.Namespace) -> int:
    classifier = _load_classifier(settings, args.model, args.threshold)
    model = classifier.model
    stream, source = _open_input(args.input)
    out = sys.stdout
    try:
        for batch in _batches(_read_jsonl(stream, source), 2000):
            results = model.score([_text(item) for item in batch],
                                  threshold=classifier.threshold)
            for item, result in zip(batch, results, strict=True):
                match = result.match
                record = {
                    "id": item.get("id"),
                    "score": round(float(result.score), 6),
                    "match": bool(match),
                    "reason": result.reason,
                }
                if match and result.event_type:
                    record["event_type"] = result.event_type
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if stream is not sys.stdin:
            stream.close()
    out.flush()
    return EXIT_OK


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
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


def _default_model_out(settings: Settings, out: str | None) -> Path:
    if out:
        return Path(out)
    if settings.model_file:
        return settings.model_file
    from classifiers.artefact import default_model_path

    return default_model_path()


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from classifiers import train as training

    out = _default_model_out(settings, args.out)
    if not args.with_feedback:
        report = training.train(
            keywords_path=settings.keywords_file,
            out_path=out,
            target_precision=settings.classifier.target_precision,
        )
        print(report.format())
        print(f"model saved to {out}")
        return EXIT_OK
    from classifiers.data import Example
    from monitor.app import open_store

    store = open_store(settings, check_writable=False)
    try:
        labelled = store.labelled_articles()
    finally:
        store.close()
    if not labelled:
        print("no analyst labels in the database yet; use `label ARTICLE_ID relevant|irrelevant`")
        return EXIT_FAILURE
    extra = [
        Example(id=f"feedback-{a.id}", title=a.title, summary=a.summary, label=label,
                event_type="feedback", style="feedback", date=a.published_at.strftime("%Y-%m"))
        for a, label in labelled
    ]
    decision = training.retrain_with_feedback(
        current_path=settings.model_file,
        extra_examples=extra,
        out_path=out,
        keywords_path=settings.keywords_file,
        target_precision=settings.classifier.target_precision,
    )
    log.info("feedback retraining with %d labels: %s", len(extra), decision.format())
    print(decision.format())
    return EXIT_OK


# --- store commands ----------------------------------------------------------------------
def cmd_label(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.app import open_store

    store = open_store(settings)
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
    from monitor.app import open_store

    now = datetime.now(UTC)
    if args.action == "remove":
        if args.mute_id is None:
            raise InputError("mutes remove needs the ID shown by `mutes list`")
        store = open_store(settings)
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
    store = open_store(settings, check_writable=False)
    try:
        found = store.list_mutes()
    finally:
        store.close()
    if not found:
        print("no mutes (analysts mute an outlet or a story with the buttons on a Slack alert)")
        return EXIT_OK
    print(f"{'id':>4}  {'kind':<6}  {'status':<7}  {'by':<12}  {'expires (UTC)':<16}  value")
    for mute in found:
        status = mute.status(now)
        print(f"{mute.id:>4}  {mute.kind:<6}  {status:<7}  {mute.created_by[:12]:<12}  "
              f"{mute.expires_at.astimezone(UTC):%Y-%m-%d %H:%M}  {mute.value[:80]}")
    return EXIT_OK


def cmd_feeds(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "import-opml":
        return _import_opml(settings, args)
    if args.action == "export-opml":
        return _export_opml(settings, args)
    from monitor.app import open_store

    store = open_store(settings, check_writable=False)
    try:
        states = {s.name: s for s in store.all_feed_states()}
    finally:
        store.close()
    for feed in settings.feeds:
        state = states.get(feed.name)
        if state is None:
            print(f"{feed.name}: never polled")
            continue
        last = state.last_success_at
        ok = last.isoformat(timespec="seconds") if last else "never"
        line = (f"{feed.name}: polls={state.polls} errors={state.error_count} "
                f"consecutive={state.consecutive_errors} last_success={ok}")
        if state.consecutive_errors and state.last_error:
            line += f" last_error={state.last_error[:200]}"
        print(line)
    return EXIT_OK


def _import_opml(settings: Settings, args: argparse.Namespace) -> int:
    import os
    import tempfile

    from monitor.opml import merge_into_config_toml, read_opml_file

    if not args.file:
        raise InputError("feeds import-opml needs the OPML FILE to read")
    assert settings.config_path is not None
    doc = read_opml_file(args.file)
    for warning in doc.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    target = Path(args.output) if args.output else settings.config_path
    text = settings.config_path.read_bytes().decode("utf-8")
    note = f"imported from {Path(args.file).name} on {datetime.now(UTC):%Y-%m-%d}"
    merged, added, skipped = merge_into_config_toml(text, doc.feeds, note=note)
    if added:
        # Validate next to the config (relative paths resolve the same), then swap in.
        fd, tmp = tempfile.mkstemp(suffix=".toml", dir=settings.config_path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(merged.encode("utf-8"))
            load_settings(tmp, env={})
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
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
    from monitor.app import open_store

    store = open_store(settings, check_writable=False)
    try:
        rows = store.recent_articles(limit=args.limit, matches_only=args.matches)
    finally:
        store.close()
    for row in rows:
        score = f"{row.score:.2f}" if row.score is not None else "  - "
        mark = "MATCH" if row.match else "     "
        story = row.story_id or "-"
        print(f"{row.article_id}  {score} {mark}  story {story[:14]}  [{row.source}] "
              f"{row.title[:100]}")
    return EXIT_OK


def cmd_stories(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.app import open_store

    store = open_store(settings, check_writable=False)
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
    from monitor.app import open_store

    store = open_store(settings, check_writable=args.action == "requeue-failed")
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
}
