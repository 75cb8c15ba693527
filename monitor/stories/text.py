"""Text to comparable units: normalised words, light stems, shingles, generic headlines.

Works on any script: words are runs of Unicode word characters, so Hangul and
Cyrillic tokenise as well as Latin. Stemming is deliberately crude and cheap
(a few suffix rules per language): it only has to make "crosses"/"crossed"/
"crossing" or "саммит"/"саммита" or "김정은"/"김정은이" the same unit, and the
same rule is applied to both sides of every comparison.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Sequence

from monitor.stories.gazetteer import translate

_TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2010": "-",
                             "\u2011": "-", "\u2013": "-", "\u2014": " ", "\u00a0": " ",
                             "\u00b7": " "})
_WORD = re.compile(r"\w+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def wordlist(text: str) -> list[str]:
    """Whitespace-separated words of a literal: keeps long word lists readable."""
    return text.split()


STOPWORDS = frozenset(wordlist("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself just
me more most my no nor not now of off on once only or other our out over own same she should
so some such than that the their them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your
said says say saying told tells according reported reports report reporting news new latest
update updated updates week weeks day days today yesterday tomorrow year years month months
monday tuesday wednesday thursday friday saturday sunday amid via while since per two three
one first last another many much may might must among toward towards upon within without
mr ms mrs s t ap afp reuters yonhap tass kcna
и в во не что он на я с со как а то все она так его но да к у же вы за бы по только ее
было вот от меня еще нет о из ему когда даже ли если уже или ни быть был него до вас там
потом себя ей может они тут где есть для мы их чем была сам без под будет кто этот того
этого какой при об после над через эти нас про всего них также заявил заявили сообщил
сообщили сообщает году года время это этом которые который которая
명 발 일 월 년 만 천 및 등 이 그 저 것 수 있다 했다 밝혔다 말했다
지난 이번 위해 대해 통해 따르면 있는 한 또
"""))

#: Korean particles and endings stripped from the end of a word (longest first).
_KO_SUFFIXES = tuple(sorted(wordlist("""
은 는 이 가 을 를 의 에 와 과 도 로 으로 에서 에게 까지 부터 보다 처럼 에서는 으로는
이다 이라고 라고 하고 했다 한다 하는 하여 해 과의 와의 에도 에는 으로의
"""), key=len, reverse=True))
_RU_ENDINGS = set("аеиоуыэюяйь")
_EN_KEEP_S = ("ss", "us", "is", "ous")

#: Headlines that name a format, not a development. An item whose headline is made
#: of these words alone is judged on its summary only.
GENERIC_TITLE_WORDS = frozenset(wordlist("""
live latest update updates breaking news world top stories story brief briefs briefing
headlines digest roundup round up wrap wrapup at a glance what we know so far the in of
on day today morning evening night daily weekly edition newsletter bulletin minute blog
key developments main events recap summary and for this week's week explainer analysis
opinion podcast video watch photos pictures gallery more follow as it happens here s
новости главное коротко онлайн трансляция хроника сводка дня за день обзор
속보 종합 주요 뉴스 오늘의 브리핑 라이브 실시간
"""))


_THOUSANDS = re.compile(r"(?<=\d)[,.](?=\d{3}\b)")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")
_US = re.compile(r"\bu\.\s?s\.(?:a\.)?")


def normalise(text: str) -> str:
    """NFKC, straight quotes, lower case, single spaces: feed typography must not matter.

    Also "1,500" is "1500", digits stand apart from Hangul and Cyrillic ("1500명"), and
    "U.S." is one word ("usa"), so that numbers and the United States survive tokenising.
    """
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY).lower()
    if "," in text or "." in text:
        text = _THOUSANDS.sub("", text)
    if not text.isascii():  # "1500명", "2-й": Latin words with digits ("kn23") stay whole
        text = _DIGIT_LETTER.sub(" ", text)
    if "u." in text:
        text = _US.sub("usa", text)
    return " ".join(text.split())


#: ASCII punctuation → space: on ASCII text, ``translate`` + ``split`` gives exactly the
#: runs of ``\w`` (letters, digits, "_") at half the cost of the regex.
_ASCII_NON_WORD = str.maketrans(
    dict.fromkeys((c for c in map(chr, range(128)) if not (c.isalnum() or c == "_")), " "))


def words(text: str) -> list[str]:
    """Unicode words of normalised text, possessive "'s" dropped ("kim's" is "kim")."""
    text = text.replace("'s ", " ").replace("'", "")
    if text.isascii():
        return text.translate(_ASCII_NON_WORD).split()
    return _WORD.findall(text)


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A cheap stem: English suffix rules, Russian endings cut, Korean particles dropped.

    Memoised: news vocabulary is Zipfian, so almost every call is a cache hit.
    """
    if word.isascii():
        if len(word) > 4 and word.endswith("ies"):
            word = word[:-3] + "y"
        elif len(word) > 3 and word.endswith("s") and not word.endswith(_EN_KEEP_S):
            word = word[:-2] if word.endswith(("ses", "xes", "zes", "ches", "shes")) \
                else word[:-1]
        if len(word) > 5 and word.endswith("ing"):
            word = word[:-3]
        elif len(word) > 4 and word.endswith("ed"):
            word = word[:-2]
        if len(word) > 4 and word.endswith("e"):
            word = word[:-1]
        return word
    if _CYRILLIC.search(word):
        cut = 0
        while cut < 3 and len(word) - cut > 4 and word[-1 - cut] in _RU_ENDINGS:
            cut += 1
        return word[: len(word) - cut][:6]
    if _HANGUL.search(word):
        for suffix in _KO_SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 2:
                return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=1 << 16)
def units(word: str) -> tuple[str, ...]:
    """What one word contributes to comparisons: its stem, or the stems of its English
    equivalent from the gazetteer (so "블라디보스토크에" and "Владивостока" are "vladivostok")."""
    if word in STOPWORDS or (len(word) < 2 and word.isascii()):
        return ()
    english = translate(word)
    if english is not None:
        return tuple(s for w in english.split() for s in (stem(w),) if s not in STOPWORDS)
    stemmed = stem(word)
    return () if stemmed in STOPWORDS else (stemmed,)


#: word → units, unbounded but for ``_UNITS_MAX`` entries: a plain dict look-up is a
#: third of an ``lru_cache`` call, and this runs for every word of every item.
_UNITS: dict[str, tuple[str, ...]] = {}
_UNITS_MAX = 1 << 17


def content_words(text_words: Sequence[str]) -> list[str]:
    """Stems of the words that carry content: no stop words, no one-letter Latin words."""
    cache = _UNITS
    out: list[str] = []
    for word in text_words:
        found = cache.get(word)
        if found is None:
            found = units(word)
            if len(cache) >= _UNITS_MAX:
                cache.clear()
            cache[word] = found
        if found:
            out += found
    return out


def is_generic_title(title_words: Sequence[str], content: Sequence[str]) -> bool:
    """True for "Live updates", "World news in brief", one-word and empty headlines.

    ``title_words`` are the headline's words, ``content`` its content stems. Such
    a headline says nothing about which development the item reports, so two items
    may never be joined because of it.
    """
    if len(content) <= 1:
        return True
    return all(w in GENERIC_TITLE_WORDS or w.isdigit() for w in title_words)


def shingles(tokens: Sequence[str], size: int) -> list[bytes]:
    """Distinct word ``size``-grams as UTF-8 bytes (what MinHash hashes).

    A text shorter than ``size`` words gives one shingle of all its words.
    """
    if not tokens:
        return []
    if len(tokens) <= size:
        return [" ".join(tokens).encode()]
    if size == 2:  # the default: pairs without slicing
        return [g.encode() for g in set(map(" ".join, itertools.pairwise(tokens)))]
    return list({" ".join(tokens[i:i + size]).encode()
                 for i in range(len(tokens) - size + 1)})
