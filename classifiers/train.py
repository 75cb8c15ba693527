"""Training, model selection, threshold choice, and the guarded feedback retrain.

Discipline: the frozen test split (see ``classifiers.data``) is used only to
*report* quality after everything else is decided. Candidate choice and the
threshold come from stratified 5-fold cross-validation on the training split.
Examples are sorted by id first, so the same data gives identical scores no
matter in which order files list them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from classifiers.artefact import (
    default_model_path,
    library_versions,
    save_artefact,
    sha256_file,
)
from classifiers.data import Example, data_fingerprint, load_examples, split_frozen
from classifiers.errors import ClassifierError, ModelLoadError, TrainingError
from classifiers.evaluate import EvalReport, ThresholdChoice, evaluate, select_threshold
from classifiers.events import coarse_event_type
from classifiers.features import RULE_FEATURES, Annotator, CompactTfidfVectorizer, MentionText
from classifiers.keywords import KeywordLexicon, default_keywords_path
from classifiers.pipeline import CANDIDATES, PIPELINE_REVISION, build_pipeline

log = logging.getLogger(__name__)

N_FOLDS = 5
#: Candidates whose cross-validated PR-AUC is within this of the best count as tied
#: (differences this small are fold noise on ~1,400 items); the tie goes to the
#: earlier entry of ``CANDIDATES``, i.e. the simpler, faster, better-explained model.
SELECTION_TOLERANCE = 0.005


@dataclass(frozen=True)
class CandidateResult:
    kind: str
    cv: EvalReport
    choice: ThresholdChoice
    seconds: float


@dataclass(frozen=True)
class TrainReport:
    """What ``train`` decided and measured."""

    kind: str
    threshold: float
    choice: ThresholdChoice
    candidates: dict[str, CandidateResult]
    test: EvalReport
    n_train: int
    n_test: int
    model_version: str
    out_path: Path | None
    metadata: dict[str, Any]
    warnings: tuple[str, ...] = ()

    def format(self) -> str:
        lines = [f"model {self.model_version} ({self.kind}), trained on {self.n_train} items, "
                 f"frozen test {self.n_test} items"]
        for kind, result in self.candidates.items():
            marker = "*" if kind == self.kind else " "
            cv = result.cv
            lines.append(f" {marker} {kind:<9} CV: P={cv.precision:.3f} R={cv.recall:.3f} "
                         f"F1={cv.f1:.3f} PR-AUC={cv.pr_auc:.3f} ({result.seconds:.1f}s)")
        lines.append(self.choice.describe())
        lines.append("frozen test: " + self.test.format().replace("\n", "\n  "))
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


@dataclass(frozen=True)
class Fitted:
    """A trained but not yet saved model with its report."""

    bundle: dict[str, Any]
    report: TrainReport


# -- building blocks ------------------------------------------------------------------------
def _texts(examples: Sequence[Example]) -> list[str]:
    return [e.text for e in examples]


def _labels(examples: Sequence[Example]) -> np.ndarray:
    return np.asarray([e.label for e in examples], dtype=int)


def _check_trainable(examples: Sequence[Example]) -> None:
    y = _labels(examples)
    if len(y) < 2 * N_FOLDS or y.sum() < N_FOLDS or (len(y) - y.sum()) < N_FOLDS:
        raise TrainingError(f"need at least {N_FOLDS} positive and {N_FOLDS} negative training "
                            f"examples, got {int(y.sum())} and {int(len(y) - y.sum())}")


def training_texts(examples: Sequence[Example], *,
                   augment: bool = True) -> tuple[list[str], np.ndarray]:
    """Texts and labels to fit on: each item, plus its headline alone when it has a summary.

    Feeds often carry only a headline; the headline-only copy teaches the model to
    decide from the headline too (it raised out-of-fold recall at fixed precision,
    most on headline-only items). Copies only ever join their original's side of a
    split, so they cannot leak into validation or the frozen test split.
    """
    texts = [e.text for e in examples]
    labels = [e.label for e in examples]
    if augment:
        for e in examples:
            if e.summary:
                texts.append(e.title)
                labels.append(e.label)
    return texts, np.asarray(labels, dtype=int)


def fit_pipeline(examples: Sequence[Example], kind: str, *, lexicon: dict[str, Any] | None,
                 seed: int = 0, augment: bool = True,
                 params: dict[str, Any] | None = None) -> Pipeline:
    """A fitted candidate pipeline (the one place where training texts are assembled)."""
    texts, labels = training_texts(examples, augment=augment)
    pipe = build_pipeline(kind, lexicon=lexicon, seed=seed, **(params or {}))
    pipe.fit(texts, labels)
    return pipe


def _fold_scores(examples: Sequence[Example], train_idx: np.ndarray, test_idx: np.ndarray,
                 kind: str, lexicon: dict[str, Any] | None, seed: int,
                 augment: bool, params: dict[str, Any] | None) -> np.ndarray:
    pipe = fit_pipeline([examples[i] for i in train_idx], kind, lexicon=lexicon, seed=seed,
                        augment=augment, params=params)
    return pipe.predict_proba([examples[i].text for i in test_idx])[:, 1]


def out_of_fold_scores(examples: Sequence[Example], kind: str, *,
                       lexicon: dict[str, Any] | None, seed: int = 0,
                       n_jobs: int | None = None, augment: bool = True,
                       params: dict[str, Any] | None = None) -> np.ndarray:
    """Stratified 5-fold out-of-fold probabilities (deterministic for a given seed)."""
    from joblib import Parallel, delayed

    y = _labels(examples)
    folds = list(StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
                 .split(np.zeros(len(y)), y))
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_fold_scores)(examples, train_idx, test_idx, kind, lexicon, seed, augment,
                              params)
        for train_idx, test_idx in folds)
    oof = np.zeros(len(y))
    for (_, test_idx), scores in zip(folds, parts, strict=True):
        oof[test_idx] = scores
    return oof


def fit_event_model(examples: Sequence[Example], lexicon: dict[str, Any],
                    seed: int = 0) -> Pipeline | None:
    """A small multinomial model from positives' event types (coarse groups) to a group."""
    positives = [e for e in examples
                 if e.label == 1 and e.event_type and e.event_type != "feedback"]
    groups = [coarse_event_type(e.event_type) for e in positives]
    if len(set(groups)) < 2:
        return None
    # Plain words (names matter here: "Shoigu" suggests arms, "Lavrov" diplomacy) and
    # balanced classes, or the big arms/military group swallows the small ones.
    pipe = Pipeline([
        ("annotate", Annotator(lexicon=lexicon)),
        ("text", MentionText(view="plain")),
        ("tfidf", CompactTfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True,
                                         max_features=20_000, dtype=np.float64)),
        ("clf", LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000,
                                   random_state=seed)),
    ])
    pipe.fit(_texts(positives), groups)
    return pipe


def _version(kind: str, data_sha: str, keywords_sha: str, seed: int) -> str:
    """Content-addressed: the same data, keywords, code revision and library give one name."""
    digest = hashlib.sha256(
        json.dumps([kind, data_sha, keywords_sha, seed, PIPELINE_REVISION, list(RULE_FEATURES),
                    library_versions()["scikit-learn"]]).encode("utf-8")).hexdigest()
    return f"dprk-ru-{kind}-{digest[:10]}"


def _merge(base: Sequence[Example], extra: Iterable[Example]) -> list[Example]:
    """Base plus extra examples, extra winning on an id clash (an analyst relabelled it)."""
    merged = {e.id: e for e in base}
    for e in extra:
        merged[e.id] = e
    return sorted(merged.values(), key=lambda e: e.id)


def fit(examples: Sequence[Example], lexicon: KeywordLexicon, *, kind: str = "best",
        target_precision: float = 0.9, seed: int = 0, keywords_sha: str = "",
        data_files: Sequence[Path] = (), n_jobs: int | None = None) -> Fitted:
    """Select, threshold and fit a model on the TRAIN split of ``examples``; no saving."""
    if not 0 < target_precision < 1:
        raise TrainingError("target_precision must be between 0 and 1")
    examples = sorted(examples, key=lambda e: e.id)
    train_set, test_set = split_frozen(examples)
    _check_trainable(train_set)
    lex = lexicon.to_dict()
    kinds = CANDIDATES if kind == "best" else (kind,)
    if any(k not in CANDIDATES for k in kinds):
        raise TrainingError(f"unknown model kind {kind!r}; choose best or one of "
                            f"{', '.join(CANDIDATES)}")
    y_train = _labels(train_set)
    results: dict[str, CandidateResult] = {}
    for candidate in kinds:
        started = time.perf_counter()
        oof = out_of_fold_scores(train_set, candidate, lexicon=lex, seed=seed, n_jobs=n_jobs)
        choice = select_threshold(oof, y_train, target_precision)
        results[candidate] = CandidateResult(
            candidate, evaluate(oof, y_train, choice.threshold), choice,
            time.perf_counter() - started)
        log.info("candidate %s: %s", candidate, choice.describe())
    best_auc = max(r.cv.pr_auc for r in results.values())
    chosen = next(k for k in kinds if results[k].cv.pr_auc >= best_auc - SELECTION_TOLERANCE)
    choice = results[chosen].choice
    warnings: list[str] = []
    if not choice.met_target:
        message = (f"no threshold reached precision {target_precision:.2f} in cross-validation; "
                   f"using the best-F1 threshold {choice.threshold:.3f}")
        log.warning(message)
        warnings.append(message)

    pipe = fit_pipeline(train_set, chosen, lexicon=lex, seed=seed)
    event_model = fit_event_model(train_set, lex, seed)
    if test_set and 0 < _labels(test_set).sum() < len(test_set):
        test_scores = pipe.predict_proba(_texts(test_set))[:, 1]
        test = evaluate(test_scores, _labels(test_set), choice.threshold)
    else:
        test = evaluate(np.zeros(0), np.zeros(0, dtype=int), choice.threshold)
        warnings.append("the frozen test split is empty or one-class; no test metrics")

    data_sha = data_fingerprint(examples)
    version = _version(chosen, data_sha, keywords_sha, seed)
    metadata: dict[str, Any] = {
        "model_version": version,
        "kind": chosen,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threshold": round(choice.threshold, 6),
        "target_precision": target_precision,
        "threshold_met_target": choice.met_target,
        "seed": seed,
        "training_data_sha256": data_sha,
        "data_files": [p.name for p in data_files],
        "n_examples": len(examples),
        "n_train": len(train_set),
        "n_test": len(test_set),
        "n_train_positive": int(y_train.sum()),
        "keywords_sha256": keywords_sha,
        "metrics": {
            "cv": {k: r.cv.as_dict() for k, r in results.items()},
            "frozen_test": test.as_dict(),
        },
        "params": {k: repr(v) for k, v in sorted(pipe.named_steps["clf"].get_params().items())
                   if not hasattr(v, "get_params")},
    }
    report = TrainReport(kind=chosen, threshold=choice.threshold, choice=choice,
                         candidates=results, test=test, n_train=len(train_set),
                         n_test=len(test_set), model_version=version, out_path=None,
                         metadata=metadata, warnings=tuple(warnings))
    return Fitted({"classifier": pipe, "event_model": event_model}, report)


def _load_inputs(data_files: Iterable[Path | str] | None,
                 keywords_path: Path | str | None) -> tuple[list[Example], list[Path],
                                                            KeywordLexicon, str]:
    from classifiers.data import default_data_files

    files = default_data_files() if data_files is None else [Path(p) for p in data_files]
    if not files:
        raise TrainingError("no training data files found (classifiers/data/*.jsonl)")
    keywords = Path(keywords_path) if keywords_path is not None else default_keywords_path()
    lexicon = KeywordLexicon.from_toml(keywords)
    return load_examples(files), files, lexicon, sha256_file(keywords)


def _save(fitted: Fitted, out_path: Path) -> TrainReport:
    meta = save_artefact(fitted.bundle, out_path, fitted.report.metadata)
    report = fitted.report
    return TrainReport(kind=report.kind, threshold=report.threshold, choice=report.choice,
                       candidates=report.candidates, test=report.test, n_train=report.n_train,
                       n_test=report.n_test, model_version=report.model_version,
                       out_path=out_path, metadata=meta, warnings=report.warnings)


# -- public entry points --------------------------------------------------------------------
def train(data_files: Iterable[Path | str] | None = None,
          keywords_path: Path | str | None = None,
          out_path: Path | str | None = None, *, kind: str = "best",
          target_precision: float = 0.9, extra_examples: Iterable[Example] = (),
          seed: int = 0, n_jobs: int | None = None) -> TrainReport:
    """Train on the shipped (or given) data files and save the model.

    ``kind="best"`` cross-validates every candidate on the training split and keeps
    the best PR-AUC. The threshold is the highest-recall cut with out-of-fold
    precision >= ``target_precision`` (best F1, with a warning, if none is).
    """
    base, files, lexicon, keywords_sha = _load_inputs(data_files, keywords_path)
    examples = _merge(base, extra_examples)
    fitted = fit(examples, lexicon, kind=kind, target_precision=target_precision, seed=seed,
                 keywords_sha=keywords_sha, data_files=files, n_jobs=n_jobs)
    return _save(fitted, Path(out_path) if out_path is not None else default_model_path())


@dataclass(frozen=True)
class RetrainDecision:
    """Outcome of a guarded retrain: both models' frozen-test numbers and what happened."""

    installed: bool
    reason: str
    current_version: str | None
    candidate_version: str
    current: EvalReport | None
    candidate: EvalReport
    n_extra: int
    out_path: Path

    def format(self) -> str:
        def line(name: str, report: EvalReport | None) -> str:
            if report is None:
                return f"{name}: unavailable"
            return (f"{name}: F1={report.f1:.3f} PR-AUC={report.pr_auc:.3f} "
                    f"P={report.precision:.3f} R={report.recall:.3f} (n={report.n})")

        verdict = "installed" if self.installed else "kept the current model"
        return "\n".join([
            f"retrain with {self.n_extra} extra examples: {verdict} ({self.reason})",
            line(f"current   {self.current_version or '-'}", self.current),
            line(f"candidate {self.candidate_version}", self.candidate),
            f"model file: {self.out_path}",
        ])


def retrain_with_feedback(current_path: Path | str | None, extra_examples: Iterable[Example],
                          out_path: Path | str | None = None, *,
                          data_files: Iterable[Path | str] | None = None,
                          keywords_path: Path | str | None = None,
                          target_precision: float = 0.9, kind: str | None = None,
                          seed: int = 0, tolerance: float = 0.0,
                          n_jobs: int | None = None) -> RetrainDecision:
    """Train a candidate with analysts' labels; install it only if it is not worse.

    Both models are judged on the frozen test split of the curated data files —
    not on feedback — because a feedback label can be a mistake, and a yardstick
    that the new labels can move cannot catch a poisoned retrain. The candidate is
    installed when its F1 and PR-AUC there are each at least the current model's
    (minus ``tolerance``), or when the current model cannot be loaded at all.
    ``kind`` defaults to the current model's kind (retraining stays cheap).
    """
    from classifiers.model import load

    extra = list(extra_examples)
    current_file = Path(current_path) if current_path is not None else default_model_path()
    target = Path(out_path) if out_path is not None else current_file
    base, files, lexicon, keywords_sha = _load_inputs(data_files, keywords_path)
    _, reference = split_frozen(sorted(base, key=lambda e: e.id))
    reference_ids = {e.id for e in reference}
    # A feedback item may relabel a reference item; the yardstick keeps the curated label.
    extra = [e for e in extra if e.id not in reference_ids]
    texts, labels = _texts(reference), _labels(reference)

    current_model = None
    try:
        current_model = load(current_file)
    except ModelLoadError as exc:
        log.warning("current model unusable, a candidate will replace it: %s", exc)
    candidate_kind = kind or (str(current_model.metadata.get("kind")) if current_model
                              else "best")
    if candidate_kind not in CANDIDATES and candidate_kind != "best":
        candidate_kind = "best"
    fitted = fit(_merge(base, extra), lexicon, kind=candidate_kind,
                 target_precision=target_precision, seed=seed, keywords_sha=keywords_sha,
                 data_files=files, n_jobs=n_jobs)
    candidate_scores = fitted.bundle["classifier"].predict_proba(texts)[:, 1]
    candidate_eval = evaluate(candidate_scores, labels, fitted.report.threshold)

    current_eval = None
    if current_model is not None:
        try:
            current_eval = evaluate(current_model.predict_proba(texts), labels,
                                    current_model.threshold)
        except ClassifierError as exc:
            log.warning("current model failed on the reference set: %s", exc)
    if current_eval is None:
        install, reason = True, "the current model is missing or unusable"
    else:
        f1_ok = candidate_eval.f1 >= current_eval.f1 - tolerance
        auc_ok = candidate_eval.pr_auc >= current_eval.pr_auc - tolerance
        install = f1_ok and auc_ok
        if install:
            reason = "candidate is not worse on F1 and PR-AUC"
        else:
            worse = [name for name, ok in (("F1", f1_ok), ("PR-AUC", auc_ok)) if not ok]
            reason = f"candidate is worse on {' and '.join(worse)}"
    if install:
        fitted.report.metadata["feedback_examples"] = len(extra)
        _save(fitted, target)
    return RetrainDecision(
        installed=install, reason=reason,
        current_version=current_model.version if current_model else None,
        candidate_version=fitted.report.model_version, current=current_eval,
        candidate=candidate_eval, n_extra=len(extra), out_path=target,
    )


__all__ = ["CandidateResult", "RetrainDecision", "TrainReport", "fit", "retrain_with_feedback",
           "train"]
