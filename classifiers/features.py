"""Text preparation and keyword features for the scikit-learn pipeline.

The pipeline first *annotates* each text once (normalise, find every lexicon
mention with its position) and every later branch reads those annotations, so
the keyword regex runs once per item however many feature views use it.

Why rule features at all: the product is judged on real news from many outlets
whose vocabulary our training set cannot cover. What transfers across outlets is
structure — both actors named, close together, in the headline, joined by a
relation word, and not as two entries in a list of adversaries — so those are
spelled out as dense features instead of being left to memorised n-grams.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from classifiers.keywords import SECTIONS, Hit, KeywordLexicon, Mentions, normalise_text

DPRK_TOKEN = "zzdprk"
RUSSIA_TOKEN = "zzrussia"
OTHER_TOKEN = "zzother"
NUMBER_TOKEN = "zznum"
#: How placeholder tokens are shown to people (explanations, Slack).
DISPLAY_TOKENS = {DPRK_TOKEN: "[DPRK]", RUSSIA_TOKEN: "[RUSSIA]", OTHER_TOKEN: "[STATE]",
                  NUMBER_TOKEN: "[N]"}

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NON_LATIN = re.compile(r"[\u0400-\u04ff\uac00-\ud7af]")
# What may stand between two actors for "Russia and North Korea", "Pyongyang-Moscow",
# "between Moscow and Pyongyang", "Kim, Putin sign" (a headline's comma means "and").
_JOIN = re.compile(r"^\s*(?:and|&|-|/|,|with|to|\+|и|과|와|·)?\s*$", re.IGNORECASE)

RULE_FEATURES = (
    "has_dprk", "has_russia", "both", "has_dprk_any", "has_russia_any", "both_any",
    "weak_only", "n_dprk", "n_russia",
    "dprk_in_title", "russia_in_title", "both_in_title",
    "proximity", "near_3", "near_window", "same_sentence", "pair_join",
    "coop_near_both", "coop_any_near_both", "coop_total", "coop_in_title",
    "places", "n_other_states", "list_like", "other_between",
    "excluded", "headline_only", "length", "focus", "dprk_only", "russia_only", "non_latin",
    "enumeration", "dprk_personnel_war", "dprk_war",
)

#: Cooperation terms naming people sent somewhere (troops, workers, prisoners).
PERSONNEL_TERMS = frozenset({
    "troops", "troop", "soldiers", "servicemen", "personnel", "units", "forces", "mercenar*",
    "deminers", "builders", "workers", "labourers", "laborers", "prisoner*", "pow", "pows",
    "casualt*", "killed", "wounded", "combat", "fighting alongside", "fight for", "fighting for",
})
#: Other-state or place terms that put a story in the Russia–Ukraine war.
WAR_TERMS = frozenset({"ukraine", "ukrainian", "ukrainians", "kyiv", "zelensky", "zelenskyy",
                       "kursk", "front line", "frontline", "battlefield", "donetsk", "luhansk",
                       "donbas", "donbass", "kharkiv", "zaporizhzhia", "kherson", "avdiivka",
                       "mariupol", "bakhmut", "pokrovsk", "sumy"})
_WORD = re.compile(r"\w+")


def prepare_text(text: str) -> str:
    """The one text normalisation every view shares (NFKC, straight quotes, single spaces)."""
    return normalise_text(text or "")


def _log_scale(count: float, cap: float) -> float:
    return min(1.0, math.log1p(count) / math.log1p(cap))


def _resolve_lexicon(lexicon: dict[str, Any] | None) -> dict[str, list[str]]:
    if lexicon is None:
        return KeywordLexicon.from_toml().to_dict()
    return KeywordLexicon.from_mapping(
        {name: {"en": list(lexicon.get(name, []))} for name in SECTIONS}, source="lexicon"
    ).to_dict()


class Annotator(TransformerMixin, BaseEstimator):
    """texts → ``Mentions`` (normalised text plus positioned lexicon hits).

    ``lexicon`` is the keyword lists as a plain dict (``KeywordLexicon.to_dict()``);
    ``None`` means the default keyword file, read once at ``fit``. The lists are
    copied into the fitted model, so a saved model never depends on the file.
    """

    def __init__(self, lexicon: dict[str, Any] | None = None) -> None:
        self.lexicon = lexicon

    def fit(self, X: Iterable[str], y: Any = None) -> Annotator:
        self.lexicon_ = _resolve_lexicon(self.lexicon)
        self._matcher = None
        return self

    @property
    def matcher(self) -> KeywordLexicon:
        check_is_fitted(self, "lexicon_")
        matcher = getattr(self, "_matcher", None)
        if matcher is None:
            matcher = KeywordLexicon.from_mapping(
                {name: {"en": self.lexicon_[name]} for name in SECTIONS}, source="model lexicon"
            )
            self._matcher = matcher
        return matcher

    def transform(self, X: Iterable[str]) -> list[Mentions]:
        matcher = self.matcher
        return [matcher.find(prepare_text(str(text)), normalised=True) for text in X]

    def __getstate__(self) -> dict[str, Any]:
        # The compiled matcher is a cache: rebuilt from lexicon_ after loading.
        state = super().__getstate__()
        state.pop("_matcher", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._matcher = None

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags


def masked_text(mentions: Mentions) -> str:
    """Lower-cased text with actors replaced by placeholders and numbers by one token.

    "Pyongyang ships shells to Moscow" and "DPRK sends shells to the Kremlin" become
    the same n-grams, so the word model learns the relation rather than the names.
    """
    text = mentions.text
    replacements: dict[int, tuple[int, str]] = {}
    for hits, token in ((mentions.dprk, DPRK_TOKEN), (mentions.russia, RUSSIA_TOKEN),
                        (mentions.other_states, OTHER_TOKEN)):
        for hit in hits:
            end, existing = replacements.get(hit.start, (hit.end, ""))
            replacements[hit.start] = (end, f"{existing} {token}".strip())
    pieces: list[str] = []
    cursor = 0
    for start in sorted(replacements):
        end, token = replacements[start]
        if start < cursor:
            continue
        pieces.append(text[cursor:start])
        pieces.append(f" {token} ")
        cursor = end
    pieces.append(text[cursor:])
    return _NUMBER.sub(f" {NUMBER_TOKEN} ", "".join(pieces).lower())


class MentionText(TransformerMixin, BaseEstimator):
    """``Mentions`` → strings for a vectoriser: ``view`` is "plain", "masked" or "context"."""

    def __init__(self, view: str = "plain") -> None:
        self.view = view

    def fit(self, X: Any, y: Any = None) -> MentionText:
        if self.view not in ("plain", "masked", "context"):
            raise ValueError(f"view must be 'plain', 'masked' or 'context', got {self.view!r}")
        self.view_ = self.view
        return self

    def transform(self, X: Sequence[Mentions]) -> list[str]:
        check_is_fitted(self, "view_")
        if self.view_ == "masked":
            return [masked_text(m) for m in X]
        if self.view_ == "context":
            return [context_text(m) for m in X]
        return [m.text.lower() for m in X]

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


def _gap(a: Hit, b: Hit) -> int:
    """Tokens from the end of one mention to the start of the other (adjacent = 1)."""
    if a.start > b.start:
        a, b = b, a
    return max(1, b.first_token - a.last_token)


def rule_vector(m: Mentions, window: int) -> list[float]:
    """The dense rule features of one annotated text, in ``RULE_FEATURES`` order."""
    nd, nr = len(m.dprk), len(m.russia)
    strong_d = any(not h.weak for h in m.dprk)
    strong_r = any(not h.weak for h in m.russia)
    both = nd > 0 and nr > 0  # weak mentions count for the structure features
    title_end = m.title_end
    dprk_title = any(h.start < title_end for h in m.dprk)
    russia_title = any(h.start < title_end for h in m.russia)
    other_terms = {h.term for h in m.other_states}
    n_other = len(other_terms)

    min_gap = 10_000
    pair: tuple[Hit, Hit] | None = None
    same_sentence = pair_join = False
    if both:
        for d in m.dprk:
            for r in m.russia:
                if d.start == r.start:  # one term naming both ("북러")
                    gap = 1
                    pair_join = True
                else:
                    gap = _gap(d, r)
                    first, second = (d, r) if d.start < r.start else (r, d)
                    between = m.text[first.end:second.start]
                    if _JOIN.match(between) or between.strip().lower() in ("'s", "s"):
                        pair_join = True
                if gap < min_gap:
                    min_gap, pair = gap, (d, r)
                if m.sentence_of(d) == m.sentence_of(r):
                    same_sentence = True

    coop_near = 0
    if both:
        for c in m.cooperation:
            near_d = any(abs(c.first_token - d.first_token) <= window for d in m.dprk)
            near_r = any(abs(c.first_token - r.first_token) <= window for r in m.russia)
            coop_near += near_d and near_r
    other_between = False
    if pair is not None:
        lo, hi = sorted((pair[0].start, pair[1].start))
        other_between = any(lo < h.start < hi for h in m.other_states)
    n_country = nd + nr + len(m.other_states)
    enumeration = both and _enumeration(m)
    at_war = any(h.term in WAR_TERMS for h in (*m.other_states, *m.cooperation, *m.places))
    personnel_war = at_war and any(
        c.term in PERSONNEL_TERMS and abs(c.first_token - d.first_token) <= window
        for c in m.cooperation for d in m.dprk)
    return [
        float(strong_d), float(strong_r), float(strong_d and strong_r),
        float(nd > 0), float(nr > 0), float(both), float(both and not (strong_d and strong_r)),
        _log_scale(nd, 7), _log_scale(nr, 7),
        float(dprk_title), float(russia_title), float(dprk_title and russia_title),
        math.exp(-(min_gap - 1) / window) if both else 0.0,
        float(both and min_gap <= 3), float(both and min_gap <= window), float(same_sentence),
        float(pair_join),
        _log_scale(coop_near, 7), float(coop_near > 0), _log_scale(len(m.cooperation), 15),
        float(any(h.start < title_end for h in m.cooperation)),
        _log_scale(len(m.places), 3), min(1.0, n_other / 4), float(both and n_other >= 2),
        float(other_between), float(bool(m.exclusions)),
        float(len(m.sentence_starts) == 1), _log_scale(m.n_tokens, 80),
        (nd + nr) / n_country if n_country else 0.0,
        float(nd > 0 and nr == 0), float(nr > 0 and nd == 0),
        float(bool(_NON_LATIN.search(m.text))),
        float(enumeration), float(personnel_war), float(at_war and strong_d),
    ]


_LIST_SEPARATOR = re.compile(r",|\band\b|\bor\b|&|/|\bи\b|과|와|·", re.IGNORECASE)


def _enumeration(m: Mentions, max_gap: int = 4) -> bool:
    """Whether DPRK and Russia sit in a list of 3+ countries ("China, Russia and North Korea").

    A list is a chain of country mentions each separated from the next by a comma
    or a conjunction and at most ``max_gap`` tokens ("Chinese build-up, Russian
    aggression and North Korean missiles" is one; "troops killed in Kursk" is not).
    """
    hits = sorted([(h, "dprk") for h in m.dprk] + [(h, "russia") for h in m.russia]
                  + [(h, h.term) for h in m.other_states], key=lambda p: p[0].start)
    chain: set[str] = set()
    for (prev, prev_name), (hit, name) in pairwise(hits):
        between = m.text[prev.end:hit.start]
        linked = (hit.first_token - prev.last_token <= max_gap
                  and _LIST_SEPARATOR.search(between) is not None
                  and not any(c in between for c in ".;:!?"))
        chain = (chain | {prev_name, name}) if linked else set()
        if len(chain) >= 3 and "dprk" in chain and "russia" in chain:
            return True
    return False


def context_text(m: Mentions, width: int = 4) -> str:
    """Words around each actor, tagged by side: "d_troops r_buys b_shells".

    ``d_``/``r_`` mark words within ``width`` tokens of a DPRK/Russia mention and
    ``b_`` words between the closest DPRK–Russia pair, so the model can tell
    "North Korean troops" from "Russian troops" and learn what links the two.
    """
    tokens = _WORD.findall(m.text.lower())
    out: list[str] = []
    for prefix, hits in (("d_", m.dprk), ("r_", m.russia)):
        for h in hits:
            lo, hi = max(0, h.first_token - width), min(len(tokens), h.last_token + 1 + width)
            out.extend(prefix + t for i, t in enumerate(tokens[lo:hi], start=lo)
                       if not h.first_token <= i <= h.last_token)
    if m.dprk and m.russia:
        d, r = min(((d, r) for d in m.dprk for r in m.russia), key=lambda p: _gap(*p))
        a, b = sorted((d, r), key=lambda h: h.start)
        out.extend("b_" + t for t in tokens[a.last_token + 1:b.first_token][:12])
    return _NUMBER.sub(NUMBER_TOKEN, " ".join(out))


class RuleFeatures(TransformerMixin, BaseEstimator):
    """``Mentions`` → dense structure features (see ``RULE_FEATURES``), all in [0, 1].

    ``window`` is the token distance within which a cooperation word counts as
    relating the two actors; ``scale`` weighs the block against the TF-IDF blocks.
    """

    def __init__(self, window: int = 8, scale: float = 1.0) -> None:
        self.window = window
        self.scale = scale

    def fit(self, X: Any, y: Any = None) -> RuleFeatures:
        if int(self.window) < 1:
            raise ValueError("window must be at least 1 token")
        self.feature_names_ = np.asarray(RULE_FEATURES, dtype=object)
        return self

    def transform(self, X: Sequence[Mentions]) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        rows = [rule_vector(m, int(self.window)) for m in X]
        out = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(RULE_FEATURES))
        return out * float(self.scale)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        return self.feature_names_.copy()

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


class TailColumns(TransformerMixin, BaseEstimator):
    """Keep the last ``n`` columns as a dense array.

    Lets a tree model inside an ensemble read only the rule-feature block of the
    shared feature union (trees cannot take the sparse TF-IDF columns).
    """

    def __init__(self, n: int = len(RULE_FEATURES)) -> None:
        self.n = n

    def fit(self, X: Any, y: Any = None) -> TailColumns:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        tail = X[:, X.shape[1] - int(self.n):]
        return tail.toarray() if hasattr(tail, "toarray") else np.asarray(tail)
