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

import json
import math
import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
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
    "excluded", "headline_only", "focus", "dprk_only", "russia_only", "non_latin",
    "enumeration", "dprk_personnel_war", "dprk_war", "title_pair_coop", "actor_coop_actor",
    "russia_as_source", "separate_cases", "parallel_actors", "captured_dprk_arms",
    "against_russia", "axis_bloc", "axis_trio", "pair_with_dprk", "crime_each_side",
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

# -- multi-party and wrong-direction cues ------------------------------------------------------
# Why: stories where both countries appear but the relation is not between them (the
# embassy is only the source, two unrelated crime cases, Ukraine firing captured arms
# AT Russia) and stories where it is, inside a bigger picture (a China–Russia–DPRK bloc,
# Iran and North Korea arming Russia). Each cue is a pattern an outlet of any style uses,
# so it transfers where memorised n-grams of our own wording do not.

#: A Russia mention that is a news source: "Russian embassy", "Russia's diplomats",
#: "embassy of Russia", "посольства России", "러시아 대사관".
_SOURCE_AFTER = re.compile(
    r"^(?:'s)?\s*(?:embassy|embassies|diplomat\w*|mission|ambassador|envoy|consulate|"
    r"посольств\w*|посол\w*|дипломат\w*|대사관|대사|외교관)", re.IGNORECASE)
_SOURCE_BEFORE = re.compile(
    r"(?:embassy|mission|ambassador|envoy|diplomats?|consulate)\s+(?:of|from)\s+(?:the\s+)?$|"
    r"(?:ambassador|envoy)\s+$|"
    r"(?:посольств\w*|посол\w*|дипломат\w*|российск\w+\s+посольств\w*)\s+$", re.IGNORECASE)
#: Saying verbs that make the source a source ("…, Russian embassy says").
_REPORTING = re.compile(
    r"\b(?:says?|said|reports?|reported|according to|notes?|noted|claims?|claimed|posts?|posted|"
    r"wrote|writes|confirms?|confirmed|hears|heard|warns?|warned|describes?|described|tells|told|"
    r"shows?|showed|publish\w*|photos?|pictures?|spots?|spotted|observ\w*)"
    r"\b|(?:embassy|ambassador|diplomats?|envoy|mission)\s*:|по данным|по словам|сообщ\w*|"
    r"따르면|밝혔|전했", re.IGNORECASE)
#: "in a separate case", "unrelated", "two indictments": two stories in one item.
_SEPARATE = re.compile(
    r"\b(?:separate(?:ly)?|unrelated|another case|different case|two (?:cases|indictments|"
    r"regimes|actions|rulings))\b|отдельн\w*|не связан\w*|별도|별개", re.IGNORECASE)
#: Between two actors each with its own noun: "hackers and", "war and", "gangs,".
_PARALLEL_BETWEEN = re.compile(
    r"^(?:'s)?\s*(?:[^\W\d][\w\-]*\s+){0,2}[^\W\d][\w\-]*\s*(?:,|;|\band\b|\bor\b|&|\bи\b|과|와)"
    r"\s*(?:the\s+|a\s+|in\s+(?:a\s+)?separate\s+case,?\s+)?(?:'s)?$", re.IGNORECASE)
_FUNCTION_WORDS = frozenset({"the", "a", "an", "of", "to", "in", "on", "for", "with", "by",
                             "from", "at", "as", "is", "are", "was", "were"})
_CAPTURE = re.compile(r"\b(?:captured|seized|trophy|trophies|abandoned|recovered)\b|"
                      r"захвачен\w*|трофейн\w*|노획", re.IGNORECASE)
_ARMS = re.compile(
    r"\b(?:rockets?|shells?|ammunition|ammo|munitions?|rounds|launchers?|howitzers?|guns?|"
    r"mlrs|artillery|weapons?|missiles?|arms|koksan|m1991)\b|снаряд\w*|ракет\w*|оруж\w*|"
    r"포탄|방사포|무기|미사일", re.IGNORECASE)
_UKRAINE_SIDE = re.compile(r"\bukrain\w*|\bkyiv\b|\bzelensky\w*|украин\w*|киев\w*|우크라이나",
                           re.IGNORECASE)
#: "at Russian lines", "against Russia", "on Russian positions", "по российским".
_AGAINST_BEFORE = re.compile(r"(?:\b(?:at|against|on|onto|into)\s+(?:the\s+)?|против\s+|по\s+)$",
                             re.IGNORECASE)
_AXIS = re.compile(
    r"\b(?:triangle|trilateral|tripartite|three-way|three way|threesome|trio|bloc|axis|"
    r"alignment|two-plus-one|northern three|three northern)\b|треугольн\w*|трехсторон\w*|"
    r"трёхсторон\w*|\bось\b|оси\b|блок\w*|삼각|북중러|북·중·러|북-중-러|3각|진영", re.IGNORECASE)
#: Crime words: each country next to one ("North Korean hackers … Russian gangs") is most
#: often two crime stories in one item (or one side attacking the other), not a partnership.
_CRIME = re.compile(
    r"\b(?:hack\w*|ransomware|scam\w*|fraud\w*|launder\w*|heists?|phishing|cybercrim\w*|"
    r"criminals?|gangs?|mafia|thieves|crooks|mixers?|thefts?|stole|steal\w*|cyber\w*)\b|"
    r"хакер\w*|мошенни\w*|киберпреступ\w*|해커|해킹|사기|랜섬웨어", re.IGNORECASE)
_IRAN = frozenset({"iran", "iranian", "tehran", "이란", "иран"})
_CHINA = frozenset({"china", "chinese", "beijing", "xi jinping", "중국", "베이징", "시진핑"})


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
        state = dict(super().__getstate__())  # object.__getstate__ returns the live __dict__
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
    values = rule_values(m, window)
    return [values[name] for name in RULE_FEATURES]


def rule_values(m: Mentions, window: int) -> dict[str, float]:
    """The rule features of one annotated text by name.

    Filled in by name and read out in ``RULE_FEATURES`` order (``rule_vector``), so a
    column can never slip against its name; a new feature is its name appended to
    ``RULE_FEATURES`` (the column order a saved model depends on) plus its line here.
    """
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
    # One actor, a cooperation word, then the other actor, in one sentence and in reading
    # order within the window ("Russia vetoes ... North Korea sanctions", "Pyongyang ships
    # shells to Moscow"): the shape of a relation, whatever the relation's words are.
    actor_coop_actor = False
    if both and not enumeration:
        for a_hits, b_hits in ((m.dprk, m.russia), (m.russia, m.dprk)):
            for a in a_hits:
                for c in m.cooperation:
                    if not (a.last_token < c.first_token <= a.last_token + window):
                        continue
                    if m.sentence_of(a) != m.sentence_of(c):
                        continue
                    if any(c.last_token < b.first_token <= c.last_token + window
                           and m.sentence_of(b) == m.sentence_of(c) for b in b_hits):
                        actor_coop_actor = True
    title_pair_coop = (dprk_title and russia_title and not enumeration
                       and any(h.start < title_end for h in m.cooperation))
    extra = _multiparty_values(m, window) if both else dict.fromkeys(_MULTIPARTY, 0.0)
    values = {
        "has_dprk": float(strong_d),
        "has_russia": float(strong_r),
        "both": float(strong_d and strong_r),
        "has_dprk_any": float(nd > 0),
        "has_russia_any": float(nr > 0),
        "both_any": float(both),
        "weak_only": float(both and not (strong_d and strong_r)),
        "n_dprk": _log_scale(nd, 7),
        "n_russia": _log_scale(nr, 7),
        "dprk_in_title": float(dprk_title),
        "russia_in_title": float(russia_title),
        "both_in_title": float(dprk_title and russia_title),
        "proximity": math.exp(-(min_gap - 1) / window) if both else 0.0,
        "near_3": float(both and min_gap <= 3),
        "near_window": float(both and min_gap <= window),
        "same_sentence": float(same_sentence),
        "pair_join": float(pair_join),
        "coop_near_both": _log_scale(coop_near, 7),
        "coop_any_near_both": float(coop_near > 0),
        "coop_total": _log_scale(len(m.cooperation), 15),
        "coop_in_title": float(any(h.start < title_end for h in m.cooperation)),
        "places": _log_scale(len(m.places), 3),
        "n_other_states": min(1.0, n_other / 4),
        "list_like": float(both and n_other >= 2),
        "other_between": float(other_between),
        "excluded": float(bool(m.exclusions)),
        "headline_only": float(len(m.sentence_starts) == 1),
        "focus": (nd + nr) / n_country if n_country else 0.0,
        "dprk_only": float(nd > 0 and nr == 0),
        "russia_only": float(nr > 0 and nd == 0),
        "non_latin": float(bool(_NON_LATIN.search(m.text))),
        "enumeration": float(enumeration),
        "dprk_personnel_war": float(personnel_war),
        "dprk_war": float(at_war and strong_d),
        "title_pair_coop": float(title_pair_coop),
        "actor_coop_actor": float(actor_coop_actor),
    }
    values.update(extra)
    return values


_MULTIPARTY = ("russia_as_source", "separate_cases", "parallel_actors", "captured_dprk_arms",
               "against_russia", "axis_bloc", "axis_trio", "pair_with_dprk", "crime_each_side")


def _is_source(m: Mentions, hit: Hit) -> bool:
    """Whether a Russia mention names the messenger ("Russian embassy", "посольства России")."""
    after = m.text[hit.end:hit.end + 30]
    before = m.text[max(0, hit.start - 40):hit.start]
    return bool(_SOURCE_AFTER.match(after) or _SOURCE_BEFORE.search(before))


def _adjectival(m: Mentions, hit: Hit) -> bool:
    """Whether a mention modifies a noun of its own ("Russian gangs", "Russia's war")."""
    surface = hit.surface.lower()
    return ((surface.endswith(("an", "ese", "ish")) and surface not in ("tehran", "iran", "japan"))
            or m.text[hit.end:hit.end + 2] == "'s")


def _parallel(m: Mentions) -> bool:
    """DPRK and Russia each heading its own noun phrase in a pair, with no relation between.

    "North Korean hackers and Russian gangs", "Russia's war and North Korea's missiles":
    a word of content after the first actor, then a conjunction, then the second actor.
    "Russia and North Korea" (the pair itself) is ``pair_join``, not this.
    """
    for d in m.dprk:
        for r in m.russia:
            first, second = (d, r) if d.start < r.start else (r, d)
            between = m.text[first.end:second.start]
            if (len(between) > 60 or not _PARALLEL_BETWEEN.match(between)
                    or not (_adjectival(m, first) and _adjectival(m, second))):
                continue
            words = [w.lower() for w in _WORD.findall(between)]
            content = [w for w in words if w not in _FUNCTION_WORDS
                       and w not in ("and", "or", "s", "и", "separate", "case")]
            if content and not any(c.start > first.end and c.end <= second.start
                                   for c in m.cooperation if c.term not in PERSONNEL_TERMS):
                return True
    return False


def _crime_each_side(m: Mentions, width: int = 4) -> bool:
    """A crime word within ``width`` tokens of a DPRK mention and of a Russia mention."""
    spans = [(t.start(), t.end()) for t in _WORD.finditer(m.text)]

    def near(hit: Hit) -> bool:
        lo = spans[max(0, hit.first_token - width)][0]
        hi = spans[min(len(spans) - 1, hit.last_token + width)][1]
        return _CRIME.search(m.text[lo:hi]) is not None

    return any(near(d) for d in m.dprk) and any(near(r) for r in m.russia)


def _multiparty_values(m: Mentions, window: int) -> dict[str, float]:
    """The multi-party and wrong-direction cues (see ``_SOURCE_AFTER`` and the rest).

    Only called when both countries are named: each cue says what kind of link, if
    any, joins them, which is meaningless when one side is missing.
    """
    text = m.text
    source_hits = [r for r in m.russia if _is_source(m, r)]
    as_source = bool(source_hits) and len(source_hits) == len(m.russia) and bool(
        _REPORTING.search(text))
    captured = False
    for d in m.dprk:
        lo, hi = max(0, d.start - 40), d.end + 50
        span = text[lo:hi]
        if _CAPTURE.search(span) and _ARMS.search(text[d.end:hi]):
            captured = True
    captured = captured and bool(_UKRAINE_SIDE.search(text))
    against = any(_AGAINST_BEFORE.search(text[max(0, r.start - 16):r.start]) for r in m.russia)
    axis = bool(_AXIS.search(text))
    china = any(h.term in _CHINA for h in m.other_states)
    # A third state joined to North Korea ("Iran and North Korea", "Tehran and Pyongyang")
    # with Russia in the same sentence: a pair acting on Russia, not a list of three.
    pair_with_dprk = False
    for d in m.dprk:
        for o in m.other_states:
            if o.term in WAR_TERMS:
                continue
            first, second = (d, o) if d.start < o.start else (o, d)
            between = text[first.end:second.start]
            joined = _JOIN.match(between) or (
                _PARALLEL_BETWEEN.match(between) and _adjectival(m, first)
                and _adjectival(m, second))
            # Iran is the other state known to arm Russia: near North Korea with arms words
            # it is the same story told as "shells from Pyongyang, drones from Tehran".
            supplier = (o.term in _IRAN and m.sentence_of(o) == m.sentence_of(d)
                        and abs(o.first_token - d.first_token) <= 12
                        and _ARMS.search(text) is not None)
            if (joined or supplier) and any(
                    m.sentence_of(r) == m.sentence_of(d)
                    and not first.start < r.start < second.start for r in m.russia):
                pair_with_dprk = True
    pair_with_dprk = pair_with_dprk and not _enumeration(m)
    return {
        "russia_as_source": float(as_source),
        "separate_cases": float(bool(_SEPARATE.search(text))),
        "parallel_actors": float(_parallel(m)),
        "captured_dprk_arms": float(captured),
        "against_russia": float(against),
        "axis_bloc": float(axis),
        "axis_trio": float(axis and china),
        "pair_with_dprk": float(pair_with_dprk),
        "crime_each_side": float(_crime_each_side(m)),
    }


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
    # Other actors inside a window read as placeholders ("Russia~zzdprk"), not names.
    for hits, token in ((m.other_states, OTHER_TOKEN), (m.russia, RUSSIA_TOKEN),
                        (m.dprk, DPRK_TOKEN)):
        for h in hits:
            for i in range(h.first_token, min(h.last_token + 1, len(tokens))):
                tokens[i] = token if i == h.first_token else ""
    out: list[str] = []
    for prefix, hits in (("d_", m.dprk), ("r_", m.russia)):
        for h in hits:
            lo, hi = max(0, h.first_token - width), min(len(tokens), h.last_token + 1 + width)
            out.extend(prefix + t for i, t in enumerate(tokens[lo:hi], start=lo)
                       if t and not h.first_token <= i <= h.last_token)
    if m.dprk and m.russia:
        d, r = min(((d, r) for d in m.dprk for r in m.russia), key=lambda p: _gap(*p))
        a, b = sorted((d, r), key=lambda h: h.start)
        out.extend("b_" + t for t in tokens[a.last_token + 1:b.first_token][:12] if t)
    return _NUMBER.sub(NUMBER_TOKEN, " ".join(out))


class RuleFeatures(TransformerMixin, BaseEstimator):
    """``Mentions`` → dense structure features (see ``RULE_FEATURES``), all in [0, 1].

    ``window`` is the token distance within which a cooperation word counts as
    relating the two actors; ``scale`` weighs the block against the TF-IDF blocks;
    ``exclude`` names features to leave out (for ablation experiments).
    """

    def __init__(self, window: int = 8, scale: float = 1.0, exclude: tuple[str, ...] = ()) -> None:
        self.window = window
        self.scale = scale
        self.exclude = exclude

    def fit(self, X: Any, y: Any = None) -> RuleFeatures:
        if int(self.window) < 1:
            raise ValueError("window must be at least 1 token")
        unknown = sorted(set(self.exclude) - set(RULE_FEATURES))
        if unknown:
            raise ValueError(f"unknown rule features in exclude: {', '.join(unknown)}")
        self.columns_ = np.asarray([i for i, name in enumerate(RULE_FEATURES)
                                    if name not in set(self.exclude)], dtype=np.intp)
        self.feature_names_ = np.asarray(RULE_FEATURES, dtype=object)[self.columns_]
        return self

    def transform(self, X: Sequence[Mentions]) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        rows = [rule_vector(m, int(self.window)) for m in X]
        out = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(RULE_FEATURES))
        return out[:, self.columns_] * float(self.scale)

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


class CompactTfidfVectorizer(TfidfVectorizer):
    """``TfidfVectorizer`` whose fitted vocabulary is persisted as one JSON string.

    skops writes a dict node per vocabulary entry, which makes a large vocabulary slow
    to save and load; one string round-trips at once.
    Behaviour is otherwise identical to the parent class.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object.__getstate__ returns the live __dict__
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            state["vocabulary_json_"] = json.dumps(
                {term: int(index) for term, index in vocabulary.items()}, ensure_ascii=False)
        return state

    def transform(self, raw_documents: Any) -> Any:
        """Counts from the parent, then TF-IDF applied directly.

        Numerically what ``TfidfVectorizer.transform`` returns, minus the input
        re-validation of its inner TfidfTransformer (the largest cost of scoring a
        single item).
        """
        from sklearn.feature_extraction.text import CountVectorizer

        check_is_fitted(self, "vocabulary_")
        X = CountVectorizer.transform(self, raw_documents).astype(self.dtype)
        if self.sublinear_tf:
            np.log(X.data, X.data)
            X.data += 1.0
        if self.use_idf:
            X.data *= self._tfidf.idf_[X.indices]
        if self.norm == "l2":
            rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
            norms = np.sqrt(np.bincount(rows, weights=X.data ** 2, minlength=X.shape[0]))
            norms[norms == 0] = 1.0
            X.data /= norms[rows]
        elif self.norm is not None:
            from sklearn.preprocessing import normalize

            X = normalize(X, norm=self.norm, copy=False)
        return X

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        packed = state.pop("vocabulary_json_", None)
        super().__setstate__(state)
        if packed is not None:
            self.vocabulary_ = json.loads(packed)


class HashedCharNgrams(TransformerMixin, BaseEstimator):
    """Character n-grams within words (like ``analyzer="char_wb"``), hashed with numpy.

    Why not TfidfVectorizer: its analyzer builds every n-gram as a Python string and
    looks it up in a dict, which dominates scoring time. Here a whole batch becomes
    one array of code points and each n-gram a rolling hash computed by a handful
    of vector operations. Rare buckets (document
    frequency below ``min_df`` in training) are dropped and the kept ones numbered
    densely (``buckets_``), so the model sees a vocabulary-sized matrix, not 2**18
    mostly empty columns; then sublinear TF, IDF and L2 normalisation as in
    TfidfVectorizer.
    """

    def __init__(self, ngram_range: tuple[int, int] = (3, 5), n_features: int = 2**18,
                 min_df: int = 3) -> None:
        self.ngram_range = ngram_range
        self.n_features = n_features
        self.min_df = min_df

    def _hashed(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(doc index, bucket, count) for every distinct n-gram bucket of every document."""
        lo, hi = (int(v) for v in self.ngram_range)
        n_features = np.uint64(int(self.n_features))
        # " w1  w2 " pads every word with its own spaces; NUL separates documents.
        joined = "\x00".join(" " + "  ".join(str(d).replace("\x00", " ").split()) + " "
                             for d in docs) + "\x00"
        codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        length = len(codes)
        seps = np.concatenate(([0], np.cumsum(codes == 0)))
        spaces = np.concatenate(([0], np.cumsum(codes == 32)))
        padded = np.concatenate((codes, np.zeros(hi, dtype=np.uint32))).astype(np.uint64)
        h = np.full(length, np.uint64(0xCBF29CE484222325))
        keys = []
        for k in range(hi):  # FNV-style rolling hash, one vector op per character offset
            h = (h ^ padded[k:k + length]) * np.uint64(0x100000001B3)
            n = k + 1
            if n < lo or length < n:
                continue
            starts = np.arange(length - n + 1)
            # No document boundary inside, no space except at either end of the n-gram.
            valid = (seps[starts + n] == seps[starts]) & (
                spaces[starts + n - 1] == spaces[starts + 1])
            starts = starts[valid]
            bucket = ((h[starts] ^ np.uint64(n)) >> np.uint64(17)) % n_features
            keys.append(seps[starts].astype(np.uint64) * n_features + bucket)
        if not keys:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        unique, counts = np.unique(np.concatenate(keys), return_counts=True)
        return ((unique // n_features).astype(np.int64), (unique % n_features).astype(np.int64),
                counts.astype(np.float64))

    def fit(self, X: Sequence[str], y: Any = None) -> HashedCharNgrams:
        docs = list(X)
        _, buckets, _ = self._hashed(docs)
        df = np.bincount(buckets, minlength=int(self.n_features))
        kept = np.flatnonzero(df >= int(self.min_df))
        self.buckets_ = kept.astype(np.int64)
        self._column_of = None
        self.idf_ = (np.log((1.0 + len(docs)) / (1.0 + df[kept])) + 1.0).astype(np.float64)
        return self

    def transform(self, X: Sequence[str]) -> Any:
        import scipy.sparse as sp

        check_is_fitted(self, "idf_")
        docs = list(X)
        rows, buckets, counts = self._hashed(docs)
        width = len(self.buckets_)
        column_of = getattr(self, "_column_of", None)
        if column_of is None:  # bucket → column (-1: pruned); a cache, never saved
            column_of = np.full(int(self.n_features), -1, dtype=np.int64)
            column_of[self.buckets_] = np.arange(width)
            self._column_of = column_of
        cols = column_of[buckets]
        keep = cols >= 0
        rows, cols, counts = rows[keep], cols[keep], counts[keep]
        data = np.log1p(counts) * self.idf_[cols]
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(docs)))
        norms[norms == 0] = 1.0
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=len(docs)))))
        matrix = sp.csr_matrix((data / norms[rows], cols, indptr), shape=(len(docs), width))
        matrix.sort_indices()  # columns follow bucket order, so this is cheap
        return matrix

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object.__getstate__ returns the live __dict__
        state.pop("_column_of", None)
        return state

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "buckets_")
        return np.asarray([f"charhash{b}" for b in self.buckets_], dtype=object)
