"""Is North Korea or Russia named at all? The cheap question asked before the costly ones.

Two steps use it as a pre-filter: full text (fetch the page only for items that
name a country) and classification (an item that names neither country by any
alias in the analysts' keyword file cannot be about their cooperation, so the
model need not score it).

The keyword file has one reader, ``classifiers.keywords.KeywordLexicon`` (the
classifier's): the terms here are its [dprk], [russia] and [places] sections, so
the file is parsed and validated once, by one set of rules. The *matching* is a
second dialect, on purpose:

* it answers a different, cheaper question. Every polled item is asked it and
  most stop here, so it must cost a set lookup per word plus the few regexes whose
  words are all present (``_Matcher``), while ``KeywordLexicon.find`` positions
  every hit of all six sections and splits sentences, which the model's features
  need and this yes/no does not;
* it leans towards "named", because a wrong "named" costs one model call and a
  wrong "not named" loses a story: long Cyrillic terms are stemmed ("туманная"
  also finds "Туманную") and exclusions ("Russian-made") are not applied, whereas
  the classifier matches exactly what its features were trained on.

tests/test_classify_prefilter.py keeps the two honest: the pre-filter may skip only
items the model would not match; tests/test_countries.py checks the fast matcher
against one plain regex of every term.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from classifiers.errors import LexiconError
from classifiers.keywords import KeywordLexicon, bare
from monitor.errors import SettingsError


class CountryTerms(NamedTuple):
    """Lower-case names of each country from [dprk] and [russia] of the keyword file."""

    dprk: frozenset[str]
    russia: frozenset[str]


def load_country_terms(path: str | Path, *, include_weak: bool = False) -> CountryTerms:
    """The country sections of config/keywords.toml (every language).

    Weak ("~") terms are left out unless ``include_weak``: fetching pages for
    every story about a Kim is wasteful, but skipping the model for one would be
    a missed story.
    """
    lexicon = _read_keywords(Path(path))
    return CountryTerms(_terms(lexicon.dprk, include_weak), _terms(lexicon.russia, include_weak))


def load_prefilter_terms(path: str | Path) -> tuple[frozenset[str], ...]:
    """Everything that can tie a story to the two countries: both countries' terms, weak
    ones included, and the [places] section (a headline may name only Khasan and
    Tumangang). The classification pre-filter scores an item if any of these appears."""
    lexicon = _read_keywords(Path(path))
    return tuple(_terms(terms, True) for terms in (lexicon.dprk, lexicon.russia, lexicon.places))


def _read_keywords(path: Path) -> KeywordLexicon:
    try:
        return KeywordLexicon.from_toml(path)
    except LexiconError as exc:
        raise SettingsError(str(exc)) from exc


def _terms(terms: Iterable[str], include_weak: bool) -> frozenset[str]:
    """Terms without their weak marker ("~"), which only the classifier's features read."""
    return frozenset(bare(t) for t in terms if include_weak or not t.startswith("~"))


# Scripts that inflect by suffix (Korean, Cyrillic) match as substrings, as the
# keyword file says; Latin terms match whole words, "*" marks a prefix.
_NON_LATIN = re.compile(r"[^\x00-\u024f]")
_CYRILLIC_WORD = re.compile(r"[\u0400-\u04ff]+")
_MIN_STEMMED = 6
_SEPARATOR = r"[\s\-]+"
_TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "‐": "-", "‑": "-", "–": "-", "—": "-"})


def _term_regex(term: str) -> str:
    core, prefix = (term[:-1], True) if term.endswith("*") else (term, False)
    if _CYRILLIC_WORD.fullmatch(core) and len(core) >= _MIN_STEMMED:
        # Russian inflects at the end of the word: "туманная" is also "туманную".
        return re.escape(core[:-2])
    if _NON_LATIN.search(core):
        return re.escape(core)
    body = _SEPARATOR.join(re.escape(part) for part in re.split(r"[\s\-]+", core) if part)
    tail = r"\w*" if prefix else ""
    return rf"(?<!\w){body}{tail}(?!\w)"


class _Matcher:
    """A term set as a word index: only the few terms whose first word is in the text are tried.

    One regex of a hundred alternatives, each with look-arounds, is slow per news
    item, because every alternative is tried at every position. A Latin term can
    only match where its first word is a whole word of the text (a prefix term:
    where a word starts with it), and a non-Latin
    term is a plain substring, so each item needs a set lookup per word and
    the regexes of the handful of terms whose words are all there. The non-Latin terms
    share one regex, skipped outright for the (most common) all-ASCII text.
    """

    def __init__(self, terms: frozenset[str]) -> None:
        self.by_first_word: dict[str, list[tuple[frozenset[str], re.Pattern[str]]]] = {}
        self.prefixes: dict[str, re.Pattern[str]] = {}
        substrings: set[str] = set()
        for term in (t.lower() for t in terms):
            core = term.removesuffix("*")
            words = _WORD.findall(core)
            if _NON_LATIN.search(core) or not words:
                substrings.add(re.sub(r"\\(.)", r"\1", _term_regex(term)))
                continue
            pattern = re.compile(_term_regex(term), re.IGNORECASE)
            if term.endswith("*") and len(words) == 1:
                self.prefixes[words[0]] = pattern
            else:
                # Every whole word of the term must be a word of the text ("the north"
                # is not tried on every text that has "the"); a prefix term's last
                # word need only start one.
                needed = frozenset(words[:-1] if term.endswith("*") else words)
                self.by_first_word.setdefault(words[0], []).append((needed, pattern))
        self.ascii_substrings = tuple(s for s in substrings if s.isascii())
        others = sorted((s for s in substrings if not s.isascii()), key=len, reverse=True)
        self.other_substrings = re.compile("|".join(map(re.escape, others))) if others else None

    def search(self, text: str, view: _TextView) -> bool:
        if any(s in view.lower for s in self.ascii_substrings):
            return True
        if self.other_substrings is not None and not view.is_ascii \
                and self.other_substrings.search(view.lower):
            return True
        for word in view.words.intersection(self.by_first_word):
            if any(needed <= view.words and pattern.search(text)
                   for needed, pattern in self.by_first_word[word]):
                return True
        return any(
            pattern.search(text)
            for prefix, pattern in self.prefixes.items()
            if any(w.startswith(prefix) for w in view.words)
        )


_WORD = re.compile(r"\w+")


class _TextView:
    """What every term group looks at, computed once per text rather than once per group."""

    __slots__ = ("is_ascii", "lower", "words")

    def __init__(self, text: str) -> None:
        self.lower = text.lower()
        self.is_ascii = self.lower.isascii()
        self.words = set(_WORD.findall(self.lower))


@functools.lru_cache(maxsize=16)
def _matcher(terms: frozenset[str]) -> _Matcher:
    return _Matcher(terms)


def mentions_country(text: str, terms: Iterable[Iterable[str]]) -> bool:
    """True when ``text`` names North Korea or Russia (either is enough)."""
    text = text.translate(_TYPOGRAPHY)
    view = _TextView(text)
    # frozenset() of a frozenset is the same object, hash cached: no per-item work.
    return any(_matcher(frozenset(group)).search(text, view) for group in terms)
