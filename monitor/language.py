"""The language of a news item, told from its script.

Alerts show analysts the language of each report (a Korean or Russian item may need a
colleague who reads it, and says whose media is talking). Feeds do not reliably declare
their language, and the three that matter here write in three scripts, so counting
letters is both enough and free: Hangul is Korean, Cyrillic is Russian, Latin is
English (the monitor's Latin-script feeds are English-language outlets). Kana and Han
without Hangul are Japanese and Chinese. Imports nothing, so any process may use it.
"""

from __future__ import annotations

import re

__all__ = ["LANGUAGE_TAGS", "language_tag", "script_language"]

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
SHARE = 0.2
"""A script counts when it is at least this share of the letters: a Korean report full
of "ICBM", "UN" and "KCNA" is still Korean, an English one quoting "북러" is English."""

LANGUAGE_TAGS = {"en": "EN", "ko": "KO", "ru": "RU", "ja": "JA", "zh": "ZH"}


def script_language(text: str) -> str | None:
    """"ko", "ru", "ja", "zh" or "en" from the letters of ``text``; None without letters.

    Hangul first (Korean text often carries Han characters and Latin acronyms), then
    Cyrillic, then Japanese kana, then Han, else Latin.
    """
    counts = {
        "ko": len(_HANGUL.findall(text)),
        "ru": len(_CYRILLIC.findall(text)),
        "ja": len(_KANA.findall(text)),
        "zh": len(_HAN.findall(text)),
        "en": len(_LATIN.findall(text)),
    }
    total = sum(counts.values())
    if total == 0:
        return None
    for lang in ("ko", "ru", "ja", "zh"):
        if counts[lang] >= SHARE * total:
            return lang
    return "en" if counts["en"] else None


def language_tag(lang: str | None) -> str:
    """How a language is shown next to the outlet ("KO"); "" when unknown."""
    if not lang:
        return ""
    return LANGUAGE_TAGS.get(lang.lower(), lang.upper()[:3])
