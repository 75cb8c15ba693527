"""Quality per shape and per language: ``python -m classifiers.report``.

One overall number hides the stories a model still gets wrong. The data files tag
items by *shape* (the kind of story: "visitor_name_only", "embassy_as_source", …)
and by language, so this report breaks the frozen test split down by both, and
checks generalisation per shape: a candidate fitted without ANY item of a shape
(train and frozen alike) scores that shape's items. A shape recovered only when
the model has seen it is being memorised; the leave-shape-out number is the better
guess of what happens when a new outlet words that kind of story its own way.

Nothing here writes a model: candidates live in memory only.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from classifiers.data import Example, load_examples, split_frozen
from classifiers.errors import ClassifierError
from classifiers.evaluate import ConfusionCounts, confusion_at
from classifiers.keywords import KeywordLexicon

#: Shapes with fewer tagged items than this are not held out (one fit per shape costs
#: half a minute; a recall over three items says nothing).
MIN_SHAPE_ITEMS = 5
ALL = "all"
UNTAGGED = "(untagged)"


class Predictor(Protocol):
    """What the report needs from a model: probabilities and the model's own cut."""

    threshold: float

    def predict_proba(self, texts: Sequence[str]) -> Any: ...


# -- per-group arithmetic ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GroupScore(ConfusionCounts):
    """Confusion counts of one group of items at one threshold, and rates derived from them.

    Rates whose denominator is zero are NaN, not 0: a shape of negatives has no
    recall, and printing 0.000 there would read as a total failure.
    """

    group: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / self.n_positive if self.n_positive else math.nan

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if math.isnan(p) or math.isnan(r) or p + r == 0:
            return math.nan if math.isnan(p) or math.isnan(r) else 0.0
        return 2 * p * r / (p + r)

    @property
    def fp_rate(self) -> float:
        negatives = self.fp + self.tn
        return self.fp / negatives if negatives else math.nan


def group_score(group: str, scores: Sequence[float] | np.ndarray,
                labels: Sequence[int] | np.ndarray, threshold: float) -> GroupScore:
    """Counts at ``threshold`` (score >= threshold is a match, as everywhere else)."""
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(labels, dtype=int).ravel()
    if s.shape != y.shape:
        raise ClassifierError(f"{len(s)} scores but {len(y)} labels")
    return GroupScore(group, *confusion_at(s, y, threshold))


def score_groups(examples: Sequence[Example], scores: Sequence[float] | np.ndarray,
                 threshold: float, key: Callable[[Example], str]) -> list[GroupScore]:
    """One ``GroupScore`` per value of ``key``, sorted by group name."""
    s = np.asarray(scores, dtype=float).ravel()
    if len(s) != len(examples):
        raise ClassifierError(f"{len(s)} scores for {len(examples)} examples")
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(key(example), []).append(index)
    labels = np.asarray([e.label for e in examples], dtype=int)
    return [group_score(name, s[idx], labels[idx], threshold)
            for name, idx in sorted(groups.items())]


def shape_of(example: Example) -> str:
    return example.shape or UNTAGGED


def lang_of(example: Example) -> str:
    return example.lang


# -- frozen test split ------------------------------------------------------------------------
@dataclass(frozen=True)
class FrozenReport:
    """One model on the frozen test split: overall, per shape, per language."""

    model: str
    threshold: float
    overall: GroupScore
    by_shape: tuple[GroupScore, ...]
    by_lang: tuple[GroupScore, ...]


def frozen_report(model: Predictor, examples: Sequence[Example], *, name: str = "") -> FrozenReport:
    """Score the frozen test items of ``examples`` with ``model`` at its own threshold."""
    _, test = split_frozen(sorted(examples, key=lambda e: e.id))
    if not test:
        raise ClassifierError("the frozen test split is empty")
    scores = np.asarray(model.predict_proba([e.text for e in test]), dtype=float).ravel()
    threshold = float(model.threshold)
    return FrozenReport(
        model=name or str(getattr(model, "version", "model")), threshold=threshold,
        overall=group_score(ALL, scores, [e.label for e in test], threshold),
        by_shape=tuple(score_groups(test, scores, threshold, shape_of)),
        by_lang=tuple(score_groups(test, scores, threshold, lang_of)),
    )


# -- leave one shape out ----------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeHoldout:
    """A shape's items scored by a model fitted without them and by one fitted with them.

    ``without``/``with_`` cover ALL the shape's items (frozen and train). The "with"
    model trained on the shape's train items, so its number there is optimistic; it is
    the ceiling the held-out number is read against.
    """

    shape: str
    without: GroupScore
    with_: GroupScore
    threshold_without: float
    threshold_with: float
    n_frozen: int
    n_fit_without: int


class Fitter(Protocol):
    """``classifiers.train.fit``'s shape: examples in, an object with ``bundle``/``report``."""

    def __call__(self, examples: Sequence[Example], lexicon: KeywordLexicon, *,
                 kind: str, seed: int, n_jobs: int | None) -> Any: ...


def _default_fitter(examples: Sequence[Example], lexicon: KeywordLexicon, *, kind: str,
                    seed: int, n_jobs: int | None) -> Any:
    from classifiers.train import fit

    return fit(examples, lexicon, kind=kind, seed=seed, n_jobs=n_jobs)


def _scores_of(fitted: Any, examples: Sequence[Example]) -> tuple[np.ndarray, float]:
    pipe = fitted.bundle["classifier"]
    return pipe.predict_proba([e.text for e in examples])[:, 1], float(fitted.report.threshold)


def holdout_shapes(examples: Sequence[Example], shapes: Iterable[str] | None = None,
                   min_items: int = MIN_SHAPE_ITEMS) -> list[str]:
    """Tagged shapes with at least ``min_items`` items (or the named ones), sorted."""
    counts: dict[str, int] = {}
    for e in examples:
        if e.shape:
            counts[e.shape] = counts.get(e.shape, 0) + 1
    if shapes is not None:
        wanted = list(dict.fromkeys(shapes))
        unknown = [s for s in wanted if s not in counts]
        if unknown:
            raise ClassifierError(f"no items tagged with shape(s) {', '.join(unknown)}")
        return sorted(wanted)
    return sorted(s for s, n in counts.items() if n >= min_items)


def leave_shape_out(examples: Sequence[Example], lexicon: KeywordLexicon, *,
                    shapes: Iterable[str] | None = None, kind: str = "logreg", seed: int = 0,
                    n_jobs: int | None = 1, fitter: Fitter = _default_fitter,
                    progress: Callable[[str], None] | None = None) -> list[ShapeHoldout]:
    """For each shape: fit on everything minus ALL its items, score its items; compare.

    ``fitter`` does what ``classifiers.train.fit`` does (its own frozen split, its own
    cross-validated threshold); removing the shape before the call means none of its
    items can reach the fit, the threshold choice or the model selection.
    """
    say = progress or (lambda _message: None)
    ordered = sorted(examples, key=lambda e: e.id)
    chosen = holdout_shapes(ordered, shapes)
    started = time.perf_counter()
    say(f"fitting the reference model on all data ({kind})")
    reference = fitter(ordered, lexicon, kind=kind, seed=seed, n_jobs=n_jobs)
    results: list[ShapeHoldout] = []
    for number, shape in enumerate(chosen, start=1):
        held = [e for e in ordered if e.shape == shape]
        rest = [e for e in ordered if e.shape != shape]
        say(f"[{number}/{len(chosen)}] {shape}: fitting without its {len(held)} items "
            f"({time.perf_counter() - started:.0f}s so far)")
        fitted = fitter(rest, lexicon, kind=kind, seed=seed, n_jobs=n_jobs)
        labels = [e.label for e in held]
        without, cut_without = _scores_of(fitted, held)
        with_, cut_with = _scores_of(reference, held)
        train_rest, _ = split_frozen(rest)
        results.append(ShapeHoldout(
            shape=shape, without=group_score(shape, without, labels, cut_without),
            with_=group_score(shape, with_, labels, cut_with), threshold_without=cut_without,
            threshold_with=cut_with, n_frozen=len(split_frozen(held)[1]),
            n_fit_without=len(train_rest)))
    say(f"leave-shape-out done in {time.perf_counter() - started:.0f}s")
    return results


# -- formatting -------------------------------------------------------------------------------
def _f(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def _group_rows(groups: Iterable[GroupScore]) -> list[list[str]]:
    return [[g.group, str(g.n), str(g.n_positive), _f(g.precision), _f(g.recall), _f(g.f1),
             _f(g.fp_rate), f"{g.fn}/{g.fp}"] for g in groups]


_GROUP_HEAD = ["group", "n", "pos", "P", "R", "F1", "FP rate", "FN/FP"]


def _table(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        align = ["---"] + ["---:"] * (len(head) - 1)
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r) for r in [head, *rows])


def format_frozen(report: FrozenReport, *, markdown: bool = False) -> str:
    """Overall, per-shape and per-language tables for one model."""
    heading = (f"### Frozen test: {report.model} (threshold {report.threshold:.3f})"
               if markdown else f"frozen test: {report.model} (threshold {report.threshold:.3f})")
    parts = [heading, _table(_GROUP_HEAD, _group_rows([report.overall]), markdown),
             "", "per language:" if not markdown else "**Per language**",
             _table(_GROUP_HEAD, _group_rows(report.by_lang), markdown),
             "", "per shape:" if not markdown else "**Per shape**",
             _table(_GROUP_HEAD, _group_rows(report.by_shape), markdown)]
    return "\n".join(parts)


def format_comparison(reports: Sequence[FrozenReport], *, markdown: bool = False) -> str:
    """Several models side by side on the same frozen items: overall, languages, shapes.

    Each cell is "P / R / F1" for groups with positives and the FP rate for groups of
    negatives only, so one row reads across models at a glance.
    """
    def cell(g: GroupScore | None) -> str:
        if g is None:
            return "–"
        if g.n_positive:
            return f"{_f(g.precision)} / {_f(g.recall)} / {_f(g.f1)}"
        return f"FP rate {_f(g.fp_rate)}"

    first = reports[0]
    head = ["group", "n", "pos"] + [f"{r.model} (t={r.threshold:.3f})" for r in reports]
    rows = []
    sections = (("", lambda r: (r.overall,)), ("lang ", lambda r: r.by_lang),
                ("", lambda r: r.by_shape))
    for prefix, groups_of in sections:
        for g in groups_of(first):
            others = [{x.group: x for x in groups_of(r)}.get(g.group) for r in reports]
            rows.append([prefix + g.group, str(g.n), str(g.n_positive)] + [cell(o) for o in others])
    return _table(head, rows, markdown)


def _rate_pair(h: ShapeHoldout) -> tuple[str, str, str]:
    """(metric name, held-out value, with-shape value) for the labels the shape holds."""
    if h.without.n_positive and not (h.without.fp + h.without.tn):
        return "recall", _f(h.without.recall), _f(h.with_.recall)
    if not h.without.n_positive:
        return "FP rate", _f(h.without.fp_rate), _f(h.with_.fp_rate)
    return ("recall / FP rate", f"{_f(h.without.recall)} / {_f(h.without.fp_rate)}",
            f"{_f(h.with_.recall)} / {_f(h.with_.fp_rate)}")


def format_holdout(rows: Sequence[ShapeHoldout], *, markdown: bool = False) -> str:
    head = ["shape", "items", "frozen", "metric", "without shape", "with shape"]
    body = []
    for h in rows:
        metric, without, with_ = _rate_pair(h)
        body.append([h.shape, str(h.without.n), str(h.n_frozen), metric, without, with_])
    title = ("### Leave-shape-out (all items of the shape, model fitted without / with it)"
             if markdown else "leave-shape-out (all items of the shape; fitted without / with it):")
    return title + "\n" + _table(head, body, markdown)


# -- command line -----------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m classifiers.report",
        description="Frozen-test quality per shape and language; leave-shape-out check.")
    parser.add_argument("--model", action="append", metavar="PATH",
                        help="model file to report on (repeat to compare; default: shipped)")
    parser.add_argument("--data", nargs="+", metavar="JSONL",
                        help="data files (default: classifiers/data/*.jsonl)")
    parser.add_argument("--keywords", metavar="TOML", help="keyword file for leave-shape-out fits")
    parser.add_argument("--leave-shape-out", action="store_true",
                        help="also fit one candidate per shape without it (minutes)")
    parser.add_argument("--shapes", nargs="+", metavar="SHAPE",
                        help="shapes to hold out (default: every tagged shape with "
                             f">= {MIN_SHAPE_ITEMS} items)")
    parser.add_argument("--kind", default="logreg",
                        help="model kind for leave-shape-out fits (default: logreg)")
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel CV folds per fit")
    parser.add_argument("--markdown", action="store_true", help="README-ready tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from classifiers.model import load

    try:
        examples = load_examples([Path(p) for p in args.data] if args.data else None)
        paths: list[Path | None] = [Path(p) for p in args.model] if args.model else [None]
        reports = []
        for path in paths:
            model = load(path)
            name = f"{model.version}" + (f" ({path})" if path is not None else " (shipped)")
            reports.append(frozen_report(model, examples, name=name))
        if len(reports) == 1:
            print(format_frozen(reports[0], markdown=args.markdown))
        else:
            print(("### " if args.markdown else "") + "Frozen test, P / R / F1 (FP rate for "
                  "groups of negatives), each model at its own threshold")
            print(format_comparison(reports, markdown=args.markdown))
        print()
        if args.leave_shape_out:
            lexicon = KeywordLexicon.from_toml(args.keywords)
            rows = leave_shape_out(examples, lexicon, shapes=args.shapes, kind=args.kind,
                                   n_jobs=args.n_jobs,
                                   progress=lambda m: print(m, file=sys.stderr, flush=True))
            print(format_holdout(rows, markdown=args.markdown))
    except ClassifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
