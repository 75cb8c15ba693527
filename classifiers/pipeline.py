"""Factories for the candidate models (unfitted scikit-learn Pipelines).

Every candidate starts with the same ``Annotator`` (normalise + find lexicon
mentions once). The text models then see three views: word 1–2-grams of the
*masked* text (actors replaced by placeholders, so relations are learnt rather
than names), character 3–5-grams of the plain text (robust to spelling and
inflection, e.g. "Pyongyang's", "Kim Jong-un"), and the dense rule features.

All candidates output probabilities from a log-loss model or a sigmoid
calibration, so a score of 0.5 means a coin toss on data like the training set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from classifiers.errors import TrainingError
from classifiers.features import (
    RULE_FEATURES,
    Annotator,
    CompactTfidfVectorizer,
    HashedCharNgrams,
    MentionText,
    RuleFeatures,
    TailColumns,
)

CANDIDATES = ("logreg", "svm", "hgb", "ensemble")
#: Bumped whenever features or model structure change, so model versions change too.
PIPELINE_REVISION = 5


def _tfidf(**params: Any) -> CompactTfidfVectorizer:
    return CompactTfidfVectorizer(sublinear_tf=True, max_df=0.9, dtype=np.float64, **params)


def text_features(*, word_max_features: int = 20_000, char_buckets: int = 2**18,
                  rule_scale: float = 1.0, window: int = 8) -> FeatureUnion:
    """The shared feature union: masked words, plain characters, actor contexts, rules (last).

    The rule block must stay last: ``TailColumns`` in the ensemble reads it by position.
    """
    word = Pipeline([
        ("text", MentionText(view="masked")),
        ("tfidf", _tfidf(ngram_range=(1, 2), min_df=2, max_features=word_max_features)),
    ])
    char = Pipeline([
        ("text", MentionText(view="plain")),
        ("hash", HashedCharNgrams(ngram_range=(3, 5), n_features=char_buckets, min_df=3)),
    ])
    context = Pipeline([
        ("text", MentionText(view="context")),
        ("tfidf", _tfidf(min_df=2, max_features=5_000, token_pattern=r"\S+")),
    ])
    return FeatureUnion([("word", word), ("char", char), ("context", context),
                         ("rules", RuleFeatures(window=window, scale=rule_scale))])


def _logreg(seed: int) -> LogisticRegression:
    return LogisticRegression(C=16.0, max_iter=2000, random_state=seed)


def _svm(seed: int) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(LinearSVC(C=0.5, random_state=seed), method="sigmoid", cv=5)


def _hgb(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10,
        l2_regularization=1.0, early_stopping=False, random_state=seed,
    )


def build_pipeline(kind: str = "logreg", *, lexicon: dict[str, Any] | None = None,
                   seed: int = 0, **params: Any) -> Pipeline:
    """An unfitted pipeline of the named kind; ``params`` are ``set_params`` overrides.

    ``lexicon`` is ``KeywordLexicon.to_dict()`` (``None``: the default keyword file at fit).
    """
    annotate = ("annotate", Annotator(lexicon=lexicon))
    if kind == "logreg":
        pipe = Pipeline([annotate, ("features", text_features()), ("clf", _logreg(seed))])
    elif kind == "svm":
        pipe = Pipeline([annotate, ("features", text_features()), ("clf", _svm(seed))])
    elif kind == "hgb":
        pipe = Pipeline([annotate, ("features", RuleFeatures()), ("clf", _hgb(seed))])
    elif kind == "ensemble":
        trees = Pipeline([("rules", TailColumns(n=len(RULE_FEATURES))), ("hgb", _hgb(seed))])
        vote = VotingClassifier(
            [("lr", _logreg(seed)), ("svm", _svm(seed)), ("hgb", trees)],
            voting="soft", weights=[1.0, 1.0, 1.0],
        )
        pipe = Pipeline([annotate, ("features", text_features()), ("clf", vote)])
    else:
        raise TrainingError(f"unknown model kind {kind!r}; choose one of {', '.join(CANDIDATES)}")
    if params:
        pipe.set_params(**params)
    trees = pipe.named_steps["clf"].get_params().get("hgb") if kind == "ensemble" else None
    if isinstance(trees, Pipeline):
        # The trees read the rule block by position; keep its width in step with ablations.
        rules = pipe.named_steps["features"].get_params()["rules"]
        width = len(RULE_FEATURES) - len(set(rules.exclude) & set(RULE_FEATURES))
        pipe.set_params(clf__hgb__rules__n=width)
    return pipe
