"""Fetch-only micro benchmark: CPU per request for each HTTP client stack.

Run by ``bench/poll.py`` in a fresh process per client kind (so one kind's
pools and garbage never bill another), against the benchmark server's small
``/tiny.xml``. Each concurrency level first warms the pool with one request
per worker, then times ``--requests`` requests spread over the workers.

Prints one JSON line: {"kind": ..., "levels": {concurrency: {cpu_ms, rps}}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace

import aiohttp
import httpx

from monitor.fetch import fetch_feed
from monitor.http import FetchLimits, build_client
from monitor.models import Feed

KINDS = ("httpx", "httpx+aiohttp", "fetch_feed", "fetch_feed[httpx]", "aiohttp")


async def _client_for(kind: str, concurrency: int, stack: AsyncExitStack
                      ) -> Callable[[str], Awaitable[int]]:
    """A ``get(url) -> body length`` for ``kind``, with a pool as large as the concurrency."""
    limits = replace(FetchLimits(), max_connections=concurrency)
    if kind == "httpx":
        client = await stack.enter_async_context(httpx.AsyncClient(
            limits=httpx.Limits(max_connections=concurrency,
                                max_keepalive_connections=concurrency)))

        async def get(url: str) -> int:
            return len((await client.get(url)).content)
        return get
    if kind == "httpx+aiohttp":
        client = await stack.enter_async_context(
            build_client(replace(limits, transport="aiohttp")))

        async def get(url: str) -> int:
            return len((await client.get(url)).content)
        return get
    if kind in ("fetch_feed", "fetch_feed[httpx]"):
        limits = replace(limits, transport="httpx" if kind.endswith("[httpx]") else "aiohttp")
        client = await stack.enter_async_context(build_client(limits))
        feed = Feed(name="tiny", url="")

        async def get(url: str) -> int:
            result = await fetch_feed(client, replace(feed, url=url), None, limits)
            return len(result.body or b"")
        return get
    if kind == "aiohttp":
        session = await stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency), auto_decompress=False))

        async def get(url: str) -> int:
            async with session.get(url) as response:
                return len(await response.read())
        return get
    raise SystemExit(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")


async def _level(kind: str, url: str, concurrency: int, requests: int) -> dict[str, float]:
    async with AsyncExitStack() as stack:
        get = await _client_for(kind, concurrency, stack)
        await asyncio.gather(*(get(url) for _ in range(concurrency)))  # open the pool
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                if await get(url) <= 0:
                    raise RuntimeError("empty body")

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms": 1000 * cpu / requests, "rps": requests / wall}


async def run(kind: str, url: str, levels: list[int], requests: int) -> dict[str, object]:
    return {"kind": kind,
            "levels": {c: await _level(kind, url, c, requests) for c in levels}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--url", required=True)
    parser.add_argument("--levels", default="50,100,200")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    print(json.dumps(asyncio.run(run(args.kind, args.url, levels, args.requests))))


if __name__ == "__main__":
    main()
