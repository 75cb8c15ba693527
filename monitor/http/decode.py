"""Reading a response body under a size limit counted after decompression.

A small gzip or brotli body can inflate to gigabytes, so Content-Length says
nothing about the memory a body will take. Bodies are decoded here, in steps
whose output is capped by what is left of the budget, and a body that would
exceed it stops as a ``too_large`` ``FetchError`` after at most one step.
Only codings we can decode this way are ever requested (``ACCEPT_ENCODING``).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from monitor.errors import FetchError

try:  # brotli is accepted only if it can be decoded in bounded steps (brotli >= 1.2)
    import brotli

    brotli.Decompressor().process(b"", output_buffer_limit=1)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - depends on the install
    brotli = None  # type: ignore[assignment]

ACCEPT_ENCODING = "gzip, deflate, br" if brotli is not None else "gzip, deflate"
_BROTLI_STEP = 64 * 1024


def too_large(max_bytes: int, detail: str) -> FetchError:
    """The error for a body (or file) over ``max_bytes``; ``detail`` says where it was seen."""
    return FetchError("too_large", f"body exceeds max_bytes={max_bytes} ({detail})")


async def read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body of a streamed ``response``, or ``FetchError`` past ``max_bytes``.

    Reads the raw stream (the transport must not decompress) and undoes
    Content-Encoding itself; an unknown or stacked coding is a ``protocol`` error.
    """
    encoding = response.headers.get("content-encoding", "")
    decoder = _BoundedDecoder(encoding, max_bytes)
    if decoder.identity:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise too_large(max_bytes, f"Content-Length {declared}")
    parts: list[bytes] = []
    # Whatever size the transport delivers: re-chunking costs CPU and buys nothing,
    # since the decoder bounds its own output whatever the input size.
    raw: AsyncIterator[bytes] = response.aiter_raw()
    async for chunk in raw:
        parts.append(decoder.decode(chunk))
    parts.append(decoder.flush())
    return b"".join(parts)


class _BoundedDecoder:
    """Undo Content-Encoding while never producing more than ``max_bytes`` in total.

    zlib's ``max_length`` caps each inflate step, so a compression bomb is
    stopped after at most ``max_bytes + 1`` output bytes rather than after the
    whole network chunk has been inflated in memory.
    """

    def __init__(self, content_encoding: str, max_bytes: int) -> None:
        codings = [
            c.strip().lower() for c in content_encoding.split(",") if c.strip()
        ]
        codings = [c for c in codings if c != "identity"]
        known = ("gzip", "x-gzip", "deflate", *(("br",) if brotli is not None else ()))
        if len(codings) > 1 or (codings and codings[0] not in known):
            raise FetchError("protocol", f"unsupported Content-Encoding {content_encoding!r}")
        self._coding = codings[0] if codings else None
        self._max = max_bytes
        self._total = 0
        self._obj = self._new_obj()
        self._deflate_sniffed = False

    @property
    def identity(self) -> bool:
        return self._coding is None

    def _new_obj(self, *, raw_deflate: bool = False) -> Any:
        if self._coding is None:
            return None
        if self._coding == "br":
            return brotli.Decompressor()
        if self._coding == "deflate":
            # "deflate" should be zlib-wrapped, but some servers send raw deflate.
            return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)
        return zlib.decompressobj(zlib.MAX_WBITS | 16)

    def _count(self, out: bytes) -> bytes:
        self._total += len(out)
        if self._total > self._max:
            raise too_large(self._max, "after decompression" if self._coding else "streamed")
        return out

    def decode(self, data: bytes) -> bytes:
        if self._obj is None:
            return self._count(data)
        if self._coding == "br":
            return self._unbrotli(data)
        try:
            return self._inflate(data)
        except zlib.error as exc:
            if self._coding == "deflate" and not self._deflate_sniffed and self._total == 0:
                self._deflate_sniffed = True
                self._obj = self._new_obj(raw_deflate=True)
                try:
                    return self._inflate(data)
                except zlib.error as exc2:
                    raise FetchError("protocol", f"corrupt deflate body: {exc2}") from exc2
            raise FetchError("protocol", f"corrupt {self._coding} body: {exc}") from exc

    def _inflate(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            budget = self._max - self._total + 1
            piece = self._obj.decompress(data, budget)
            self._deflate_sniffed = True
            # Output that reached the budget has raised too_large in _count, so
            # from here on all of ``data`` has been consumed (no unconsumed_tail).
            out.append(self._count(piece))
            if self._obj.eof and self._obj.unused_data and self._coding != "deflate":
                data = self._obj.unused_data  # next member of a multi-member gzip
                self._obj = self._new_obj()
                continue
            break
        return b"".join(out)

    def _unbrotli(self, data: bytes) -> bytes:
        """Brotli in steps of at most ~64 KB of output.

        brotli's ``output_buffer_limit`` stops the buffer growing only once it
        has passed the limit, and growth is geometric, so one call with the
        whole remaining budget could overshoot it twofold; small steps keep the
        overshoot to one step.
        """
        out: list[bytes] = []
        try:
            while True:
                budget = min(self._max - self._total + 1, _BROTLI_STEP)
                piece = self._obj.process(data, output_buffer_limit=budget)
                data = b""
                out.append(self._count(piece))
                if self._obj.can_accept_more_data():
                    return b"".join(out)
                if not piece:  # cannot happen with a sane decoder; never spin
                    raise FetchError("protocol", "brotli decoder made no progress")
        except brotli.error as exc:
            raise FetchError("protocol", f"corrupt br body: {exc}") from exc

    def flush(self) -> bytes:
        if self._obj is None:
            return b""
        if self._coding == "br":
            if not self._obj.is_finished():
                raise FetchError("protocol", "truncated br body")
            return b""
        try:
            return self._count(self._obj.flush())
        except zlib.error as exc:
            raise FetchError("protocol", f"corrupt {self._coding} body: {exc}") from exc
