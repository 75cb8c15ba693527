"""The event typer: a small text model plus the multilingual cue lexicon.

Training builds the model (``build_event_pipeline``, fitted by
``classifiers.train.fit_event_model``); serving calls ``type_events`` with the
annotations the classifier has already made, so typing a match costs one small
``predict_proba`` and a few regex searches.

Why these features: words alone fail on Korean, where particles are glued to the
stem ("조약에는", "정상회담서") so a word seen in training rarely recurs verbatim,
and on Russian endings ("договор", "договора", "договором"). Character 1–4-grams
inside words share the stem across all of these and across spellings; word 1–2-grams
keep phrases such as "sanctions evasion" or "mutual defence treaty" whole.

Why the cues are added at serving time rather than inside the fitted pipeline: the
lexicon is domain knowledge that should apply to every saved model, and keeping it
out of the artefact keeps the artefact made only of reviewed types
(``classifiers.artefact.TRUSTED_TYPES``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from classifiers.event_cues import cue_matrix
from classifiers.events import EVENT_GROUPS
from classifiers.features import Annotator, CompactTfidfVectorizer, HashedCharNgrams, MentionText
from classifiers.keywords import Mentions

#: Weight of one unit of cue evidence against the model's log-probabilities, chosen on
#: data other than the evaluation set: 5-fold cross-validation on the training positives
#: (``python -m classifiers.events_report --cv``: 0.796 model alone, 0.824 at 0.25, 0.815
#: at 0.5, falling beyond) and a model fitted on the older files typing the Korean,
#: Russian and shape positives written later by others (0.719 at 0.25, 0.727 at 0.5).
#: At 0.5 the cues decide when the model is unsure; a confident model overrides a
#: single topical cue.
CUE_WEIGHT = 0.5
#: A model's probability is floored here before the log, so a class the model thinks
#: impossible can still be reached by strong, unambiguous cues.
_PROBA_FLOOR = 1e-3


def build_event_pipeline(lexicon: dict[str, Any] | None, seed: int = 0) -> Pipeline:
    """Unfitted: annotate → plain text → word 1–2-grams + char 1–4-grams → balanced LR.

    Balanced classes, or the big arms/military group swallows the small ones.
    """
    words = CompactTfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True,
                                   max_features=20_000, dtype=np.float64)
    chars = HashedCharNgrams(ngram_range=(1, 4), n_features=2**18, min_df=2)
    return Pipeline([
        ("annotate", Annotator(lexicon=lexicon)),
        ("text", MentionText(view="plain")),
        ("features", FeatureUnion([("word", words), ("char", chars)])),
        ("clf", LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000,
                                   random_state=seed)),
    ])


def _word_vectorizer(event_model: Pipeline) -> TfidfVectorizer | None:
    """The word block of an event model (this module's layout or the older one)."""
    for _, step in event_model.steps:
        if isinstance(step, TfidfVectorizer):
            return step
        if isinstance(step, FeatureUnion):
            for _, part in step.transformer_list:
                if isinstance(part, TfidfVectorizer):
                    return part
    return None


def coverage(event_model: Pipeline | None, texts: Sequence[str]) -> np.ndarray:
    """Share of each text's words that the model saw in training (0 to 1).

    How much the model's opinion is worth on a text: about 0.8 on English wire copy,
    near 0 on a Korean headline when the training data hold almost no Korean. A
    model without a readable word block is trusted fully.
    """
    vectorizer = _word_vectorizer(event_model) if event_model is not None else None
    if vectorizer is None:
        return np.ones(len(texts))
    tokenize = vectorizer.build_tokenizer()
    vocabulary = vectorizer.vocabulary_
    out = np.zeros(len(texts))
    for i, text in enumerate(texts):
        tokens = tokenize(text.lower())
        if tokens:
            out[i] = sum(t in vocabulary for t in tokens) / len(tokens)
    return out


def model_log_proba(event_model: Pipeline | None, mentions: Sequence[Mentions]) -> np.ndarray:
    """log P(group) from the model, columns in ``EVENT_GROUPS`` order (zeros without a model).

    Groups the model never saw in training get the floor; unknown labels it may
    carry (older artefacts) are dropped.
    """
    out = np.full((len(mentions), len(EVENT_GROUPS)), np.log(_PROBA_FLOOR))
    if event_model is None:
        out[:] = 0.0
        return out
    proba = event_model[1:].predict_proba(list(mentions))
    for j, label in enumerate(event_model.classes_):
        if str(label) in EVENT_GROUPS:
            column = EVENT_GROUPS.index(str(label))
            out[:, column] = np.log(np.maximum(proba[:, j], _PROBA_FLOOR))
    return out


def combine(log_proba: np.ndarray, cues: np.ndarray, cue_weight: float = CUE_WEIGHT,
            trust: np.ndarray | None = None) -> list[str]:
    """The group with the highest trusted log-probability plus weighted cue evidence.

    ``trust`` (per row, 0 to 1; ``coverage``) scales the model's log-probabilities,
    i.e. flattens its distribution where it knows few of the words. Ties go to the
    earlier group in ``EVENT_GROUPS``, except that an item with no evidence at all
    is "other": we do not guess a type.
    """
    if trust is not None:
        log_proba = log_proba * trust[:, None]
    total = log_proba + cue_weight * cues
    groups = []
    for row, cue_row, lp_row in zip(total, cues, log_proba, strict=True):
        if not cue_row.any() and np.ptp(lp_row) == 0:
            groups.append("other")
        else:
            groups.append(EVENT_GROUPS[int(np.argmax(row))])
    return groups


def type_events(event_model: Pipeline | None, mentions: Sequence[Mentions], *,
                cue_weight: float = CUE_WEIGHT) -> list[str]:
    """One coarse event group per annotated text (model and cues combined)."""
    if not mentions:
        return []
    texts = [m.text for m in mentions]
    cues = np.asarray(cue_matrix(texts, [m.title_end for m in mentions]), dtype=float)
    return combine(model_log_proba(event_model, mentions), cues, cue_weight,
                   coverage(event_model, texts))


__all__ = ["CUE_WEIGHT", "build_event_pipeline", "combine", "coverage", "model_log_proba",
           "type_events"]
