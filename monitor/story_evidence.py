"""A story's score, event type and quote, from its members.

A thread's parent is the first matching report of a story, but it is not always the
strongest: a vague first report ("Kim may visit Russia") is often followed by precise
ones. When the parent is edited as the story grows, it shows the story's evidence:

* **Score** = the strongest member's score, plus a corroboration bonus of
  ``BONUS`` × (1 − strongest) for each further independent outlet among the matching
  members, counting at most ``MAX_CORROBORATING`` of them. The bonus only ever closes
  part of the gap to 1, so the score stays below 1 (at most strongest + 0.3 × gap),
  and it needs other *outlets*: one outlet's updates, or the same outlet twice, add
  nothing. Why not noisy-OR: members are not independent evidence (outlets copy wires),
  and noisy-OR would take any two 0.9 reports to 0.99.
* **Event type** = the score-weighted vote of the matching members' types: a story
  whose four reports say "diplomacy/summit" is not typed by one report that stressed
  the weapons talk. Ties go to the strongest member's type.
* **Quote** = the "why" clause of the strongest matching member of that type that has
  one, with its outlet, so the quote and the type agree.

Pure and backend-free: each store fetches the members' rows and calls ``story_evidence``.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.models import MemberEvidence, StoryEvidence

__all__ = ["BONUS", "MAX_CORROBORATING", "story_evidence"]

BONUS = 0.1
MAX_CORROBORATING = 3


def story_evidence(members: Iterable[MemberEvidence]) -> StoryEvidence | None:
    """The evidence of a story from its members; None for a story without members."""
    members = list(members)
    if not members:
        return None
    # Strongest first; ties keep arrival order (the earlier report).
    ranked = sorted(members, key=lambda m: -m.score)
    best = ranked[0]
    matching = [m for m in ranked if m.match] or [best]
    outlets = {m.source for m in matching if m.match}
    corroborating = min(MAX_CORROBORATING, len(outlets - {best.source}))
    score = best.score + (1.0 - best.score) * BONUS * corroborating

    votes: dict[str, float] = {}
    for m in matching:
        if m.event_type:
            votes[m.event_type] = votes.get(m.event_type, 0.0) + m.score
    event_type = None
    if votes:
        top = max(votes.values())
        tied = {t for t, v in votes.items() if v >= top - 1e-9}
        event_type = next((m.event_type for m in matching if m.event_type in tied), None)

    quoted = next((m for m in matching if m.why and m.event_type == event_type), None) \
        or next((m for m in ranked if m.why), None)
    return StoryEvidence(
        score=score, best_score=best.score, event_type=event_type, outlets=len(outlets),
        why=quoted.why if quoted else None, why_source=quoted.source if quoted else None,
    )
