"""The guarded retrain: the install rule, unrounded numbers, dry run, labels held out by time,
and the weekly job's one ops notice (real training on a small slice of the shipped data)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import classifiers
from classifiers.artefact import metadata_path, sha256_file
from classifiers.data import Example, load_examples, split_frozen
from classifiers.evaluate import EvalReport
from classifiers.train import (
    GuardCheck,
    RetrainDecision,
    guard_verdict,
    retrain_with_feedback,
    train,
)
from monitor.alerts.notices import Notifier
from monitor.models import Article, Verdict
from monitor.retrain import (
    effective_model_file,
    labelled_feedback,
    retrained_model_path,
    run_retrain,
    scheduled_retrain,
)
from monitor.settings import load_settings
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.test_classifier_train import _subsample, _write

NOW = datetime(2025, 3, 3, 3, 0, tzinfo=UTC)
OPS = "C0OTHER22"

# Analysts' labels on production-like items, in our own words: clear cases either way.
FEEDBACK = [
    (1, "Russian freighter unloads North Korean artillery shells at Vostochny port",
     "Satellite photos show containers moved from a North Korean ship to a Russian train."),
    (1, "Kim Jong Un and Putin sign agreement on military cooperation",
     "The North Korean and Russian leaders pledged mutual assistance."),
    (0, "North Korea fires cruise missiles into the Yellow Sea",
     "South Korea's military said the launches were detected in the morning."),
    (0, "Russian strikes hit power plants across Ukraine", "Kyiv reported blackouts."),
    (1, "North Korean troops deployed to Russia's Kursk region, Seoul says",
     "Intelligence officials said thousands of soldiers fight alongside Russian units."),
    (0, "China and Russia hold joint naval exercise", "Warships trained near Vladivostok."),
    (1, "Lavrov meets North Korean foreign minister in Pyongyang",
     "Russia and North Korea promised closer ties."),
    (0, "South Korea and Japan agree to share missile warning data", "The deal was signed."),
]


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    shutil.copy(metadata_path(src), metadata_path(dst))
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("data") / "small.jsonl", _subsample(70, 130))


@pytest.fixture(scope="module")
def models(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``good``: trained on the slice; ``damaged``: trained with every label inverted (a
    systematic error any honest candidate fixes; a milder damage is within the noise of
    the slice's 42-item frozen split, which is the point of the tolerance)."""
    folder = tmp_path_factory.mktemp("models")
    train([data], out_path=folder / "good.skops", kind="logreg")
    damaged = [replace(e, label=1 - e.label) for e in load_examples([data])]
    train([_write(folder / "damaged.jsonl", damaged)], out_path=folder / "damaged.skops",
          kind="logreg")
    return {"good": folder / "good.skops", "damaged": folder / "damaged.skops"}


def _feedback(weight: float = 5.0) -> list[Example]:
    return [Example(f"feedback-{i}", title, summary, label, "feedback", "feedback", "2025-03",
                    weight=weight) for i, (label, title, summary) in enumerate(FEEDBACK)]


# -- the rule -------------------------------------------------------------------------------------
def test_guard_tolerates_a_fifth_decimal_and_refuses_a_real_loss() -> None:
    # The case from the Slack issue: better F1, PR-AUC lower in the fifth decimal.
    checks = [GuardCheck("frozen test F1", 0.929348, 0.931507, True),
              GuardCheck("frozen test PR-AUC", 0.977336, 0.977326, True),
              GuardCheck("frozen test precision", 0.95, 0.80, False)]  # shown, not guarded
    install, reason = guard_verdict(checks, 0.005)
    assert install and "better on frozen test F1" in reason
    assert not guard_verdict(checks, 0.0)[0]  # the old zero tolerance refused it

    worse = [GuardCheck("frozen test F1", 0.93, 0.94, True),
             GuardCheck("held-out labels accuracy", 0.9, 0.85, True)]
    install, reason = guard_verdict(worse, 0.005)
    assert not install
    assert "held-out labels accuracy 0.850000 is below the current 0.900000 by 0.050000" in reason

    same = [GuardCheck("frozen test F1", 0.93, 0.93, True)]
    assert guard_verdict(same, 0.005) == (
        False, "no guarded metric is better than the current model's")


def test_comparison_prints_unrounded_numbers_side_by_side() -> None:
    current = EvalReport(0.934066, 0.923913, 0.928962, 0.977336, 0.343126, 170, 12, 14, 328)
    candidate = EvalReport(0.939227, 0.923913, 0.931507, 0.977326, 0.350089, 170, 11, 14, 329)
    checks = (GuardCheck("frozen test F1", current.f1, candidate.f1, True),
              GuardCheck("frozen test PR-AUC", current.pr_auc, candidate.pr_auc, True))
    text = RetrainDecision(
        installed=False, reason="x", current_version="cur", candidate_version="cand",
        current=current, candidate=candidate, n_extra=22, out_path=Path("m.skops"),
        n_holdout=8, label_weight=5.0, checks=checks, dry_run=True, would_install=True,
    ).format()
    assert "0.977336" in text and "0.977326" in text and "-0.000010" in text
    assert "0.928962" in text and "0.931507" in text and "+0.002545" in text
    assert "dry run: would install" in text and "each counts as 5 written examples" in text
    assert "model file: m.skops (unchanged)" in text


# -- real training ------------------------------------------------------------------------------
def test_guard_installs_a_better_candidate_and_a_dry_run_installs_nothing(
    data: Path, models: dict[str, Path], tmp_path: Path,
) -> None:
    current = _copy_model(models["damaged"], tmp_path / "current.skops")
    before = sha256_file(current), metadata_path(current).read_bytes()
    feedback = _feedback()
    dry = retrain_with_feedback(current, feedback[:4], holdout_examples=feedback[4:],
                                data_files=[data], dry_run=True)
    assert dry.would_install and not dry.installed, dry.format()
    assert (sha256_file(current), metadata_path(current).read_bytes()) == before
    assert "dry run: would install" in dry.format()

    decision = retrain_with_feedback(current, feedback[:4], holdout_examples=feedback[4:],
                                     data_files=[data])
    assert decision.installed, decision.format()
    assert decision.n_extra == 4 and decision.n_holdout == 4
    guarded = {c.name: c for c in decision.checks if c.guarded}
    assert set(guarded) == {"frozen test F1", "frozen test PR-AUC", "held-out labels accuracy"}
    assert guarded["frozen test F1"].candidate > guarded["frozen test F1"].current
    model = classifiers.load(current)
    assert model.version == decision.candidate_version
    assert model.metadata["feedback_ids"] == [f"feedback-{i}" for i in range(4)]
    assert model.metadata["feedback_label_weight"] == 5.0
    assert model.metadata["retrain_guard"]["tolerance"] == 0.005


def test_guard_refuses_a_candidate_trained_on_flipped_labels(
    data: Path, models: dict[str, Path], tmp_path: Path,
) -> None:
    current = _copy_model(models["good"], tmp_path / "current.skops")
    before = sha256_file(current)
    train_part, _ = split_frozen(load_examples([data]))
    poison = [replace(e, id=f"feedback-{e.id}", label=1 - e.label, weight=5.0)
              for e in train_part]
    feedback = _feedback()
    decision = retrain_with_feedback(current, poison, holdout_examples=feedback,
                                     data_files=[data])
    assert not decision.installed and not decision.would_install
    assert sha256_file(current) == before
    text = decision.format()
    assert "kept the current model" in text and "is below the current" in text
    assert "WORSE" in text


def test_label_weight_changes_the_fingerprint_but_plain_data_keeps_its_own(data: Path) -> None:
    """A different label_weight is a different model (version); written data hashes as before."""
    from classifiers.data import data_fingerprint

    light, heavy = _feedback(1.0), _feedback(5.0)
    assert data_fingerprint(light) != data_fingerprint(heavy)
    assert data_fingerprint(load_examples([data])) == data_fingerprint(
        [replace(e, weight=1.0) for e in load_examples([data])])


# -- the monitor side: labels from the store, split by time ---------------------------------------
def _store_with_labels(path: Path, n: int) -> SqliteStore:
    store = SqliteStore(path)
    store.migrate()
    for i in range(n):
        label, title, summary = FEEDBACK[i % len(FEEDBACK)]
        when = NOW - timedelta(days=30)
        article = Article(f"{i:032x}", "Wire", "Wire", f"https://wire.example/{i}",
                          f"{title} ({i})", summary, when, when)
        store.record_article(article, Verdict(article.id, 0.5, False, 0.5, "r", "m", ""), None)
        # Labelled in reverse id order: time, not id, must decide what is newest.
        store.add_label(article.id, label, source="cli", at=NOW - timedelta(hours=i))
    return store


def test_newest_labels_are_held_out_by_label_time(tmp_path: Path) -> None:
    store = _store_with_labels(tmp_path / "m.db", 8)
    try:
        split = labelled_feedback(store, label_weight=5.0, holdout_fraction=0.25)
        assert [e.id for e in split.holdout] == [f"feedback-{1:032x}", f"feedback-{0:032x}"]
        assert len(split.train) == 6 and all(e.weight == 5.0 for e in split.train)
        # a relabel makes an old label the newest
        store.add_label(f"{7:032x}", 1, source="slack", at=NOW + timedelta(hours=1))
        split = labelled_feedback(store, label_weight=5.0, holdout_fraction=0.25)
        assert split.holdout[-1].id == f"feedback-{7:032x}" and split.holdout[-1].label == 1
    finally:
        store.close()


def _settings(tmp_path: Path, sections: str):
    path = write_config(tmp_path, {"Replay": "file:///dev/null"}, sections)
    return load_settings(path, env={})


def test_install_goes_beside_the_database_never_into_the_package(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "")
    assert retrained_model_path(settings) == tmp_path / "model.skops"
    assert effective_model_file(settings) is None  # nothing installed yet: the shipped model
    (tmp_path / "model.skops").write_bytes(b"")
    assert effective_model_file(settings) == tmp_path / "model.skops"


def test_weekly_job_explains_too_few_labels_in_the_ops_channel(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "[retrain]\nenabled = true\nmin_labels = 5\n")
    _store_with_labels(tmp_path / "state.db", 3).close()
    with FakeSlack() as slack:
        notifier = Notifier(token=DEFAULT_TOKEN, channel=OPS, base_url=slack.base_url)
        # No store given: the daemon's way, in a separate process with its own connection.
        outcome = asyncio.run(scheduled_retrain(settings, notifier))
        posted = slack.posted(OPS)
    assert outcome.status == "too_few_labels"
    assert len(posted) == 1
    assert posted[0].text is not None
    assert ("weekly retrain skipped: only 3 analyst label(s); at least 5 are needed "
            "([retrain] min_labels)") in posted[0].text


def test_weekly_job_installs_and_posts_the_numbers(
    data: Path, models: dict[str, Path], tmp_path: Path,
) -> None:
    current = _copy_model(models["damaged"], tmp_path / "current.skops")
    settings = _settings(tmp_path, "[retrain]\nenabled = true\nmin_labels = 8\n")
    settings = settings.model_copy(update={"classifier": settings.classifier.model_copy(
        update={"model_path": str(current)})})
    store = _store_with_labels(tmp_path / "state.db", 8)
    try:
        with FakeSlack() as slack:
            notifier = Notifier(token=DEFAULT_TOKEN, channel=OPS, base_url=slack.base_url)
            outcome = asyncio.run(scheduled_retrain(settings, notifier, store=store,
                                                    data_files=[data]))
            posted = slack.posted(OPS)
    finally:
        store.close()
    assert outcome.status == "installed", outcome.report
    assert len(posted) == 1 and posted[0].text is not None
    text = posted[0].text
    assert "weekly retrain installed model dprk-ru-logreg-" in text
    assert "restart the daemon to use it" in text
    assert "8 analysts' labels (2 newest held out)" in text
    assert "frozen test F1 0." in text and "held-out labels accuracy" in text
    assert classifiers.load(current).version in text


def test_dry_run_report_from_the_store_changes_nothing(
    data: Path, models: dict[str, Path], tmp_path: Path,
) -> None:
    current = _copy_model(models["good"], tmp_path / "current.skops")
    before = sha256_file(current)
    settings = _settings(tmp_path, "[retrain]\nmin_labels = 8\n")
    store = _store_with_labels(tmp_path / "state.db", 8)
    try:
        outcome = run_retrain(settings, store, out=current, dry_run=True, data_files=[data])
    finally:
        store.close()
    assert outcome.status in ("would_install", "would_keep")
    assert sha256_file(current) == before
    assert "dry run: would" in outcome.report and "(unchanged)" in outcome.report
