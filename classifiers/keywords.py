"""The analysts' keyword file, compiled into fast matchers.

Matching is case-insensitive. Latin-script terms match on word boundaries so
that "Kim" does not fire inside "Kimberley"; Korean and Cyrillic terms match as
substrings because both languages inflect by suffix (Россия/России, 북한은/북한의),
except one-syllable Korean abbreviations ("러"), which must stand alone.
A term ending in ``*`` is a prefix ("smuggl*" matches "smuggled", "smuggling").
A term starting with ``~`` is *weak*: a hint that needs context ("Kim" next to
"Putin" is Kim Jong Un; "Kim" alone may be any of millions of Koreans). Weak
mentions feed the model but never satisfy the plain keyword rule.
Spaces and hyphens inside a term are interchangeable, so "kim jong un" also
finds "Kim Jong-un". Exclusions ("Russian-made") cancel any mention they
overlap: a Russian-made rifle in a story is not a Russian actor.

This module is the only reader of the keyword file. The daemon's pre-filter
(``monitor.countries``) takes its term lists from ``KeywordLexicon`` but matches
them in its own, looser dialect: it only asks "is either country named?" of every
polled item, so it must be far cheaper than ``find`` and err towards "named"
(Cyrillic stems, no exclusions). Matching here stays exact because hits are the
model's features. ``monitor/countries.py`` gives the details; the test
``test_classify_prefilter.py`` checks that the looser dialect never hides a match.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from classifiers.errors import LexiconError

SECTIONS = ("dprk", "russia", "cooperation", "places", "exclusions", "other_states")
LANGUAGES = ("en", "ko", "ru")

_HANGUL = "\uac00-\ud7a3"
_NON_LATIN = re.compile(r"[\u0400-\u04ff\u1100-\u11ff\u3130-\u318f\uac00-\ud7af\u4e00-\u9fff]")
_TOKEN = re.compile(r"\w+")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
                         "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
                         "\u2014": " - ", "\u2212": "-", "\u00a0": " "})
# Abbreviations whose final period does not end a sentence ("U.S. says", "Mr. Kim").
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:[A-Za-z]\.)+$|(?:^|\s)(?:mr|mrs|ms|dr|gen|col|lt|sgt|st|no|vs|jan|feb|mar|apr|"
    r"jun|jul|aug|sep|sept|oct|nov|dec|gov|sen|rep|adm|maj|capt|corp|inc|ltd)\.$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+")
# A weak surname followed by a given name is someone else: "Kim Keon-hee", "Kim Dae Jung".
_GIVEN_NAME = re.compile(
    r"\s+(?:[A-Z][a-z]+-[a-z]+|(?:Dae|Young|Yong|Min|Jae|Moon|Hyun|Sung|Seung|Keon|Kyung|Ji|"
    r"Eun|Hye|Soo|Jin|Kwan|Tae|Hee|Sun|Joo|Ki|Hong|Chul|Woo|Dong|Hyo|Yun|Ha|Na|Bo|Se)\b)")


def default_keywords_path() -> Path:
    """config/keywords.toml of a source checkout, or the copy installed as monitor.defaults.

    Looked up by path (not import) because this package must never import ``monitor``.
    """
    root = Path(__file__).resolve().parent.parent
    for candidate in (root / "config" / "keywords.toml",
                      root / "monitor" / "defaults" / "keywords.toml"):
        if candidate.is_file():
            return candidate
    return root / "config" / "keywords.toml"


def normalise_text(text: str) -> str:
    """NFKC plus straight quotes and ASCII hyphens, so feeds' typography never hides a name."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_QUOTES).split())


@dataclass(frozen=True, slots=True)
class Hit:
    """One matched term: the lexicon entry, what the text said, and where."""

    term: str
    surface: str
    start: int
    end: int
    first_token: int
    last_token: int
    weak: bool = False


@dataclass(frozen=True, slots=True)
class Mentions:
    """Everything the lexicon found in one text, with positions for proximity features.

    ``dprk`` and ``russia`` include weak hits (``Hit.weak``); ``both`` counts strong
    ones only and is exactly the keyword rule.
    """

    text: str
    dprk: tuple[Hit, ...]
    russia: tuple[Hit, ...]
    cooperation: tuple[Hit, ...]
    places: tuple[Hit, ...]
    other_states: tuple[Hit, ...]
    exclusions: tuple[Hit, ...]
    sentence_starts: tuple[int, ...] = field(default=(0,))

    @property
    def n_tokens(self) -> int:
        return len(_TOKEN.findall(self.text))

    @property
    def both(self) -> bool:
        return any(not h.weak for h in self.dprk) and any(not h.weak for h in self.russia)

    @property
    def both_any(self) -> bool:
        return bool(self.dprk) and bool(self.russia)

    @property
    def title_end(self) -> int:
        """Character offset where the first sentence (normally the headline) ends."""
        return self.sentence_starts[1] if len(self.sentence_starts) > 1 else len(self.text)

    def sentence_of(self, hit: Hit) -> int:
        return bisect_left(self.sentence_starts, hit.start + 1) - 1

    @staticmethod
    def surfaces(hits: Iterable[Hit]) -> tuple[str, ...]:
        """Distinct surface forms in order of appearance (case-insensitively distinct)."""
        seen: dict[str, str] = {}
        for hit in hits:
            seen.setdefault(hit.surface.lower(), hit.surface)
        return tuple(seen.values())

    def distinct_terms(self, section: str) -> tuple[str, ...]:
        hits: tuple[Hit, ...] = getattr(self, section)
        return tuple(dict.fromkeys(h.term for h in hits))


# -- regex construction -------------------------------------------------------------------
_SEPARATOR = r"[\s\-]+"
_SEPARATOR_AFTER_DOT = r"[\s\-]*"
_WORD_END = r"(?!\w)"
_PREFIX_END = r"\w*"
_NOT_HANGUL_BEFORE = f"(?<![{_HANGUL}])"
_NOT_HANGUL_AFTER = f"(?![{_HANGUL}])"
# Trie children that must be tried last, so that the regex prefers the longest term:
# "russian-made" (an exclusion) has to win over "russian" followed by a hyphen.
_LATE = {_PREFIX_END: 1, _WORD_END: 2, _NOT_HANGUL_AFTER: 2, "": 3}


def bare(term: str) -> str:
    """A term without its weak marker, lower-cased."""
    return term.strip().lstrip("~").strip().lower()


def _is_non_latin(term: str) -> bool:
    return bool(_NON_LATIN.search(term))


def _term_units(term: str) -> list[str]:
    """A term as a list of regex pieces (one per character, separator or assertion)."""
    body = bare(term)
    prefix = body.endswith("*")
    body = body.rstrip("*")
    parts = [p for p in re.split(r"[\s\-]+", body) if p]
    units: list[str] = []
    lone_syllable = len(body) == 1 and re.match(f"[{_HANGUL}]", body) is not None
    if lone_syllable:
        units.append(_NOT_HANGUL_BEFORE)
    for index, part in enumerate(parts):
        if index:
            # "n. korea" should also find "N.Korea"; otherwise words need a separator.
            units.append(_SEPARATOR_AFTER_DOT if parts[index - 1].endswith(".") else _SEPARATOR)
        units.extend(re.escape(char) for char in part)
    if lone_syllable:
        units.append(_NOT_HANGUL_AFTER)
    elif not _is_non_latin(body):
        if prefix:
            units.append(_PREFIX_END)
        elif re.search(r"\w$", body):
            units.append(_WORD_END)
    return units


def _term_pattern(term: str) -> str:
    """A standalone regex for one term (used to tell which term a match came from)."""
    body = "".join(_term_units(term))
    return body if _is_non_latin(term) else r"(?<!\w)" + body


def _trie_pattern(terms: Iterable[str]) -> str:
    """One alternation shaped as a trie.

    Python's ``re`` tries alternatives one by one, so a flat list of hundreds of
    terms is slow per text; the trie shares prefixes and rejects a position after
    one character comparison.
    """
    trie: dict[str, dict] = {}
    for term in terms:
        node = trie
        for unit in _term_units(term):
            node = node.setdefault(unit, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        keys = sorted(node, key=lambda k: _LATE.get(k, 0))
        alternatives = [key + emit(node[key]) for key in keys if key != ""]
        terminal = "" in node
        if not alternatives:
            return ""
        if len(alternatives) == 1 and not terminal:
            return alternatives[0]
        return "(?:" + "|".join(alternatives) + ")" + ("?" if terminal else "")

    return emit(trie)


def _compile(terms: Iterable[str], *, ignore_case: bool = True) -> re.Pattern[str] | None:
    unique = sorted({bare(t) for t in terms if bare(t).strip("*")})
    if not unique:
        return None
    latin = [t for t in unique if not _is_non_latin(t)]
    other = [t for t in unique if _is_non_latin(t)]
    branches = []
    if latin:
        branches.append(r"(?<!\w)" + _trie_pattern(latin))
    if other:
        branches.append(_trie_pattern(other))
    return re.compile("|".join(branches), re.IGNORECASE if ignore_case else 0)


@dataclass(frozen=True)
class KeywordLexicon:
    """The six keyword sections (languages merged), immutable once loaded."""

    dprk: tuple[str, ...]
    russia: tuple[str, ...]
    cooperation: tuple[str, ...]
    places: tuple[str, ...]
    exclusions: tuple[str, ...]
    other_states: tuple[str, ...]

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], *, source: str = "keywords"
    ) -> KeywordLexicon:
        """Validate a parsed keyword file: every section present, lists of strings only."""
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise LexiconError(f"{source}: unknown section(s) {', '.join(unknown)}; "
                               f"expected {', '.join(SECTIONS)}")
        sections: dict[str, tuple[str, ...]] = {}
        for name in SECTIONS:
            value = data.get(name)
            if value is None:
                raise LexiconError(f"{source}: missing section [{name}]")
            sections[name] = _section_terms(value, f"{source} [{name}]")
        for name in ("dprk", "russia"):
            if not any(not t.startswith("~") for t in sections[name]):
                raise LexiconError(f"{source}: section [{name}] must name at least one "
                                   "strong (not ~weak) term")
        return cls(**sections)

    @classmethod
    def from_toml(cls, path: Path | str | None = None) -> KeywordLexicon:
        path = Path(path) if path is not None else default_keywords_path()
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise LexiconError(f"keyword file not found: {path}") from exc
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise LexiconError(f"cannot read keyword file {path}: {exc}") from exc
        return cls.from_mapping(data, source=str(path))

    def to_dict(self) -> dict[str, list[str]]:
        """Plain lists, for embedding in a model (so a model never depends on the file)."""
        return {name: list(getattr(self, name)) for name in SECTIONS}

    # -- matching ---------------------------------------------------------------------------
    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        """All sections in one trie regex: one pass per text, longest term wins.

        Longest-wins is also how exclusions work: "Russian-made" is matched as the
        exclusion and so can never be read as the Russia mention "Russian".
        """
        return _compile(t for name in SECTIONS for t in getattr(self, name))

    @cached_property
    def _lower_pattern(self) -> re.Pattern[str] | None:
        """The same regex without IGNORECASE, for already lower-cased text (twice as fast)."""
        return _compile((t for name in SECTIONS for t in getattr(self, name)), ignore_case=False)

    @cached_property
    def _owners(self) -> dict[str, tuple[tuple[str, bool], ...]]:
        """bare term → ((section, weak), ...)."""
        owners: dict[str, list[tuple[str, bool]]] = {}
        for name in SECTIONS:
            for term in getattr(self, name):
                owners.setdefault(bare(term), []).append((name, term.startswith("~")))
        return {term: tuple(found) for term, found in owners.items()}

    @cached_property
    def _term_lookup(self) -> list[tuple[re.Pattern[str], str]]:
        terms = sorted(self._owners, key=lambda t: (-len(t), t))
        return [(re.compile(_term_pattern(t), re.IGNORECASE), t) for t in terms]

    @cached_property
    def _term_cache(self) -> dict[str, tuple[str, tuple[tuple[str, bool], ...], bool]]:
        return {}

    def _resolve(self, surface: str) -> tuple[str, tuple[tuple[str, bool], ...], bool]:
        """(lexicon term, its sections, non-Latin?) for a surface form; memoised per lexicon."""
        key = surface.lower()
        cached = self._term_cache.get(key)
        if cached is not None:
            return cached
        term = key
        for pattern, candidate in self._term_lookup:
            if pattern.fullmatch(surface):
                term = candidate
                break
        result = (term, self._owners.get(term, ()), _is_non_latin(term))
        if len(self._term_cache) < 50_000:
            self._term_cache[key] = result
        return result

    def find(self, text: str, *, normalised: bool = False) -> Mentions:
        """All mentions in ``text``; pass ``normalised=True`` if it went through normalise_text."""
        if not normalised:
            text = normalise_text(text)
        found: dict[str, list[Hit]] = {name: [] for name in SECTIONS}
        starts: list[int] = []
        lowered = text.lower()
        # Lower-casing keeps offsets for almost all text; for the rare exception
        # ("İ" becomes two characters) the case-insensitive regex runs instead.
        if len(lowered) == len(text):
            pattern, haystack = self._lower_pattern, lowered
        else:
            pattern, haystack = self._pattern, text
        if pattern is not None:
            for match in pattern.finditer(haystack):
                if not starts:
                    starts = [m.start() for m in _TOKEN.finditer(text)]
                start, end = match.span()
                term, owners, non_latin = self._resolve(text[start:end])
                if non_latin:
                    # Substring stems ("Москв") are shown as the whole inflected word.
                    while end < len(text) and text[end].isalnum():
                        end += 1
                first = bisect_left(starts, start)
                last = max(first, bisect_left(starts, end) - 1)
                for name, weak in owners:
                    if weak and _GIVEN_NAME.match(text, end):
                        continue
                    found[name].append(Hit(term, text[start:end], start, end, first, last, weak))
        return Mentions(
            text=text,
            dprk=tuple(found["dprk"]),
            russia=tuple(found["russia"]),
            cooperation=tuple(found["cooperation"]),
            places=tuple(found["places"]),
            other_states=tuple(found["other_states"]),
            exclusions=tuple(found["exclusions"]),
            sentence_starts=sentence_starts(text),
        )

    def mentions_both(self, text: str) -> bool:
        """The keyword-rule baseline: a strong DPRK alias AND a strong Russia alias."""
        return self.find(text).both


def sentence_starts(text: str) -> tuple[int, ...]:
    """Character offsets where sentences begin (a cheap splitter that respects "U.S.")."""
    starts = [0]
    for match in _SENTENCE_END.finditer(text):
        before = text[max(0, match.start() - 12):match.start() + 1]
        if text[match.start()] == "." and _ABBREVIATION.search(before):
            continue
        if match.end() < len(text):
            starts.append(match.end())
    return tuple(starts)


def _section_terms(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, Mapping):
        raise LexiconError(f"{where}: expected a table with keys {', '.join(LANGUAGES)}")
    unknown = sorted(set(value) - set(LANGUAGES))
    if unknown:
        raise LexiconError(f"{where}: unknown language key(s) {', '.join(unknown)}; "
                           f"expected {', '.join(LANGUAGES)}")
    terms: list[str] = []
    for language in LANGUAGES:
        items = value.get(language, [])
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise LexiconError(f"{where}.{language}: expected a list of strings")
        for item in items:
            term = item.strip().lower()
            if bare(term).strip("*"):
                terms.append(("~" + bare(term)) if term.startswith("~") else term)
    return tuple(dict.fromkeys(terms))
