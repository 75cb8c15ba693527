"""Coarse event types shown to analysts for matched stories.

Training files use fine-grained ``event_type`` labels written by different
people; analysts only need five groups. The mapping is by keyword so that new
fine labels land in a sensible group without a code change.

Fine labels are split into words ("summit_treaty" → "summit", "treaty") and each
stem must start a word (short ones must be the whole word), so "power_grid" is not
a "pow" (prisoner of war), "military_units" not a "un" and "software" not a "war".
Diplomatic acts are checked before military vocabulary: "mutual_defence_treaty" or
"defence_minister_visit" is a treaty or a visit whose subject is defence, which
analysts file under diplomacy/summit.
"""

from __future__ import annotations

import re

EVENT_GROUPS = ("arms/military", "diplomacy/summit", "economy/labour/trade",
                "sanctions/illicit", "other")

# Checked in order: "sanctions evasion via oil" is sanctions before economy, and a
# treaty or a visit is diplomacy before its defence subject makes it military.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("other", ("analysis", "axis", "triangle", "opinion", "explainer", "editorial",
               "commentary", "bloc", "multiparty", "relationship", "overview")),
    ("sanctions/illicit", ("sanction", "illicit", "smuggl", "evasion", "evade", "launder",
                           "panel", "cyber", "hack")),
    ("diplomacy/summit", ("summit", "treaty", "pact", "ratif", "visit", "letter", "delegation",
                          "envoy", "diplomac", "diplomat", "un$", "veto", "recogni", "minister",
                          "talk", "meeting")),
    ("arms/military", ("arms", "weapon", "munition", "ammunition", "shell", "missile", "rocket",
                       "artillery", "military", "troop", "soldier", "combat", "casualt", "pow$",
                       "pows$", "prisoner", "training", "deploy", "kursk", "drone", "defen", "war$",
                       "satellite", "space", "technology", "tech", "submarine", "deminer",
                       "army", "naval", "navy")),
    ("diplomacy/summit", ("political", "leader", "alliance", "vote", "support", "relations")),
    ("economy/labour/trade", ("econom", "labour", "labor", "worker", "trade", "tourism",
                              "tourist", "transport", "rail", "bridge", "flight", "energy",
                              "oil", "fuel", "food", "grain", "bank", "financ", "crypto",
                              "payment", "construction", "builder", "education", "student",
                              "culture",
                              "health", "agricult", "fish", "investment", "aid", "power",
                              "electric")),
)
_SPLIT = re.compile(r"[^a-z0-9]+")


def coarse_event_type(fine: str) -> str:
    """Map a fine training label (e.g. "arms_transfer", "troops_kursk") to a group."""
    key = fine.strip().lower()
    if not key:
        return "other"
    if key in EVENT_GROUPS:
        return key
    words = [w for w in _SPLIT.split(key) if w]
    for group, stems in _RULES:
        if any(_matches(w, stem) for w in words for stem in stems):
            return group
    return "other"


def _matches(word: str, stem: str) -> bool:
    """A stem starts the word; a stem ending in "$" must be the whole word ("un", "war")."""
    if stem.endswith("$"):
        return word == stem[:-1]
    return word.startswith(stem)
