"""MinHash signatures and their LSH index, from ``datasketch``.

A thin adapter so the index speaks in two words (signatures, an LSH keyed by our own
entry numbers) while the hashing itself is datasketch's: ``MinHash.bulk`` builds a
poll's signatures in one call, ``LeanMinHash`` keeps each in a few hundred bytes, and
``MinHashLSH`` with explicit ``(bands, rows)`` finds the candidates. The hash of a
shingle is CRC-32: stable across processes and Python versions (the default SHA-1
would do too, at twice the cost on short shingles).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from datasketch import LeanMinHash, MinHash, MinHashLSH

Signature = LeanMinHash
"""One item's MinHash (read-only, compact)."""


def _crc32(data: bytes) -> int:
    return zlib.crc32(data)


class MinHasher:
    """Signatures for many shingle lists at once, with one seed for the whole daemon."""

    def __init__(self, num_perm: int, bands: int, seed: int = 1) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of lsh_bands")
        self.num_perm = num_perm
        self.bands = bands
        self.seed = seed

    def signatures(self, shingle_lists: Sequence[Sequence[bytes]]) -> list[Signature]:
        """One signature per non-empty shingle list, in order."""
        if not shingle_lists:
            return []
        if min(len(grams) for grams in shingle_lists) < 1:
            raise ValueError("every shingle list must hold at least one shingle")
        built = MinHash.bulk(shingle_lists, num_perm=self.num_perm, seed=self.seed,
                             hashfunc=_crc32)
        return [LeanMinHash(m) for m in built]

    def band_keys(self, signature: Signature) -> Signature:
        """What the LSH index is given: the signature itself (datasketch cuts the bands)."""
        return signature


def jaccard(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    return float(a.jaccard(b))


class BandIndex:
    """``MinHashLSH`` with ``bands`` bands, keyed by the index's entry numbers."""

    def __init__(self, bands: int, num_perm: int) -> None:
        self._lsh = MinHashLSH(num_perm=num_perm, params=(bands, num_perm // bands))
        self._count = 0

    def insert(self, key: int, signature: Signature) -> None:
        self._lsh.insert(key, signature, check_duplication=False)
        self._count += 1

    def query(self, signature: Signature) -> list[int]:
        return list(self._lsh.query(signature))

    def remove(self, key: int) -> None:
        if key in self._lsh:
            self._lsh.remove(key)
            self._count -= 1

    def __len__(self) -> int:
        return self._count
