"""Coarse event types shown to analysts for matched stories.

Training files use fine-grained ``event_type`` labels written by different
people; analysts only need five groups. The mapping is by keyword so that new
fine labels land in a sensible group without a code change.
"""

from __future__ import annotations

EVENT_GROUPS = ("arms/military", "diplomacy/summit", "economy/labour/trade",
                "sanctions/illicit", "other")

# Checked in order: "sanctions evasion via oil" is sanctions before economy.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("other", ("analysis", "axis", "triangle", "opinion")),
    ("sanctions/illicit", ("sanction", "illicit", "smuggl", "evasion", "launder", "panel",
                           "cyber", "hack")),
    ("arms/military", ("arms", "weapon", "munition", "ammunition", "shell", "missile", "rocket",
                       "artillery", "military", "troop", "soldier", "combat", "casualt", "pow",
                       "prisoner", "training", "deploy", "kursk", "drone", "defen", "war",
                       "satellite", "space", "technology", "tech", "submarine", "deminer")),
    ("diplomacy/summit", ("summit", "diplomac", "visit", "letter", "treaty", "pact", "minister",
                          "delegation", "ratif", "recogni", "un_", "vote", "envoy", "talk",
                          "political", "leader", "alliance", "veto")),
    ("economy/labour/trade", ("econom", "labour", "labor", "worker", "trade", "tourism",
                              "tourist", "transport", "rail", "bridge", "flight", "energy",
                              "oil", "fuel", "food", "grain", "bank", "financ", "crypto", "payment",
                              "construction", "builder", "education", "student", "culture",
                              "health", "agricult", "fish")),
)


def coarse_event_type(fine: str) -> str:
    """Map a fine training label (e.g. "arms_transfer", "troops_kursk") to a group."""
    key = fine.strip().lower()
    if not key:
        return "other"
    if key in EVENT_GROUPS:
        return key
    for group, stems in _RULES:
        if any(stem in key for stem in stems):
            return group
    return "other"
