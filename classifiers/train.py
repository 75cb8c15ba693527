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
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
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
from classifiers.event_typer import build_event_pipeline
from classifiers.events import coarse_event_type
from classifiers.features import RULE_FEATURES
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


def training_weights(examples: Sequence[Example], *, augment: bool = True) -> np.ndarray | None:
    """Sample weights aligned with ``training_texts`` (a headline copy weighs as its item).

    None when every weight is 1, so that unweighted training calls ``fit`` exactly as
    before and gives bit-identical models.
    """
    weights = [e.weight for e in examples]
    if augment:
        weights.extend(e.weight for e in examples if e.summary)
    if all(w == 1.0 for w in weights):
        return None
    return np.asarray(weights, dtype=float)


def fit_pipeline(examples: Sequence[Example], kind: str, *, lexicon: dict[str, Any] | None,
                 seed: int = 0, augment: bool = True,
                 params: dict[str, Any] | None = None) -> Pipeline:
    """A fitted candidate pipeline (the one place where training texts are assembled)."""
    texts, labels = training_texts(examples, augment=augment)
    weights = training_weights(examples, augment=augment)
    pipe = build_pipeline(kind, lexicon=lexicon, seed=seed, **(params or {}))
    if weights is None:
        pipe.fit(texts, labels)
    else:  # every candidate's final step accepts sample_weight (LR, calibrated SVM, HGB, vote)
        pipe.fit(texts, labels, clf__sample_weight=weights)
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
    """The event typer's model (``classifiers.event_typer``), fitted on positives' groups.

    Fine labels become coarse groups through ``coarse_event_type``; each item with a
    description also trains as its headline alone (as in ``training_texts``), because
    many feeds carry only the headline and the headline says what happened.
    """
    positives = [e for e in examples
                 if e.label == 1 and e.event_type and e.event_type != "feedback"]
    groups = [coarse_event_type(e.event_type) for e in positives]
    if len(set(groups)) < 2:
        return None
    texts = [e.text for e in positives]
    texts += [e.title for e in positives if e.summary]
    groups += [g for e, g in zip(positives, groups, strict=True) if e.summary]
    pipe = build_event_pipeline(lexicon, seed)
    pipe.fit(texts, groups)
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
        data_files: Sequence[Path] = (), n_jobs: int | None = None,
        feedback: Sequence[Example] = ()) -> Fitted:
    """Select, threshold and fit a model on the TRAIN split of ``examples``; no saving.

    ``feedback`` (analysts' labels) all join the training side, bypassing the frozen
    id split: their yardstick is the caller's held-out-by-time labels, and dropping a
    fifth of them to an id hash would waste the scarcest data we have. An item whose
    id is in the frozen test split of ``examples`` is never trained on.
    """
    if not 0 < target_precision < 1:
        raise TrainingError("target_precision must be between 0 and 1")
    train_set, test_set = split_frozen(sorted(examples, key=lambda e: e.id))
    test_ids = {e.id for e in test_set}
    feedback = [e for e in feedback if e.id not in test_ids]
    if feedback:
        train_set = _merge(train_set, feedback)
    examples = sorted([*train_set, *test_set], key=lambda e: e.id)
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


#: The default of ``[retrain] tolerance``: how much worse than the current model a
#: candidate may be on any guarded metric. About one item in 200 on the frozen test
#: split's F1; PR-AUC moves by more than this between two honest fits on the same data.
DEFAULT_TOLERANCE = 0.005
#: Differences smaller than this are float noise, neither better nor worse.
_EPS = 1e-12


@dataclass(frozen=True)
class GuardCheck:
    """One metric of both models; ``guarded`` ones decide the install, the rest are shown."""

    name: str
    current: float
    candidate: float
    guarded: bool
    note: str = ""

    @property
    def difference(self) -> float:
        return self.candidate - self.current

    @property
    def comparable(self) -> bool:
        return not (math.isnan(self.current) or math.isnan(self.candidate))

    def worse_than(self, tolerance: float) -> bool:
        return self.comparable and self.difference < -tolerance - _EPS

    @property
    def better(self) -> bool:
        return self.comparable and self.difference > _EPS


def guard_verdict(checks: Sequence[GuardCheck], tolerance: float) -> tuple[bool, str]:
    """The install rule, in one place (README, "train --with-feedback", says the same).

    Install when no guarded metric of the candidate is below the current model's by
    more than ``tolerance`` AND at least one guarded metric is strictly better. The
    tolerance exists because a candidate with better F1 was refused for a PR-AUC lower
    in the fifth decimal; "at least one better" keeps an equal model from churning
    the installed file (and its version in every alert) for nothing.
    """
    guarded = [c for c in checks if c.guarded and c.comparable]
    if not guarded:
        return False, "no guarded metric could be computed"
    worse = [c for c in guarded if c.worse_than(tolerance)]
    if worse:
        return False, "; ".join(
            f"candidate {c.name} {c.candidate:.6f} is below the current {c.current:.6f} by "
            f"{-c.difference:.6f} (tolerance {tolerance:g})" for c in worse)
    better = [c.name for c in guarded if c.better]
    if not better:
        return False, "no guarded metric is better than the current model's"
    return True, (f"no guarded metric is worse by more than {tolerance:g}; better on "
                  f"{', '.join(better)}")


def _checks(current: EvalReport, candidate: EvalReport, prefix: str, *,
            guard: tuple[str, ...]) -> list[GuardCheck]:
    values = {
        "F1": (current.f1, candidate.f1),
        "PR-AUC": (current.pr_auc, candidate.pr_auc),
        "precision": (current.precision, candidate.precision),
        "recall": (current.recall, candidate.recall),
        "accuracy": ((current.tp + current.tn) / current.n if current.n else math.nan,
                     (candidate.tp + candidate.tn) / candidate.n if candidate.n else math.nan),
    }
    out = []
    for name, (cur, cand) in values.items():
        note = ""
        if name == "accuracy":
            note = (f"errors {current.fp + current.fn} vs {candidate.fp + candidate.fn} "
                    f"of {current.n}")
        out.append(GuardCheck(f"{prefix} {name}", float(cur), float(cand), name in guard, note))
    return out


@dataclass(frozen=True)
class RetrainDecision:
    """Outcome of a guarded retrain: both models' numbers, the rule's verdict, what happened.

    ``current``/``candidate`` are on the frozen test split of the curated data;
    ``holdout_*`` on the analysts' newest labels, which the candidate was not trained on.
    """

    installed: bool
    reason: str
    current_version: str | None
    candidate_version: str
    current: EvalReport | None
    candidate: EvalReport
    n_extra: int
    out_path: Path
    holdout_current: EvalReport | None = None
    holdout_candidate: EvalReport | None = None
    n_holdout: int = 0
    label_weight: float = 1.0
    tolerance: float = DEFAULT_TOLERANCE
    checks: tuple[GuardCheck, ...] = ()
    dry_run: bool = False
    would_install: bool = False
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        if self.dry_run:
            return ("dry run: would install" if self.would_install
                    else "dry run: would keep the current model")
        return "installed" if self.installed else "kept the current model"

    def format(self) -> str:
        """Every number unrounded (6 decimals), side by side, with the difference.

        Three decimals once printed 0.977 for both models while the guard refused the
        candidate over the fifth decimal; the reader must see what the rule saw.
        """
        lines = [
            f"retrain with {self.n_extra} analysts' labels trained on (each counts as "
            f"{self.label_weight:g} written examples) and {self.n_holdout} newest held out: "
            f"{self.verdict} ({self.reason})",
            f"rule: install when no guarded metric is below the current model's by more than "
            f"{self.tolerance:g} and at least one is better",
            f"{'metric':<28} {'current':>10} {'candidate':>10} {'difference':>11}",
        ]
        for c in self.checks:
            mark = ""
            if c.guarded:
                mark = "guarded: " + ("WORSE" if c.worse_than(self.tolerance) else
                                      "better" if c.better else "ok")
            extra = f"  ({c.note})" if c.note else ""
            lines.append(f"{c.name:<28} {c.current:>10.6f} {c.candidate:>10.6f} "
                         f"{c.difference:>+11.6f}  {mark}{extra}".rstrip())
        if self.current is None:
            lines.append(f"{'frozen test':<28} current model unavailable")
        if self.current is not None:
            lines.append(f"frozen test: {self.current.n} items ({self.current.n_positive} "
                         f"positive); held-out labels: {self.n_holdout}"
                         + (f" ({self.holdout_current.n_positive} relevant)"
                            if self.holdout_current is not None else ""))
        lines.extend(f"note: {n}" for n in self.notes)
        thresholds = ""
        if self.current is not None:
            thresholds = f" (threshold {self.current.threshold:.6f})"
        lines.append(f"current   {self.current_version or '-'}{thresholds}")
        lines.append(f"candidate {self.candidate_version} (threshold "
                     f"{self.candidate.threshold:.6f})")
        lines.append(f"model file: {self.out_path}"
                     + ("" if self.installed else " (unchanged)"))
        return "\n".join(lines)


def retrain_with_feedback(current_path: Path | str | None, extra_examples: Iterable[Example],
                          out_path: Path | str | None = None, *,
                          holdout_examples: Iterable[Example] = (),
                          data_files: Iterable[Path | str] | None = None,
                          keywords_path: Path | str | None = None,
                          target_precision: float = 0.9, kind: str | None = None,
                          seed: int = 0, tolerance: float = DEFAULT_TOLERANCE,
                          dry_run: bool = False,
                          n_jobs: int | None = None) -> RetrainDecision:
    """Train a candidate with analysts' labels; install it only if the guard passes.

    ``extra_examples`` are trained on (with their own ``weight``); ``holdout_examples``
    (the analysts' newest labels, chosen by the caller) are not, and serve as the
    second yardstick. Both models are judged, each at its own threshold, on:

    * the frozen test split of the curated data files (F1 and PR-AUC guarded) — a
      yardstick no feedback can move, so a poisoned retrain cannot pass it;
    * the held-out labels (accuracy guarded; precision, recall, F1 shown) — the
      production items analysts judged, which the written data may not resemble.
      Accuracy, not F1: analysts label alerts, so the held-out set may hold no
      relevant item at all, and F1 is then 0 for both models whatever they do. With
      a few dozen labels no significance test would ever pass, so the same plain
      tolerance applies and the error counts are printed beside it.

    Rule (``guard_verdict``): install when no guarded metric is below the current
    model's by more than ``tolerance``, and at least one is better; also when the
    current model cannot be loaded at all. ``dry_run`` does everything but write.
    ``kind`` defaults to the current model's kind (retraining stays cheap).
    """
    from classifiers.model import load

    extra = list(extra_examples)
    holdout = list(holdout_examples)
    current_file = Path(current_path) if current_path is not None else default_model_path()
    target = Path(out_path) if out_path is not None else current_file
    base, files, lexicon, keywords_sha = _load_inputs(data_files, keywords_path)
    _, reference = split_frozen(sorted(base, key=lambda e: e.id))
    reference_ids = {e.id for e in reference}
    # A feedback item may relabel a reference item; the yardstick keeps the curated label.
    extra = [e for e in extra if e.id not in reference_ids]
    holdout_ids = {e.id for e in holdout}
    extra = [e for e in extra if e.id not in holdout_ids]
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
    fitted = fit(base, lexicon, kind=candidate_kind, target_precision=target_precision,
                 seed=seed, keywords_sha=keywords_sha, data_files=files, n_jobs=n_jobs,
                 feedback=extra)
    candidate_model = fitted.bundle["classifier"]
    candidate_eval = evaluate(candidate_model.predict_proba(texts)[:, 1], labels,
                              fitted.report.threshold)
    holdout_candidate = None
    if holdout:
        holdout_candidate = evaluate(candidate_model.predict_proba(_texts(holdout))[:, 1],
                                     _labels(holdout), fitted.report.threshold)

    current_eval = holdout_current = None
    notes: list[str] = []
    if current_model is not None:
        try:
            current_eval = evaluate(current_model.predict_proba(texts), labels,
                                    current_model.threshold)
            if holdout:
                holdout_current = evaluate(current_model.predict_proba(_texts(holdout)),
                                           _labels(holdout), current_model.threshold)
        except ClassifierError as exc:
            log.warning("current model failed on the reference set: %s", exc)
            current_eval = holdout_current = None
        seen = holdout_ids & set(current_model.metadata.get("feedback_ids") or ())
        if seen:
            notes.append(f"the current model was trained on {len(seen)} of the held-out "
                         "labels, which flatters its numbers there")
    checks: list[GuardCheck] = []
    if current_eval is None:
        install, reason = True, "the current model is missing or unusable"
    else:
        checks = _checks(current_eval, candidate_eval, "frozen test", guard=("F1", "PR-AUC"))
        if holdout_current is not None and holdout_candidate is not None:
            checks += _checks(holdout_current, holdout_candidate, "held-out labels",
                              guard=("accuracy",))
        install, reason = guard_verdict(checks, tolerance)
    weights = sorted({e.weight for e in extra})
    if install and not dry_run:
        meta = fitted.report.metadata
        meta["feedback_examples"] = len(extra)
        meta["feedback_ids"] = sorted(e.id for e in extra)
        meta["feedback_label_weight"] = weights[-1] if weights else None
        meta["feedback_holdout"] = len(holdout)
        meta["retrain_guard"] = {
            "tolerance": tolerance, "replaced": current_model.version if current_model else None,
            "checks": {c.name: {"current": round(c.current, 6), "candidate": round(c.candidate, 6),
                                "guarded": c.guarded} for c in checks if c.comparable},
        }
        _save(fitted, target)
    return RetrainDecision(
        installed=install and not dry_run, reason=reason,
        current_version=current_model.version if current_model else None,
        candidate_version=fitted.report.model_version, current=current_eval,
        candidate=candidate_eval, n_extra=len(extra), out_path=target,
        holdout_current=holdout_current, holdout_candidate=holdout_candidate,
        n_holdout=len(holdout), label_weight=weights[-1] if weights else 1.0,
        tolerance=tolerance, checks=tuple(checks), dry_run=dry_run, would_install=install,
        notes=tuple(notes),
    )


__all__ = ["DEFAULT_TOLERANCE", "CandidateResult", "GuardCheck", "RetrainDecision", "TrainReport",
           "fit", "guard_verdict", "retrain_with_feedback", "train"]
