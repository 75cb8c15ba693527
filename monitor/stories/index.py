"""StoryIndex: each new item joins an open story or starts one, in bounded time and memory.

Two tests, cheapest and surest first:

1. **Near-duplicate** (wire copy, syndicated text at another URL, light rewrites):
   datasketch's MinHash LSH over word shingles (``sketch.py``, a poll's MinHashes
   built in one call) finds candidates in constant time; the one with the highest
   estimated Jaccard at or above ``duplicate_threshold`` gives the story.
2. **Similar** (the same development in other words): TF-IDF cosine over content
   stems, with the IDF kept incrementally over the window, against the members of
   the stories that share the item's rarest terms (an inverted index term → recent
   items; no all-pairs scan). The story score is the best member's cosine (optionally
   mixed with the cosine to the story's centroid, ``centroid_weight``). A lower score
   suffices when the two share a distinctive name from the keyword file (or the
   gazetteer's English form of a Korean or Russian one); a higher one is needed when
   both name places of cooperation and none in common, and the bar rises with the time
   between the two (``time_penalty``): the next development of a trip comes a day later
   under the same names, while reports of one development bunch within hours.

What keeps separate developments of one event apart is the weighting: the IDF over
the window makes the words every report of the week shares (Kim, Putin, summit)
cheap and the words of one development (Komsomolsk, aircraft plant, invitation,
Khasan) dear, and the countries' own names are discounted further (``event_weight``)
while the keyword file's places count extra (``place_weight``). Korean and Russian
reports are compared through ``gazetteer.py``, which maps their names and key nouns to
English units ("보스토치니", "Восточный" → vostochny).

Why not scikit-learn's vectorisers here: they are built for batches, cost ~100 µs of
validation per call on one short text, and a ``TfidfTransformer`` cannot update its
IDF as the window slides. Items are 20-60 words, so a dict of weights per item and
a Counter of document frequencies over the window are both exact and cheap.

Bounds: everything lives only while inside the window (``expire``); at most
``members_per_story`` members per story stay comparable (the first and the most
recent); postings keep the ``posting_cap`` most recent items per term; lookups score
at most ``max_candidates``/``max_lsh_candidates``; and ``max_items`` caps the whole.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter

from monitor.stories.features import Features, Featuriser
from monitor.stories.items import Assignment, StoryItem, new_story_id
from monitor.stories.names import NameMatcher
from monitor.stories.settings import StorySettings
from monitor.stories.sketch import BandIndex, Signature, jaccard


@dataclass(slots=True, eq=False)
class _Entry:
    seq: int
    article_id: str
    story: _Story
    time: float
    vec: dict[str, float]
    """Unit-length TF-IDF weights, frozen with the IDF of the moment it was indexed."""
    names: frozenset[str]
    places: frozenset[str]
    minhash: Signature | None


class _Story:
    __slots__ = ("_norm", "centroid", "id", "members", "size")

    def __init__(self, story_id: str, centroid: bool) -> None:
        self.id = story_id
        self.members: dict[int, _Entry] = {}
        """The comparable members by arrival: the first, then the most recent."""
        self.centroid: dict[str, float] | None = {} if centroid else None
        """Sum of the members' vectors; None when ``centroid_weight`` is 0 (not kept)."""
        self._norm: float | None = None
        self.size = 0

    def add(self, entry: _Entry) -> None:
        self.members[entry.seq] = entry
        centroid = self.centroid
        if centroid is not None:
            for term, weight in entry.vec.items():
                centroid[term] = centroid.get(term, 0.0) + weight
            self._norm = None

    def drop(self, entry: _Entry) -> None:
        del self.members[entry.seq]
        centroid = self.centroid
        if centroid is not None:
            for term, weight in entry.vec.items():
                left = centroid[term] - weight
                if left > 1e-9:
                    centroid[term] = left
                else:
                    del centroid[term]
            self._norm = None

    def centroid_cosine(self, vec: dict[str, float]) -> float:
        centroid = self.centroid
        if centroid is None:
            return 0.0
        if self._norm is None:
            self._norm = math.sqrt(sum(w * w for w in centroid.values())) or 1.0
        return _cosine(vec, centroid) / self._norm


_WEIGHT = itemgetter(1)


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    """Dot product of unit vectors: the shared keys are found in C, then a few multiplications."""
    return sum([a[t] * b[t] for t in a.keys() & b.keys()])


class StoryIndex:
    """Assigns items to stories over a sliding window of published times.

    ``names`` (from :func:`monitor.stories.load_names`) adds the keyword file's
    names to the similarity test; without it only the words count.
    Not thread-safe: one pipeline stage owns it.
    """

    def __init__(self, settings: StorySettings | None = None,
                 names: NameMatcher | None = None) -> None:
        self.settings = settings or StorySettings()
        self.names = names
        self._featuriser = Featuriser(self.settings, names)
        self._window = self.settings.window_hours * 3600.0
        self._lsh = BandIndex(self.settings.lsh_bands, self.settings.num_perm)
        self._entries: dict[int, _Entry] = {}
        self._stories: dict[str, _Story] = {}
        self._postings: dict[str, dict[int, None]] = {}
        self._df: Counter[str] = Counter()
        self._name_df: Counter[str] = Counter()
        self._heap: list[tuple[float, int]] = []
        self._seq = 0
        event = names.event_stems if names is not None else frozenset()
        place = names.place_stems if names is not None else frozenset()
        # One look-up per term instead of two set tests; the countries' names win.
        self._idf_multiplier: dict[str, float] = {
            **dict.fromkeys(place, self.settings.place_weight),
            **dict.fromkeys(event, self.settings.event_weight)}

    # -- public API ----------------------------------------------------------------------
    def assign(self, item: StoryItem) -> Assignment:
        """Put ``item`` into a story (an open one, or a new one) and index it."""
        return self._assign(item, self._featuriser.prepare([item])[0])

    def assign_many(self, items: Sequence[StoryItem]) -> list[Assignment]:
        """``assign`` for each item in order; the MinHashes are computed in one batch."""
        return [self._assign(item, features)
                for item, features in zip(items, self._featuriser.prepare(items), strict=True)]

    def restore(self, item: StoryItem, story_id: str) -> None:
        """Index an item already assigned to ``story_id`` (start-up), without reassigning."""
        self.restore_many([(item, story_id)])

    def restore_many(self, pairs: Iterable[tuple[StoryItem, str]]) -> None:
        """``restore`` for many items, oldest first, MinHashes in one batch."""
        pairs = list(pairs)
        features = self._featuriser.prepare([item for item, _ in pairs])
        for (item, story_id), feats in zip(pairs, features, strict=True):
            if feats.judgeable:
                story = self._stories.get(story_id) or self._new_story(story_id)
                self._index(item.article_id, story, feats)

    def expire(self, now: datetime) -> int:
        """Forget every item older than the window before ``now``; returns how many went."""
        cutoff = now.astimezone(UTC).timestamp() - self._window
        gone = 0
        heap = self._heap
        while heap and heap[0][0] < cutoff:
            _, seq = heapq.heappop(heap)
            entry = self._entries.get(seq)
            if entry is not None:
                self._unindex(entry)
                gone += 1
        return gone

    def __len__(self) -> int:
        """Items currently indexed (comparable)."""
        return len(self._entries)

    @property
    def open_stories(self) -> int:
        return len(self._stories)

    def sizes(self) -> dict[str, int]:
        """Sizes of every internal structure: what the memory bound is about."""
        return {
            "entries": len(self._entries),
            "stories": len(self._stories),
            "postings": sum(len(p) for p in self._postings.values()),
            "terms": len(self._postings),
            "df_terms": len(self._df),
            "name_df": len(self._name_df),
            "lsh_keys": len(self._lsh),
            "heap": len(self._heap),
            "max_members": max((len(s.members) for s in self._stories.values()), default=0),
        }

    # -- assignment ------------------------------------------------------------------------
    def _assign(self, item: StoryItem, feats: Features) -> Assignment:
        if not feats.judgeable:
            # Too little text to tell developments apart: a story of its own, and not
            # indexed, so that nothing can join it either.
            return Assignment(new_story_id(item.article_id), True, None, None, 0.0, "new")
        vec = self._vector(feats.tf)
        dup = self._near_duplicate(feats)
        if dup is not None:
            entry, jaccard = dup
            self._index(item.article_id, entry.story, feats, vec)
            return Assignment(entry.story.id, False, entry.article_id, None, round(jaccard, 4),
                              "near_duplicate")
        similar = self._similar(feats, vec)
        if similar is not None:
            entry, score = similar
            self._index(item.article_id, entry.story, feats, vec)
            return Assignment(entry.story.id, False, None, entry.article_id, round(score, 4),
                              "similar")
        story_id = new_story_id(item.article_id)
        story = self._stories.get(story_id) or self._new_story(story_id)
        self._index(item.article_id, story, feats, vec)
        return Assignment(story_id, True, None, None, 0.0, "new")

    def _near_duplicate(self, feats: Features) -> tuple[_Entry, float] | None:
        if feats.minhash is None or feats.bands is None:
            return None
        keys = self._lsh.query(feats.bands)
        if not keys:
            return None
        # Oldest first (ties go to the first report), the newest when there are too many.
        keys = sorted(keys)
        if len(keys) > self.settings.max_lsh_candidates:
            keys = keys[-self.settings.max_lsh_candidates:]
        best: tuple[_Entry, float] | None = None
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry.minhash is None \
                    or abs(entry.time - feats.time) > self._window:
                continue
            estimate = jaccard(feats.minhash, entry.minhash)
            if estimate >= self.settings.duplicate_threshold \
                    and (best is None or estimate > best[1]):
                best = (entry, estimate)
        return best

    def _similar(self, feats: Features, vec: dict[str, float]) -> tuple[_Entry, float] | None:
        s = self.settings
        if not vec:
            return None
        # The vector is sorted by weight, rarest terms first: they find the candidates.
        hits: dict[int, float] = {}
        pool = 4 * s.max_candidates
        postings = self._postings
        for term, weight in itertools.islice(vec.items(), s.query_terms):
            posting = postings.get(term)
            if posting:
                if hits:
                    get = hits.get
                    for seq in posting:
                        hits[seq] = get(seq, 0.0) + weight
                else:
                    hits = dict.fromkeys(posting, weight)
                if len(hits) >= pool:
                    break
        if not hits:
            return None
        if len(hits) > s.max_candidates:
            # What heapq.nlargest documents itself to equal, with the sort in C.
            top = sorted(hits.items(), key=_WEIGHT, reverse=True)[: s.max_candidates]
        else:
            top = list(hits.items())
        best_by_story: dict[str, tuple[_Entry, float]] = {}
        entries = self._entries
        window, now = self._window, feats.time
        for seq, _ in top:
            entry = entries[seq]
            if abs(entry.time - now) > window:
                continue
            cos = _cosine(vec, entry.vec)
            held = best_by_story.get(entry.story.id)
            if held is None or cos > held[1]:
                best_by_story[entry.story.id] = (entry, cos)
        best: tuple[_Entry, float] | None = None
        best_margin = 0.0
        n = len(self._entries) + s.idf_pseudo_docs
        floor = s.named_threshold / 2
        for entry, cos in best_by_story.values():
            if cos < floor:
                continue  # hopeless even if the centroid were identical: skip its cosine
            score = cos if not s.centroid_weight else (1.0 - s.centroid_weight) * cos \
                + s.centroid_weight * entry.story.centroid_cosine(vec)
            shared = feats.names & entry.names
            distinctive = sum(1 for name in shared if self._name_df[name] / n <= s.distinctive_df)
            threshold = s.named_threshold if distinctive >= max(1, s.min_shared_names) \
                else s.similar_threshold
            if feats.places and entry.places and not feats.places & entry.places:
                threshold += s.place_conflict_margin
            # Reports of one development bunch within hours; the next development of the
            # same trip or crisis comes a day later with the same names.
            threshold += s.time_penalty * abs(entry.time - feats.time) / 86_400.0
            margin = score - threshold
            if margin >= 0 and (best is None or margin > best_margin):
                best, best_margin = (entry, score), margin
        return best

    # -- the index ---------------------------------------------------------------------------
    def _vector(self, tf: dict[str, float]) -> dict[str, float]:
        s = self.settings
        n = len(self._entries) + s.idf_pseudo_docs
        df_get = self._df.get
        multiplier = self._idf_multiplier.get
        log = math.log
        vec: list[tuple[str, float]] = []
        for term, count in tf.items():
            weight = count * log(n / (df_get(term, 0) + 1.0))
            m = multiplier(term)
            if m is not None:
                weight *= m
            if weight > 0:
                vec.append((term, weight))
        # Heaviest first (the look-up uses the head), at most max_terms: a long text's tail
        # of light terms barely moves a cosine but would cost every comparison.
        vec.sort(key=_WEIGHT, reverse=True)
        kept = vec[: s.max_terms]
        norm = math.sqrt(sum([w * w for _, w in kept]))
        return {t: w / norm for t, w in kept} if norm else {}

    def _new_story(self, story_id: str) -> _Story:
        story = _Story(story_id, self.settings.centroid_weight > 0)
        self._stories[story_id] = story
        return story

    def _index(self, article_id: str, story: _Story, feats: Features,
               vec: dict[str, float] | None = None) -> None:
        s = self.settings
        if vec is None:
            vec = self._vector(feats.tf)
        self._seq += 1
        seq = self._seq
        entry = _Entry(seq, article_id, story, feats.time, vec, feats.names, feats.places,
                       feats.minhash)
        self._entries[seq] = entry
        story.add(entry)
        story.size += 1
        df = self._df
        df_get = df.get
        for term in vec:
            df[term] = df_get(term, 0) + 1
        postings = self._postings
        cap = s.posting_cap
        for term in itertools.islice(vec, s.posted_terms):
            posting = postings.get(term)
            if posting is None:
                postings[term] = {seq: None}
            else:
                posting[seq] = None
                if len(posting) > cap:
                    del posting[next(iter(posting))]
        name_df = self._name_df
        for name in feats.names:
            name_df[name] = name_df.get(name, 0) + 1
        if feats.bands is not None:
            self._lsh.insert(seq, feats.bands)
        heapq.heappush(self._heap, (feats.time, seq))
        if len(story.members) > s.members_per_story:
            # Keep the first member (what the story is about) and the most recent ones.
            members = iter(story.members)
            next(members)
            self._unindex(story.members[next(members)])
        while len(self._entries) > s.max_items:
            _, oldest = heapq.heappop(self._heap)
            if oldest in self._entries:
                self._unindex(self._entries[oldest])
        if len(self._heap) > 2 * len(self._entries) + 1024:
            # Items dropped for the per-story bound leave stale heap slots: compact.
            self._heap = [(e.time, e.seq) for e in self._entries.values()]
            heapq.heapify(self._heap)

    def _unindex(self, entry: _Entry) -> None:
        s = self.settings
        seq = entry.seq
        del self._entries[seq]
        story = entry.story
        story.drop(entry)
        if not story.members:
            del self._stories[story.id]
        postings = self._postings
        for term in itertools.islice(entry.vec, s.posted_terms):
            posting = postings.get(term)
            if posting is not None:
                posting.pop(seq, None)
                if not posting:
                    del postings[term]
        df = self._df
        for term in entry.vec:
            left = df[term] - 1
            if left > 0:
                df[term] = left
            else:
                del df[term]
        for name in entry.names:
            left = self._name_df[name] - 1
            if left > 0:
                self._name_df[name] = left
            else:
                del self._name_df[name]
        self._lsh.remove(seq)
