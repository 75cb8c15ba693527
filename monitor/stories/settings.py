"""Every knob of story assignment, with its default written once, here.

The daemon's ``[stories]`` config table maps onto these fields one to one. The six
thresholds and weights searched by ``python -m monitor.stories.evaluate --tune --as-daemon``
(similar/named thresholds, time penalty, event/place weights, centroid weight) are its
pick on the ``tune`` split of tests/fixtures/stories/ground_truth.jsonl (tune precision
>= 0.92); the frozen split only reports. Scored as the daemon runs (classifier first,
candidates only, over the matching items that reach Slack), the highest-recall point at
tune precision >= 0.90 (time_penalty 0.05, place_weight 1.5: tune P 0.909, R 0.918, 1.22
top-level messages per story) came out at frozen precision 0.852, no margin over the
0.85 target, so these defaults stay. The bounds (terms, candidates, caps) were set for
cost and checked not to move the tune scores.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class StorySettings:
    """Thresholds and bounds of :class:`monitor.stories.StoryIndex`."""

    window_hours: float = 36.0
    """Two items can share a story only if their times (published, else first seen) are
    at most this far apart; ``expire(now)`` forgets everything older than this."""

    # -- near-duplicates (MinHash + LSH) ---------------------------------------------------
    shingle_size: int = 2
    """Words per shingle. Two-word shingles of stemmed content words survive light
    rewrites (a changed word costs two shingles, not three) yet still need word order."""
    num_perm: int = 32
    """MinHash permutations: 32 estimate a Jaccard of 0.55 within about ±0.09, enough for
    a yes/no on near-duplicates (wire copy is at 0.8-1.0), at a quarter of the cost of
    datasketch's default 128; a borderline pair is still judged by the cosine test."""
    lsh_bands: int = 8
    """LSH bands of ``num_perm // lsh_bands`` rows: 8 x 4 makes a pair a candidate with
    probability 0.67 at Jaccard 0.6, 0.98 at 0.8 (the S-curve's midpoint is ~0.59).
    Each band costs a hash-table insert and look-up per item, so fewer is cheaper."""
    duplicate_threshold: float = 0.55
    """Estimated Jaccard of shingle sets at or above which an item is a near-duplicate."""
    min_shingles: int = 3
    """Texts with fewer shingles are too short for a meaningful Jaccard: no MinHash test."""

    # -- similar reports (TF-IDF cosine + shared names) ------------------------------------
    similar_threshold: float = 0.14
    """Story score at or above which an item joins a story on text alone. Low because the
    weighting does the separating: shared event words add almost nothing to a cosine."""
    named_threshold: float = 0.10
    """A lower cosine that suffices when the two items also share ``min_shared_names``
    distinctive names (places, people, aliases rare in the window)."""
    min_shared_names: int = 1
    """Distinctive names two items must share for ``named_threshold`` to apply."""
    place_conflict_margin: float = 0.10
    """Added to the thresholds when both items name places of cooperation and share none:
    the train at Khasan and the factory at Komsomolsk are different developments."""
    time_penalty: float = 0.1
    """Added to the thresholds per 24 h between the item and the member it is compared with."""
    title_weight: float = 3.0
    """Term frequency multiplier for headline words: the headline names the development."""
    event_weight: float = 0.35
    """IDF multiplier for words of the two countries' names (Kim, Putin, Russia, Pyongyang):
    they are in every item of this domain and say nothing about which development it is."""
    place_weight: float = 2.5
    """IDF multiplier for words of the [places] keywords (Khasan, Komsomolsk, Vostochny)."""
    distinctive_df: float = 0.35
    """A shared name counts as distinctive when it is in at most this fraction of the window."""
    idf_pseudo_docs: float = 20.0
    """Smoothing of the window IDF: with an empty or small window, terms weigh alike."""
    centroid_weight: float = 0.0
    """Story score = (1 - w) · best member cosine + w · cosine to the story's centroid:
    a guard against chaining (A ~ B ~ C while A and C differ). With ``time_penalty``
    doing that job it bought nothing on the tune split, so it is off by default."""

    # -- too little to judge ---------------------------------------------------------------
    min_tokens: int = 3
    """An item whose judged text (summary only when the headline is generic) has fewer
    content words starts a story of its own and is not indexed: nothing may join it."""

    # -- bounds ----------------------------------------------------------------------------
    max_terms: int = 32
    """Terms kept per item vector (the heaviest): bounds the cost of a cosine."""
    query_terms: int = 8
    """The item's highest-weighted terms used to look up candidates in the inverted index
    (the look-up stops early once it has 4 x ``max_candidates`` items)."""
    posted_terms: int = 16
    """An item's heaviest terms entered in the inverted index (its rare words: what a
    later report of the same development will look it up by)."""
    posting_cap: int = 64
    """Most recent items kept per term of the inverted index."""
    max_candidates: int = 8
    """Candidates scored with the full cosine per lookup."""
    max_lsh_candidates: int = 32
    """LSH candidates whose Jaccard is estimated per lookup."""
    members_per_story: int = 12
    """Members of one story kept for comparison (the first plus the most recent ones);
    older ones leave the index but the story goes on."""
    max_items: int = 50_000
    """Hard cap on indexed items whatever the window: the oldest go first."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ValueError(f"stories.{f.name} must not be negative, got {value!r}")
        if self.shingle_size < 1 or self.num_perm < 8 or self.members_per_story < 1:
            raise ValueError("stories: shingle_size >= 1, num_perm >= 8, members_per_story >= 1")
        if not 1 <= self.lsh_bands <= self.num_perm:
            raise ValueError("stories.lsh_bands must be between 1 and num_perm")
        if self.window_hours <= 0 or self.max_items < 1:
            raise ValueError("stories.window_hours and stories.max_items must be positive")
