"""The benchmark's feed server: aiohttp on 127.0.0.1, run in its own process.

It runs apart from the measured process so that its CPU time is not counted as
ours, and it is an asyncio server rather than a thread-per-connection one so
that it can keep up with hundreds of concurrent keep-alive clients on two cores.

Feeds are generated once at start-up (plain and gzip), carry ETags and answer
304 to a matching If-None-Match, like a well-behaved publisher. ``POST
/control/bump?count=K&seed=S`` adds one new item to K feeds, which is how a
benchmark turns a warm cycle into "mostly 304".

Run: ``python -m bench.server --feeds 2000`` prints ``READY <port>`` when serving.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import random
import socket
import sys
from dataclasses import dataclass, field

from aiohttp import web

from bench.feeds import feed_xml, recent_epoch

TINY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>tiny</title>'
    + b"".join(
        b"<item><title>item %d</title><link>https://news.example.org/t/%d</link></item>" % (i, i)
        for i in range(12)
    )
    + b"</channel></rss>\n"
)


@dataclass
class Feeds:
    count: int
    items_min: int
    items_max: int
    plain: list[bytes] = field(default_factory=list)
    packed: list[bytes] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)
    generation: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.epoch = recent_epoch()
        for i in range(self.count):
            self.plain.append(b"")
            self.packed.append(b"")
            self.etags.append("")
            self.generation.append(0)
            self._render(i)

    def _render(self, i: int) -> None:
        body = feed_xml(i, items_min=self.items_min, items_max=self.items_max,
                        epoch=self.epoch, generation=self.generation[i])
        self.plain[i] = body
        self.packed[i] = gzip.compress(body, compresslevel=6, mtime=0)
        self.etags[i] = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'

    def bump(self, count: int, seed: int) -> list[int]:
        chosen = random.Random(seed).sample(range(self.count), k=min(count, self.count))
        for i in chosen:
            self.generation[i] += 1
            self._render(i)
        return chosen


def _respond(request: web.Request, plain: bytes, packed: bytes | None, etag: str) -> web.Response:
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    headers = {"ETag": etag, "Content-Type": "application/rss+xml; charset=utf-8"}
    if packed is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=packed, headers=headers)
    return web.Response(body=plain, headers=headers)


def build_app(feeds: Feeds) -> web.Application:
    tiny_etag = '"tiny-1"'

    async def feed(request: web.Request) -> web.Response:
        try:
            i = int(request.match_info["index"])
            plain, packed, etag = feeds.plain[i], feeds.packed[i], feeds.etags[i]
        except (ValueError, IndexError):
            raise web.HTTPNotFound() from None
        return _respond(request, plain, packed, etag)

    async def tiny(request: web.Request) -> web.Response:
        return _respond(request, TINY, None, tiny_etag)

    async def bump(request: web.Request) -> web.Response:
        count = int(request.query.get("count", "0"))
        seed = int(request.query.get("seed", "0"))
        return web.json_response({"bumped": feeds.bump(count, seed)})

    app = web.Application()
    app.router.add_get("/feed/{index}.xml", feed)
    app.router.add_get("/tiny.xml", tiny)
    app.router.add_post("/control/bump", bump)
    return app


async def serve(feeds: Feeds, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    runner = web.AppRunner(build_app(feeds), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=2048)
    await site.start()
    print(f"READY {sock.getsockname()[1]}", flush=True)
    # Serve until the parent closes our stdin (or kills us): no orphan servers.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items-min", type=int, default=20)
    parser.add_argument("--items-max", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    feeds = Feeds(args.feeds, args.items_min, args.items_max)
    asyncio.run(serve(feeds, args.port))


if __name__ == "__main__":
    main()
