"""Names from the analysts' keyword file: aliases and people of both countries, places.

Read with :func:`monitor.countries.load_prefilter_terms`, the reader the pre-filter
already uses (no second TOML reader). Matching mirrors the keyword file's rules
on the story stage's own word lists, so it costs a dictionary look-up per word:
Latin terms are whole word sequences ("kim jong un", with spaces, hyphens and
"'s" interchangeable as in the file), Korean and Cyrillic terms are prefixes of a
word because both languages inflect by suffix ("москв" finds "москвы").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from monitor.countries import load_prefilter_terms
from monitor.stories.gazetteer import translate
from monitor.stories.text import normalise, stem, wordlist, words

GROUPS = ("dprk", "russia", "places")
_MAX_PREFIX = 16
#: Ordinary words inside multi-word names ("Workers' Party of Korea", "Pacific Fleet"):
#: they are not the countries' names and keep their full weight.
_ORDINARY = frozenset(stem(w) for w in wordlist("""people peoples republic party workers army state
group fleet pacific forum economic eastern square news agency central regime corps storm
air kingdom hermit far east island river federation"""))


class NameMatcher:
    """Finds the keyword file's names in a list of normalised words.

    ``event_stems`` are the stems of the two countries' names (aliases, leaders,
    officials): words that every item of this domain shares. ``place_stems`` are
    the stems of the [places] names: words that tell developments apart.
    """

    def __init__(self, groups: Sequence[Iterable[str]]) -> None:
        self._latin: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self._other: dict[str, str] = {}
        self._whole: dict[str, str] = {}
        self.group_of: dict[str, str] = {}
        event: set[str] = set()
        place: set[str] = set()
        for group, terms in zip(GROUPS, groups, strict=False):
            for raw in terms:
                term = normalise(raw).lstrip("~").rstrip("*").strip()
                parts = tuple(words(term))
                if not parts:
                    continue
                key = " ".join(parts)
                self.group_of.setdefault(key, group)
                stems = {stem(p) for p in parts}
                if group == "places":
                    place.update(stems)
                else:
                    event.update(stems - _ORDINARY)
                if key.isascii() or len(parts) > 1:
                    self._latin.setdefault(parts[0], []).append((parts, key))
                elif len(key) == 1:
                    self._whole[key] = key  # a lone Hangul syllable ("러") must stand alone
                else:
                    core = key[:-2] if len(key) >= 6 and key.isalpha() and \
                        not any("\uac00" <= c <= "\ud7a3" for c in key) else key
                    self._other.setdefault(core, key)
        for entries in self._latin.values():
            entries.sort(key=lambda entry: -len(entry[0]))
        self.place_stems = frozenset(place - _ORDINARY)
        self.event_stems = frozenset(
            s for s in event - place if not s.isdigit() and not (len(s) < 2 and s.isascii()))

    @classmethod
    def from_keywords(cls, path: str | Path) -> NameMatcher:
        """Names from config/keywords.toml: [dprk], [russia] (weak ones too) and [places]."""
        return cls(load_prefilter_terms(path))

    def find(self, text_words: Sequence[str]) -> frozenset[str]:
        """The names found in ``text_words``: as the keyword file spells them, or as the
        gazetteer's English word when it knows one ("블라디보스토크" is "vladivostok"), so
        that reports in different languages share names."""
        found: set[str] = set()
        latin = self._latin
        for i, word in enumerate(text_words):
            entries = latin.get(word)
            if entries is not None:
                for parts, key in entries:
                    if tuple(text_words[i:i + len(parts)]) == parts:
                        found.add(self._canonical(key))
                        break
            elif not word.isascii():
                if word in self._whole:
                    found.add(self._canonical(word))
                    continue
                for k in range(min(len(word), _MAX_PREFIX), 0, -1):
                    key = self._other.get(word[:k])
                    if key is not None:
                        found.add(self._canonical(key))
                        break
        return frozenset(found)

    def _canonical(self, key: str) -> str:
        if key.isascii():
            return key
        english = translate(key.split()[0])
        if english is None:
            return key
        self.group_of.setdefault(english, self.group_of.get(key, ""))
        return english

    def places(self, names: Iterable[str]) -> frozenset[str]:
        """The subset of ``names`` from the [places] section."""
        return frozenset(n for n in names if self.group_of.get(n) == "places")


def default_keywords_path() -> Path:
    """config/keywords.toml of a source checkout, else the copy installed as monitor.defaults.

    The daemon passes ``settings.keywords_file`` instead; this is for tools and tests.
    """
    root = Path(__file__).resolve().parents[2]
    for candidate in (root / "config" / "keywords.toml",
                      root / "monitor" / "defaults" / "keywords.toml"):
        if candidate.is_file():
            return candidate
    return root / "config" / "keywords.toml"


def load_names(path: str | Path | None = None) -> NameMatcher:
    """The matcher for a keyword file (the daemon's ``settings.keywords_file``)."""
    return NameMatcher.from_keywords(default_keywords_path() if path is None else path)
