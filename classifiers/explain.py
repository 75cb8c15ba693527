"""Explanations an analyst can act on: readable evidence terms and the clause that links.

Two things turn a score into something an analyst can check in a second:

* **Evidence terms.** The model's strongest features are shown only when they read as
  evidence: content words and the countries' aliases. Function words ("в", "о", "the",
  "에서"), single characters, numbers and punctuation carry weight inside the model (they
  encode structure) but say nothing to a person, so they are never shown. The model's
  actor placeholders ("zzdprk") are shown as the word the text actually used
  ("Pyongyang", "Шойгу") or, failing that, the country's name.
* **The "why" clause.** The sentence (or, in a long sentence, the clause) that names a
  North Korea term and a Russia term together, quoted from the item, so the analyst sees
  the link itself rather than a list of words. Sentences end at ``. ! ? 。`` (and at a
  Korean ``다.``), which covers English, Korean and Russian news style.

The model's features are unchanged: this module only decides what is shown. Per-model
work (parsing and filtering every feature name) happens once, in ``feature_label``;
per-item work (``render``, ``why_clause``) runs only for the few features and the one
text being explained.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from classifiers.features import DPRK_TOKEN, NUMBER_TOKEN, OTHER_TOKEN, RUSSIA_TOKEN
from classifiers.keywords import Hit, Mentions, sentence_starts
from classifiers.text import trim_words

__all__ = [
    "STOPWORDS",
    "WHY_MAX",
    "FeatureLabel",
    "display_word",
    "feature_label",
    "is_content_word",
    "render",
    "sentence_spans",
    "trim_words",
    "why_clause",
]

WHY_MAX = 200
"""Characters of the quoted clause: one or two lines in Slack."""

#: Frequent English words of news copy that are not evidence of anything.
_ENGLISH_EXTRA = frozenset({
    "says", "said", "say", "saying", "told", "tells", "tell", "according", "report", "reports",
    "reported", "reportedly", "new", "news", "amid", "turns", "turn", "turned", "set", "sets",
    "just", "like", "week", "weeks", "month", "months", "year", "years", "day", "days",
    "today", "yesterday", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "mr", "mrs", "ms", "dr", "st", "vs", "via", "per", "also", "would",
    "could", "may", "might", "will", "shall", "should", "can", "did", "does", "doing", "done",
    "get", "gets", "got", "make", "makes", "made", "takes", "take", "took", "s", "t", "ll", "ve",
    "re", "don", "isn", "wasn", "let", "lets", "way", "ways", "thing", "things", "people",
    "time", "times", "first", "last", "latest", "update", "updates", "live", "watch", "video",
    "photos", "opinion", "analysis", "explainer", "exclusive", "breaking", "officials",
    "official", "source", "sources", "statement", "media", "outlet", "agency",
})
#: Korean function words, particles and reporting verbs that stand alone as tokens.
_KOREAN = frozenset({
    "이", "그", "저", "것", "수", "등", "및", "또", "또한", "더", "중", "위해", "위한", "대한",
    "대해", "대해서", "통해", "관련", "관련해", "따르면", "따라", "의해", "있다", "있는", "있어",
    "없다", "했다", "한다", "하는", "하고", "하며", "했으며", "됐다", "된다", "되는", "이다",
    "였다", "밝혔다", "전했다", "말했다", "보도했다", "주장했다", "설명했다", "강조했다",
    "덧붙였다", "알려졌다", "지난", "이번", "오는", "올해", "지난해", "이날", "당시", "이후",
    "현재", "가운데", "가장", "모두", "다시", "함께", "그리고", "하지만", "그러나", "또는",
    "이라고", "라고", "고", "며", "면서", "것으로", "것이다", "것을", "것은", "것이", "기자",
    "연합뉴스", "뉴스", "특파원", "오전", "오후", "년", "월", "일", "명", "개", "측",
})
#: Korean particles stripped from the end of a word when it is shown ("포탄을" → "포탄").
_JOSA = ("에서는", "으로는", "에서", "에게", "으로", "까지", "부터", "과의", "와의", "에는",
         "은", "는", "이", "가", "을", "를", "의", "에", "와", "과", "도", "로", "만")
#: Russian prepositions, conjunctions, pronouns and reporting words.
_RUSSIAN = frozenset({
    "в", "во", "на", "и", "с", "со", "к", "ко", "по", "о", "об", "обо", "от", "из", "за", "для",
    "до", "при", "у", "под", "над", "через", "без", "перед", "между", "после", "против",
    "около", "вокруг", "ради", "что", "чтобы", "как", "а", "но", "же", "ли", "не", "ни", "или",
    "либо", "также", "тоже", "так", "уже", "еще", "ещё", "бы", "то", "это", "этот", "эта",
    "эти", "этого", "этом", "этой", "тот", "та", "те", "его", "ее", "её", "их", "он", "она",
    "оно", "они", "мы", "вы", "я", "который", "которая", "которое", "которые", "которых",
    "был", "была", "было", "были", "будет", "будут", "есть", "быть", "все", "всё", "весь",
    "свой", "своей", "своих", "сообщил", "сообщила", "сообщили", "сообщает", "заявил",
    "заявила", "заявили", "сказал", "сказала", "по словам", "словам", "года", "году", "год",
    "лет", "г", "гг", "тыс", "млн", "млрд", "агентство", "риа", "тасс", "новости",
})
STOPWORDS = frozenset(ENGLISH_STOP_WORDS | _ENGLISH_EXTRA | _KOREAN | set(_JOSA) | _RUSSIAN)
"""Words never shown as evidence (they still count in the model)."""

_PLACEHOLDERS = {DPRK_TOKEN: "dprk", RUSSIA_TOKEN: "russia", OTHER_TOKEN: "other"}
_CANONICAL = {"dprk": "North Korea", "russia": "Russia", "other": "another state"}
_SIDES = {"d_": "dprk", "r_": "russia", "b_": "between"}
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")
_HANGUL_WORD = re.compile(r"^[\uac00-\ud7a3]+$")


@dataclass(frozen=True, slots=True)
class FeatureLabel:
    """A model feature worth showing: its block, the actor it sits by, and its words.

    ``words`` keep the model's placeholders ("zzdprk"); ``render`` puts the text's own
    names in their place, so one label per column serves every item.
    """

    block: str
    side: str
    words: tuple[str, ...]


def _base_word(token: str) -> str:
    """A Korean word without its trailing particle, if what is left is still a word."""
    if _HANGUL_WORD.match(token):
        for josa in _JOSA:
            if token.endswith(josa) and len(token) - len(josa) >= 2:
                return token[: -len(josa)]
    return token


def display_word(word: str) -> str:
    """How a word of the text is shown: Korean particles dropped, outer punctuation trimmed."""
    return _base_word(word.strip(" .,;:!?\"'()[]«»“”"))


def is_content_word(token: str) -> bool:
    """Whether a (lower-case) token reads as evidence: a content word, not a function word.

    Single characters, numbers (and the model's number token), tokens without letters and
    stop words of English, Korean and Russian are not; a Korean word is judged without
    its particle ("것을" is "것", a function word).
    """
    if token in _PLACEHOLDERS:
        return True
    if NUMBER_TOKEN in token or _DIGIT.search(token) or not _LETTER.search(token):
        return False
    if len(token) < 2 or token in STOPWORDS:
        return False
    base = _base_word(token)
    return len(base) >= 2 and base not in STOPWORDS


def feature_label(block: str, name: str) -> FeatureLabel | None:
    """The label of one model column, or None when it would not read as evidence.

    Rule features always read (they are named structure: "rule:proximity"); word
    n-grams only if every word is a content word or an actor; context words only if
    the word is a content word or the other actor (a DPRK mention next to another
    DPRK mention says nothing).
    """
    if block == "rules":
        return FeatureLabel("rules", "", (name,))
    if block == "word":
        words = tuple(name.split(" "))
        if not words or not all(is_content_word(w) for w in words):
            return None
        return FeatureLabel("word", "", words)
    if block == "context":
        side = _SIDES.get(name[:2])
        word = name[2:]
        if side is None or " " in word or not is_content_word(word):
            return None
        if _PLACEHOLDERS.get(word) == side:
            return None
        return FeatureLabel("context", side, (word,))
    return None


def _hits(m: Mentions, side: str) -> tuple[Hit, ...]:
    if side == "dprk":
        return m.dprk
    if side == "russia":
        return m.russia
    return m.other_states


def _surface(m: Mentions, side: str) -> str:
    """The word the text used for an actor (its first strong mention), or the country."""
    hits = _hits(m, side)
    chosen = next((h for h in hits if not h.weak), hits[0] if hits else None)
    if chosen is None:
        return _CANONICAL[side]
    return display_word(chosen.surface) or _CANONICAL[side]


def _word(m: Mentions, token: str) -> str:
    side = _PLACEHOLDERS.get(token)
    return _surface(m, side) if side is not None else display_word(token)


def _closest_pair(m: Mentions) -> tuple[Hit, Hit] | None:
    """The DPRK and Russia mentions closest together, in reading order."""
    pairs = [(d, r) for d in m.dprk for r in m.russia]
    if not pairs:
        return None
    d, r = min(pairs, key=lambda p: (abs(p[0].first_token - p[1].first_token), p[0].start))
    return (d, r) if d.start <= r.start else (r, d)


def render(label: FeatureLabel, m: Mentions) -> str:
    """A label as the analyst reads it, with this item's own names for the actors.

    "zzdprk troops" → "North Korean troops"; the context word "troops" beside the DPRK
    mention → "Pyongyang~troops"; a word between the two actors → "Moscow…arms…Pyongyang".
    """
    if label.block == "rules":
        return f"rule:{label.words[0]}"
    shown: list[str] = []
    for token in label.words:
        word = _word(m, token)
        if not shown or shown[-1] != word:  # one name for both actors ("북러") is shown once
            shown.append(word)
    words = " ".join(shown)
    if label.block == "word":
        return words
    if label.side == "between":
        pair = _closest_pair(m)
        if pair is None:
            return words
        first, second = (display_word(h.surface) for h in pair)
        return f"{first}…{words}…{second}"
    return f"{_surface(m, label.side)}~{words}"


# -- the "why" clause ---------------------------------------------------------------------
_EXTRA_ENDS = re.compile(r"[。！？]|(?<=다)\.(?=\S)")
_CLAUSE_BREAK = re.compile(r";|:\s|\s-\s|,\s|，")


def sentence_spans(text: str, keep: Sequence[Hit] = ()) -> list[tuple[int, int]]:
    """(start, end) of each sentence, trailing spaces excluded.

    The abbreviation-aware splitter of ``keywords`` (which keeps "U.S." whole), plus the
    ends it does not see: CJK full stops and a Korean "다." with no space after it. No
    sentence ends inside a mention in ``keep`` ("Russia-N. Korea trade" is one sentence).
    """
    starts = set(sentence_starts(text))
    starts.update(m.end() for m in _EXTRA_ENDS.finditer(text) if m.end() < len(text))
    ordered = sorted(s for s in starts if not any(h.start < s < h.end for h in keep))
    spans = []
    for start, end in zip(ordered, [*ordered[1:], len(text)], strict=True):
        while end > start and text[end - 1].isspace():
            end -= 1
        while start < end and text[start].isspace():
            start += 1
        if end > start:
            spans.append((start, end))
    return spans


def _inside(hit: Hit, span: tuple[int, int]) -> bool:
    return span[0] <= hit.start and hit.end <= span[1]


def _candidate(m: Mentions, span: tuple[int, int], index: int,
               title_end: int) -> tuple[tuple[int, ...], tuple[Hit, Hit]] | None:
    """(rank, closest pair) of a sentence that names both countries, else None."""
    dprk = [h for h in m.dprk if _inside(h, span)]
    russia = [h for h in m.russia if _inside(h, span)]
    if not dprk or not russia:
        return None
    d, r = min(((d, r) for d in dprk for r in russia),
               key=lambda p: (abs(p[0].first_token - p[1].first_token), p[0].start))
    coop = any(_inside(h, span) for h in m.cooperation)
    strong = not d.weak and not r.weak
    body = span[0] >= title_end
    gap = abs(d.first_token - r.first_token)
    # Preference, most important first: a relation word in the sentence; a sentence of
    # the description (the headline is on screen already); two unambiguous names; the
    # two names close together; the earlier sentence.
    rank = (int(coop), int(body), int(strong), -gap, -index)
    return rank, ((d, r) if d.start <= r.start else (r, d))


def _narrow(m: Mentions, span: tuple[int, int], pair: tuple[Hit, Hit], limit: int) -> str:
    """The part of a long sentence that links the pair: whole clauses, then a word cut."""
    text = m.text
    lo, hi = pair[0].start, pair[1].end
    coop = [h for h in m.cooperation if _inside(h, span)]
    if coop and not any(lo <= h.start < hi for h in coop):
        nearest = min(coop, key=lambda h: min(abs(h.start - hi), abs(h.end - lo)))
        lo, hi = min(lo, nearest.start), max(hi, nearest.end)
    start, end = span
    for brk in _CLAUSE_BREAK.finditer(text, span[0], span[1]):
        if brk.end() <= lo:
            start = brk.end()
        elif brk.start() >= hi:
            end = brk.start()
            break
    lead = "…" if start > span[0] else ""
    clause = text[start:end].strip()
    if end < span[1]:
        clause = clause.rstrip(" ,;:") + "…"
    if len(lead) + len(clause) <= limit:
        return lead + clause
    if hi - start <= limit - 1 - len(lead):
        return lead + trim_words(text[start:end].strip(), limit - len(lead))
    # The link sits deep in a long clause: start a little before it, on a word.
    room = max(0, (limit - 2 - (hi - lo)) // 2)
    begin = text.rfind(" ", start, max(start, lo - room)) + 1 or lo
    begin = max(begin, start)
    return "…" + trim_words(text[begin:end].strip(), limit - 1)


def why_clause(m: Mentions, limit: int = WHY_MAX) -> str | None:
    """The sentence (or clause of a long one) that links North Korea and Russia, if any.

    A sentence links them when it names both: a DPRK term and a Russia term ("Shoigu
    arrived in Pyongyang"), a Kim–Putin pair, or one term naming both ("북러"). Among
    such sentences the one with a cooperation word wins, then one from the description
    over the headline, then unambiguous names, closeness and order (``_candidate``).
    Returns at most ``limit`` characters, cut on a word boundary with an ellipsis, or
    None when no sentence names both countries.
    """
    if not m.dprk or not m.russia:
        return None
    best: tuple[tuple[int, ...], tuple[int, int], tuple[Hit, Hit]] | None = None
    for index, span in enumerate(sentence_spans(m.text, (*m.dprk, *m.russia))):
        found = _candidate(m, span, index, m.title_end)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], span, found[1])
    if best is None:
        return None
    _, span, pair = best
    sentence = m.text[span[0]:span[1]]
    if len(sentence) <= limit:
        return sentence
    return _narrow(m, span, pair, limit)
