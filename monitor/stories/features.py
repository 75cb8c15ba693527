"""One item's comparable features, computed once when it arrives.

Kept apart from the index so that a poll's items can be prepared together
(datasketch MinHashes of a whole batch in one call, ``sketch.py``) and so that the rules
about what may be compared live in one place: a generic headline ("Live
updates") is left out of every comparison, and an item with too few content
words is not compared at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.stories.items import StoryItem, item_time
from monitor.stories.names import NameMatcher
from monitor.stories.settings import StorySettings
from monitor.stories.sketch import MinHasher, Signature
from monitor.stories.text import content_words, is_generic_title, normalise, shingles, words

#: Seed of the MinHash permutations: fixed, so signatures are stable across processes.
_SEED = 1


@dataclass(slots=True)
class Features:
    """What the index compares: term frequencies, names, and the MinHash if there is one."""

    time: float
    tf: dict[str, float]
    """Content stems → term frequency (headline words count ``title_weight`` each)."""
    names: frozenset[str]
    places: frozenset[str]
    minhash: Signature | None
    bands: Signature | None
    """The signature's LSH band keys (None with the signature)."""
    judgeable: bool
    """False when there are fewer than ``min_tokens`` content words to judge by."""
    generic_title: bool


class Featuriser:
    """Turns StoryItems into Features under one settings object and name matcher."""

    def __init__(self, settings: StorySettings, names: NameMatcher | None) -> None:
        self.settings = settings
        self.names = names
        self.hasher = MinHasher(settings.num_perm, settings.lsh_bands, _SEED)

    def prepare(self, items: Sequence[StoryItem]) -> list[Features]:
        """Features of ``items`` in order; their MinHashes in one batch."""
        partial = [self._text_features(item) for item in items]
        wanted = [i for i, (_, grams) in enumerate(partial) if grams]
        if wanted:
            hasher = self.hasher
            signatures = hasher.signatures([partial[i][1] for i in wanted])  # type: ignore[misc]
            for i, signature in zip(wanted, signatures, strict=True):
                features = partial[i][0]
                features.minhash = signature
                features.bands = hasher.band_keys(signature)
        return [features for features, _ in partial]

    def _text_features(self, item: StoryItem) -> tuple[Features, list[bytes] | None]:
        s = self.settings
        title_words = words(normalise(item.title))
        summary_words = words(normalise(item.summary)) if item.summary else []
        title_content = content_words(title_words)
        summary_content = content_words(summary_words)
        generic = is_generic_title(title_words, title_content)
        judged = summary_content if generic else title_content + summary_content
        tf: dict[str, float] = dict.fromkeys(judged, 0.0)
        if not generic:
            for w in title_content:
                tf[w] += s.title_weight
        for w in summary_content:
            tf[w] += 1.0
        if self.names is not None:
            names = self.names.find(summary_words if generic else title_words + summary_words)
            places = self.names.places(names) if names else frozenset()
        else:
            names = places = frozenset()
        judgeable = len(judged) >= s.min_tokens
        grams = shingles(judged, s.shingle_size) if judgeable else []
        features = Features(time=item_time(item), tf=tf, names=names, places=places,
                            minhash=None, bands=None, judgeable=judgeable, generic_title=generic)
        return features, (grams if len(grams) >= s.min_shingles else None)


