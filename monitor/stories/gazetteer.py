"""A small bilingual gazetteer: Korean and Russian forms (and a few English synonyms) of the
names and nouns that recur in North Korea–Russia news, mapped to one English word.

Why: a quarter of the reports come in Korean or Russian, and the same development
told in three languages must become one story. The keyword file lists each
language's names but does not say which Korean name is which English one; this table
does, for the words that tell developments apart (places, people, weapons, actions).
Matching is by prefix of the word, because both languages inflect by suffix
("블라디보스토크에", "Владивостока"); the longest listed prefix wins. English synonyms
("spaceport" → cosmodrome) are matched on the whole word.

The table itself is data, in ``gazetteer.toml`` next to this module, so that analysts
can extend it without touching code; it is read once, at import (the stemmer's caches
depend on it). Its format is described at the top of that file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

#: The shipped table (``tests/test_stories_gazetteer.py`` checks it loads and is sane).
DEFAULT_PATH = Path(__file__).with_name("gazetteer.toml")


class GazetteerError(ValueError):
    """The gazetteer file is malformed: say where, rather than mis-cluster silently."""


def parse(table: Mapping[str, object], source: str = "gazetteer") -> tuple[dict[str, str],
                                                                          dict[str, str]]:
    """(prefixes, synonyms) from a parsed table: non-Latin forms are word prefixes, Latin
    forms whole-word English synonyms; a form under two keys belongs to the later one."""
    prefixes: dict[str, str] = {}
    synonyms: dict[str, str] = {}
    for canonical, forms in table.items():
        english = " ".join(str(canonical).lower().split())
        if not english or not isinstance(forms, list) \
                or not all(isinstance(f, str) and f.strip() for f in forms):
            raise GazetteerError(f"{source}: {canonical!r} must be a list of non-empty strings")
        for form in forms:
            form = form.strip().lower()
            if form.isascii():
                synonyms[form] = english
            else:
                prefixes[form.rstrip("-")] = english
    return prefixes, synonyms


def load(path: str | Path = DEFAULT_PATH) -> tuple[dict[str, str], dict[str, str]]:
    """(prefixes, synonyms) of a gazetteer TOML file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GazetteerError(f"{path}: {exc}") from exc
    return parse(table, str(path))


PREFIXES, SYNONYMS = load()
_MAX = max((len(p) for p in PREFIXES), default=0)


def translate(word: str) -> str | None:
    """The English word(s) for a Korean/Russian word or an English synonym, else None."""
    if word.isascii():
        return SYNONYMS.get(word)
    for k in range(min(len(word), _MAX), 0, -1):
        found = PREFIXES.get(word[:k])
        if found is not None:
            return found
    return None
