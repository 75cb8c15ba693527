"""Per-type accuracy of the event typer on the labelled event-type set.

    python -m classifiers.events_report [--model PATH] [--set PATH] [--markdown]
                                        [--model-only] [--cv]

The set (``tests/fixtures/event_types.jsonl``, see ``event_types.md`` beside it) is
evaluation only: it is never trained on. Every item is a positive and is typed as if
it were a match. Printed: precision and recall per type (recall of a type is the
"accuracy per type" in the README), overall accuracy, accuracy per language, the
confusion matrix, and the hard cases.

``--model-only`` types with the model alone (cue weight 0): for a model trained before
the cue lexicon existed, that is exactly how it typed. ``--cv`` instead
cross-validates the typer on the training positives for several cue weights: how
``CUE_WEIGHT`` was chosen, on data other than the evaluation set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifiers.data import jsonl_lines
from classifiers.errors import ClassifierError, DataError
from classifiers.event_typer import CUE_WEIGHT, type_events
from classifiers.events import EVENT_GROUPS
from classifiers.text import article_text

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "event_types.jsonl"
LANGS = ("en", "ko", "ru")
_SHORT = {"arms/military": "arms", "diplomacy/summit": "diplo", "economy/labour/trade": "econ",
          "sanctions/illicit": "sanct", "other": "other"}


@dataclass(frozen=True, slots=True)
class EventItem:
    """One labelled item of the event-type set."""

    id: str
    title: str
    summary: str
    lang: str
    event_type: str
    hard: str = ""

    @property
    def text(self) -> str:
        return article_text(self.title, self.summary)


def load_event_set(path: Path | str = DEFAULT_SET) -> list[EventItem]:
    """Read and validate the set: known groups and languages, unique ids."""
    items: list[EventItem] = []
    seen: set[str] = set()
    for where, raw in jsonl_lines(path, "event-type set"):
        try:
            d = json.loads(raw)
            item = EventItem(id=str(d["id"]), title=str(d["title"]),
                             summary=str(d.get("summary") or ""), lang=str(d["lang"]),
                             event_type=str(d["event_type"]), hard=str(d.get("hard") or ""))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{where}: not an event-type item ({exc})") from exc
        if item.event_type not in EVENT_GROUPS:
            raise DataError(f"{where}: unknown event type {item.event_type!r}")
        if item.lang not in LANGS:
            raise DataError(f"{where}: unknown language {item.lang!r}")
        if item.id in seen:
            raise DataError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


@dataclass(frozen=True)
class EventReport:
    """Predictions against labels, with the numbers derived from them."""

    items: tuple[EventItem, ...]
    predicted: tuple[str, ...]
    label: str = ""

    def confusion(self) -> np.ndarray:
        """Rows: true group; columns: predicted group (``EVENT_GROUPS`` order)."""
        matrix = np.zeros((len(EVENT_GROUPS), len(EVENT_GROUPS)), dtype=int)
        for item, p in zip(self.items, self.predicted, strict=True):
            matrix[EVENT_GROUPS.index(item.event_type), EVENT_GROUPS.index(p)] += 1
        return matrix

    def per_type(self) -> dict[str, tuple[float, float, int]]:
        """group → (precision, recall, support); precision is NaN if never predicted."""
        m = self.confusion()
        out = {}
        for i, g in enumerate(EVENT_GROUPS):
            predicted = m[:, i].sum()
            support = int(m[i].sum())
            out[g] = (m[i, i] / predicted if predicted else float("nan"),
                      m[i, i] / support if support else float("nan"), support)
        return out

    def accuracy(self, lang: str | None = None) -> float:
        pairs = [(i.event_type, p) for i, p in zip(self.items, self.predicted, strict=True)
                 if lang is None or i.lang == lang]
        return sum(t == p for t, p in pairs) / len(pairs) if pairs else float("nan")

    def count(self, lang: str | None = None) -> int:
        return sum(1 for i in self.items if lang is None or i.lang == lang)

    def hard_cases(self) -> list[tuple[EventItem, str]]:
        return [(i, p) for i, p in zip(self.items, self.predicted, strict=True) if i.hard]

    def format(self) -> str:
        lines = [f"event types{' (' + self.label + ')' if self.label else ''}: "
                 f"{self.count()} items, accuracy {self.accuracy():.3f}",
                 f"{'type':<22} {'precision':>9} {'recall':>7} {'n':>4}"]
        for g, (p, r, n) in self.per_type().items():
            lines.append(f"{g:<22} {p:>9.3f} {r:>7.3f} {n:>4}")
        lines.append("per language: " + ", ".join(
            f"{lang} {self.accuracy(lang):.3f} (n={self.count(lang)})" for lang in LANGS))
        lines.append("confusion (rows true, columns predicted): "
                     + " ".join(f"{_SHORT[g]:>6}" for g in EVENT_GROUPS))
        for g, row in zip(EVENT_GROUPS, self.confusion(), strict=True):
            lines.append(f"  {g:<22}" + " " * 18 + " ".join(f"{v:>6}" for v in row))
        lines.append("hard cases:")
        for item, p in self.hard_cases():
            mark = "ok " if p == item.event_type else "BAD"
            lines.append(f"  {mark} {item.id} {p:<20} {item.title[:60]}")
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = ["| event type | precision | recall (accuracy) | n |", "|---|---:|---:|---:|"]
        for g, (p, r, n) in self.per_type().items():
            lines.append(f"| {g} | {p:.3f} | {r:.3f} | {n} |")
        lines.append(f"| **all** | | **{self.accuracy():.3f}** | {self.count()} |")
        lines += ["", "| language | accuracy | n |", "|---|---:|---:|"]
        lines += [f"| {lang} | {self.accuracy(lang):.3f} | {self.count(lang)} |" for lang in LANGS]
        return "\n".join(lines)


def evaluate_model(model: object, items: Sequence[EventItem], *,
                   cue_weight: float = CUE_WEIGHT, label: str = "") -> EventReport:
    """Type every item with a loaded ``classifiers.Model`` (its event model + the cues)."""
    mentions = model.annotate([i.text for i in items])  # type: ignore[attr-defined]
    predicted = type_events(model.event_model, mentions,  # type: ignore[attr-defined]
                            cue_weight=cue_weight)
    return EventReport(tuple(items), tuple(predicted), label)


def cross_validate(weights: Sequence[float], *, seed: int = 0,
                   folds: int = 5) -> dict[float, float]:
    """Out-of-fold accuracy of the typer on the training positives, per cue weight.

    Folds are stratified by group; each fold's model is fitted by the same
    ``fit_event_model`` that training uses. Items are typed from their full text.
    """
    from sklearn.model_selection import StratifiedKFold

    from classifiers.data import load_examples
    from classifiers.events import coarse_event_type
    from classifiers.keywords import KeywordLexicon
    from classifiers.train import fit_event_model

    lexicon = KeywordLexicon.from_toml().to_dict()
    positives = sorted((e for e in load_examples()
                        if e.label == 1 and e.event_type and e.event_type != "feedback"),
                       key=lambda e: e.id)
    y = np.asarray([coarse_event_type(e.event_type) for e in positives])
    hits = {w: 0 for w in weights}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
        model = fit_event_model([positives[i] for i in train_idx], lexicon, seed)
        mentions = model[0].transform([positives[i].text for i in test_idx])
        for w in weights:
            predicted = type_events(model, mentions, cue_weight=w)
            hits[w] += int(sum(p == y[i] for p, i in zip(predicted, test_idx, strict=True)))
    return {w: hits[w] / len(y) for w in weights}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifiers.events_report",
                                     description="Per-type accuracy of the event typer.")
    parser.add_argument("--model", type=Path, default=None, help="model file (default: shipped)")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="event-type set (JSONL)")
    parser.add_argument("--markdown", action="store_true", help="print README tables")
    parser.add_argument("--model-only", action="store_true",
                        help="the model alone, without the cue lexicon (cue weight 0)")
    parser.add_argument("--cv", action="store_true",
                        help="cross-validate cue weights on the training positives instead")
    args = parser.parse_args(argv)
    try:
        if args.cv:
            for w, acc in cross_validate((0.0, 0.25, 0.5, 0.75, 1.0, 1.5)).items():
                print(f"cue weight {w:<5g} out-of-fold accuracy {acc:.3f}")
            return 0
        from classifiers.model import load

        model = load(args.model)
        weight = 0.0 if args.model_only else CUE_WEIGHT
        report = evaluate_model(model, load_event_set(args.set), cue_weight=weight,
                                label=f"{model.version}, cue weight {weight:g}")
    except ClassifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.markdown() if args.markdown else report.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
