"""Retraining on the analysts' labels: ``train --with-feedback`` and the weekly job.

The classifier package knows nothing about the store or label times; this module
turns the store's labels into training examples (each weighing ``[retrain]
label_weight`` written examples), holds the newest ``holdout_fraction`` of them out
*by label time* as the second yardstick, and hands both to
``classifiers.train.retrain_with_feedback``, whose guard decides the install.

Why by time: the next labels come from next week's news, so the fairest test of a
retrain is the most recent labels it has not seen; a random split would let
near-copies of one week's story sit on both sides.

Where a model is installed: ``classifier.model_path`` when configured, else
``model.skops`` beside the SQLite database (``retrained_model_path``), never over the
model shipped inside the package. The daemon and the CLI load that file when it
exists (``effective_model_file``); the running daemon uses it after a restart (its
classifier worker processes hold the model in memory, so a hot swap is not safe).

The weekly job runs the retrain in a separate low-priority process: training is
CPU-bound pure Python in places (tokenising), which in a thread would hold the GIL
and stall the event loop's polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from monitor.settings import Settings
from monitor.store import sqlite_path

if TYPE_CHECKING:
    from classifiers.data import Example
    from classifiers.train import RetrainDecision
    from monitor.alerts.notices import Notifier
    from monitor.store.base import Store

log = logging.getLogger("monitor.retrain")

RETRAINED_MODEL_NAME = "model.skops"

Status = Literal["installed", "kept", "would_install", "would_keep", "too_few_labels",
                 "failed"]


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    """What a retrain did, as the CLI prints it (``report``) and the ops channel reads it
    (``notice``: one message). Plain strings, so it crosses a process boundary."""

    status: Status
    report: str
    notice: str
    n_labels: int = 0


@dataclass(frozen=True, slots=True)
class LabelledFeedback:
    """The analysts' labels as examples, split by label time."""

    train: list[Example]
    holdout: list[Example]

    @property
    def total(self) -> int:
        return len(self.train) + len(self.holdout)


# -- where the model lives ----------------------------------------------------------------
def retrained_model_path(settings: Settings) -> Path | None:
    """Where a retrained model is installed: the configured file, else beside the database.

    None when neither exists (an in-memory database): the caller must name a file.
    """
    if settings.model_file is not None:
        return settings.model_file
    db = sqlite_path(settings.storage.database_url)
    if not db or db.startswith(":memory:"):
        return None
    return Path(db).expanduser().resolve().parent / RETRAINED_MODEL_NAME


def effective_model_file(settings: Settings) -> Path | None:
    """The model the daemon and CLI load: configured, else a retrained one, else None
    (the shipped default)."""
    if settings.model_file is not None:
        return settings.model_file
    installed = retrained_model_path(settings)
    return installed if installed is not None and installed.is_file() else None


# -- labels → examples ------------------------------------------------------------------------
def labelled_feedback(store: Store, *, label_weight: float,
                      holdout_fraction: float) -> LabelledFeedback:
    """Each labelled article's latest label as an example, newest ``holdout_fraction`` out.

    The label time is the latest label event's (a relabel makes the item new again);
    ties break by id so the split is reproducible. At least one label always stays
    in training.
    """
    from classifiers.data import Example

    dated: list[tuple[datetime, Example]] = []
    for article, label in store.labelled_articles():
        history = store.label_history(article.id)
        at = history[-1].created_at if history else article.first_seen_at
        dated.append((at, Example(
            id=f"feedback-{article.id}", title=article.title, summary=article.summary,
            label=label, event_type="feedback", style="feedback",
            date=article.published_at.strftime("%Y-%m"), weight=label_weight)))
    dated.sort(key=lambda pair: (pair[0], pair[1].id))
    examples = [e for _, e in dated]
    n_holdout = min(math.ceil(len(examples) * holdout_fraction), max(len(examples) - 1, 0))
    cut = len(examples) - n_holdout
    return LabelledFeedback(train=examples[:cut], holdout=examples[cut:])


# -- the retrain --------------------------------------------------------------------------------
def _summary(decision: RetrainDecision) -> str:
    """The guarded numbers in one line, for the ops notice."""
    parts = [f"{c.name} {c.current:.6f} → {c.candidate:.6f} ({c.difference:+.6f})"
             for c in decision.checks if c.guarded]
    return "; ".join(parts) or "no comparison (the current model could not be loaded)"


def run_retrain(settings: Settings, store: Store, *, out: Path | None = None,
                dry_run: bool = False,
                data_files: Sequence[Path] | None = None) -> RetrainOutcome:
    """Retrain with the analysts' labels and install if the guard passes (not in a dry run).

    Synchronous and CPU-heavy (tens of seconds): the daemon calls it in a process.
    """
    from classifiers import train as training

    r = settings.retrain
    feedback = labelled_feedback(store, label_weight=r.label_weight,
                                 holdout_fraction=r.holdout_fraction)
    if feedback.total < r.min_labels:
        if feedback.total == 0:
            why = ("no analyst labels in the database yet; use `label ARTICLE_ID "
                   "relevant|irrelevant` or the Slack buttons")
        else:
            why = (f"only {feedback.total} analyst label(s); at least {r.min_labels} are "
                   "needed ([retrain] min_labels)")
        return RetrainOutcome("too_few_labels", why, f"retrain skipped: {why}", feedback.total)
    target = out or retrained_model_path(settings)
    if target is None:
        why = ("nowhere to install the model: set classifier.model_path (the database is "
               "in memory) or pass --out")
        return RetrainOutcome("failed", why, f"retrain failed: {why}", feedback.total)
    decision = training.retrain_with_feedback(
        current_path=effective_model_file(settings),
        extra_examples=feedback.train,
        holdout_examples=feedback.holdout,
        out_path=target,
        data_files=data_files,
        keywords_path=settings.keywords_file,
        target_precision=settings.classifier.target_precision,
        tolerance=r.tolerance,
        dry_run=dry_run,
    )
    report = decision.format()
    log.info("feedback retraining with %d labels:\n%s", feedback.total, report)
    if dry_run:
        status: Status = "would_install" if decision.would_install else "would_keep"
        notice = f"retrain {decision.verdict}: {decision.reason}; {_summary(decision)}"
    elif decision.installed:
        status = "installed"
        notice = (f"retrain installed model {decision.candidate_version} in {target} "
                  f"(replacing {decision.current_version or 'an unusable model'}; restart the "
                  f"daemon to use it) with {feedback.total} analysts' labels "
                  f"({decision.n_holdout} newest held out): {_summary(decision)}")
    else:
        status = "kept"
        notice = (f"retrain kept model {decision.current_version} (candidate "
                  f"{decision.candidate_version} not installed): {decision.reason}; "
                  f"{feedback.total} analysts' labels, {decision.n_holdout} newest held out; "
                  f"{_summary(decision)}")
    return RetrainOutcome(status, report, notice, feedback.total)


def _retrain_in_child(settings: Settings, data_files: Sequence[Path] | None,
                      conn: Connection) -> None:
    """The process side of the weekly job: its own store connection, at low priority."""
    from monitor.store import open_store

    with contextlib.suppress(OSError):
        os.nice(10)  # the daemon's polls come first on a small machine
    try:
        store = open_store(settings.storage.database_url,
                           busy_timeout=settings.storage.busy_timeout_seconds)
        try:
            outcome = run_retrain(settings, store, data_files=data_files)
        finally:
            store.close()
    except Exception as exc:  # reported by the parent as the job's notice
        outcome = RetrainOutcome("failed", str(exc), f"retrain failed ({type(exc).__name__}: "
                                 f"{exc}); the current model stays")
    conn.send(outcome)
    conn.close()


def _receive(conn: Connection, process: BaseProcess) -> RetrainOutcome:
    try:
        outcome = conn.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"the retrain process ended without an answer (exit code "
                           f"{process.exitcode})") from None
    finally:
        conn.close()
    process.join()
    return outcome


async def _in_process(settings: Settings, data_files: Sequence[Path] | None) -> RetrainOutcome:
    """Run in a child process; a cancelled job (daemon stopping) kills it at once."""
    from monitor.worker_context import worker_context

    context = worker_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_retrain_in_child, args=(settings, data_files, sender),
                              name="monitor-retrain", daemon=True)
    await asyncio.to_thread(process.start)  # may start the forkserver: blocking
    sender.close()
    try:
        return await asyncio.to_thread(_receive, receiver, process)
    except asyncio.CancelledError:
        process.kill()  # the reading thread then sees end-of-file and returns
        raise


async def scheduled_retrain(settings: Settings, notifier: Notifier, *,
                            store: Store | None = None,
                            data_files: Sequence[Path] | None = None) -> RetrainOutcome:
    """The weekly job: retrain off the event loop, then post exactly one ops notice.

    Without ``store`` the retrain runs in a separate process with its own store
    connection (the daemon's way); with one, in a thread on that store (tests, and
    callers that already hold the store). Never raises: a failure is the notice.
    """
    try:
        if store is not None:
            outcome = await asyncio.to_thread(run_retrain, settings, store,
                                              data_files=data_files)
        else:
            outcome = await _in_process(settings, data_files)
    except Exception as exc:  # a failed retrain must not take the daemon down
        log.exception("weekly retrain failed")
        outcome = RetrainOutcome("failed", str(exc),
                                 f"weekly retrain failed ({type(exc).__name__}: {exc}); "
                                 "the current model stays; try `python -m monitor train "
                                 "--with-feedback --dry-run`")
    else:
        outcome = RetrainOutcome(outcome.status, outcome.report, "weekly " + outcome.notice,
                                 outcome.n_labels)
    await notifier.notify(outcome.notice)
    return outcome


__all__ = ["LabelledFeedback", "RetrainOutcome", "effective_model_file", "labelled_feedback",
           "retrained_model_path", "run_retrain", "scheduled_retrain"]
