"""Many small feeds on 127.0.0.1 that note when each request started and ended.

Built for the multi-daemon tests: "no feed is polled by two daemons at once" is judged
where the publisher sees it, from the server's own clock. Each answer is held for
``hold`` seconds so that two polls of one feed at the same moment would overlap here
rather than slip between each other. Bodies carry an ETag and a matching
If-None-Match gets a 304, as from a real publisher.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class IntervalServer:
    """``add(path, body)`` then point feeds at ``url(path)``; ``intervals(path)`` after."""

    def __init__(self, *, hold: float = 0.0) -> None:
        self.hold = hold
        self._bodies: dict[str, tuple[bytes, str]] = {}
        self._intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="interval-server")

    def __enter__(self) -> IntervalServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._thread.join(timeout=5)
        self._httpd.server_close()

    def add(self, path: str, body: bytes) -> str:
        etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
        with self._lock:
            self._bodies[path] = (body, etag)
        return self.base_url + path

    def intervals(self, path: str) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._intervals.get(path, ()))

    def polled_paths(self) -> set[str]:
        with self._lock:
            return {p for p, spans in self._intervals.items() if spans}

    def overlaps(self) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
        """Every pair of requests for one path where the second began before the first ended."""
        found = []
        with self._lock:
            snapshot = {p: sorted(spans) for p, spans in self._intervals.items()}
        for path, spans in snapshot.items():
            for earlier, later in itertools.pairwise(spans):
                if later[0] < earlier[1]:
                    found.append((path, earlier, later))
        return found

    def _serve(self, path: str, if_none_match: str | None) -> tuple[int, bytes, str | None]:
        started = time.monotonic()
        with self._lock:
            entry = self._bodies.get(path)
        if self.hold:
            time.sleep(self.hold)
        if entry is None:
            status, body, etag = 404, b"not found", None
        else:
            body, etag = entry
            status = 304 if if_none_match == etag else 200
            if status == 304:
                body = b""
        with self._lock:
            self._intervals[path].append((started, time.monotonic()))
        return status, body, etag


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type, owner: IntervalServer) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        pass  # a daemon killed mid-request hangs up: expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, body, etag = self.server.owner._serve(self.path.split("?")[0],
                                                      self.headers.get("If-None-Match"))
        self.send_response(status)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
