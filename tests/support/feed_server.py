"""A real local HTTP server for feed tests: the wire, not a mock of our own code.

Tests register routes (a feed file, a status code, a redirect, a compressed or
slow body) and then point the real ``fetch_feed`` at ``server.base_url``. Every
request is recorded so tests can check what the client actually sent (conditional
headers, User-Agent) and how often a path was hit.

Use it as a context manager; leaving the block stops the server, drops open
keep-alive connections and joins the serving thread, so nothing outlives a test.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    """The request target as sent, including any query string."""
    headers: dict[str, str] = field(default_factory=dict)
    """Header names in lower case."""


@dataclass(slots=True)
class _Route:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: Sequence[bytes] = ()
    chunked: bool = False
    """Send with Transfer-Encoding: chunked (no Content-Length)."""
    delay_before: float = 0.0
    delay_between: float = 0.0
    etag: str | None = None
    last_modified: str | None = None


class FeedServer:
    """ThreadingHTTPServer on 127.0.0.1 with an ephemeral port, serving registered routes."""

    def __init__(self) -> None:
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._open: set[socket.socket] = set()
        self._stop = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _RequestHandler, self)
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> FeedServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name="feed-server", daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, cut open connections (so handler threads end) and release the port."""
        self._stop.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()  # joins handler threads (daemon_threads is False)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- routes ---------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + path

    def _add(self, path: str, route: _Route) -> str:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        with self._lock:
            self._routes[path] = route
        return self.url(path)

    def add_file(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml; charset=utf-8",
        etag: str | None = None,
        last_modified: str | None = None,
        headers: dict[str, str] | None = None,
        delay_seconds: float = 0.0,
    ) -> str:
        """Serve ``body``; 304 when the client's validators match ``etag``/``last_modified``.

        ``delay_seconds`` holds every answer that long (a request already being held
        keeps its delay when the route is replaced)."""
        hdrs = [("Content-Type", content_type), *(headers or {}).items()]
        if etag is not None:
            hdrs.append(("ETag", etag))
        if last_modified is not None:
            hdrs.append(("Last-Modified", last_modified))
        return self._add(
            path, _Route(headers=hdrs, chunks=[body], etag=etag, last_modified=last_modified,
                         delay_before=delay_seconds)
        )

    def add_status(
        self,
        path: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> str:
        return self._add(path, _Route(status=status, headers=list((headers or {}).items()),
                                      chunks=[body]))

    def add_redirect(self, path: str, target: str, status: int = 301) -> str:
        """Redirect to ``target`` (a path on this server, or any absolute URL), sent as given."""
        return self._add(path, _Route(status=status, headers=[("Location", target)],
                                      chunks=[b"moved"]))

    def add_compressed(
        self,
        path: str,
        body: bytes,
        *,
        encoding: str = "gzip",
        content_type: str = "application/rss+xml; charset=utf-8",
    ) -> str:
        """Serve ``body`` compressed; ``encoding`` is gzip, deflate (zlib) or deflate-raw."""
        if encoding == "gzip":
            data, header = gzip.compress(body), "gzip"
        elif encoding == "deflate":
            data, header = zlib.compress(body), "deflate"
        elif encoding == "deflate-raw":
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            data, header = packer.compress(body) + packer.flush(), "deflate"
        else:
            raise ValueError(f"unknown encoding {encoding!r}")
        hdrs = [("Content-Type", content_type), ("Content-Encoding", header)]
        return self._add(path, _Route(headers=hdrs, chunks=[data]))

    def add_gzip(
        self, path: str, body: bytes, *, content_type: str = "application/rss+xml; charset=utf-8"
    ) -> str:
        return self.add_compressed(path, body, encoding="gzip", content_type=content_type)

    def add_stream(
        self,
        path: str,
        chunks: Sequence[bytes],
        *,
        delay_between: float = 0.0,
        content_type: str = "application/rss+xml; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> str:
        """Send ``chunks`` with chunked transfer encoding (no Content-Length), optionally slowly."""
        hdrs = [("Content-Type", content_type), *(headers or {}).items()]
        return self._add(path, _Route(headers=hdrs, chunks=list(chunks), chunked=True,
                                      delay_between=delay_between))

    def add_slow(
        self,
        path: str,
        delay_seconds: float,
        body: bytes = b"<rss version='2.0'><channel><title>late</title></channel></rss>",
    ) -> str:
        """Wait ``delay_seconds`` before sending anything at all."""
        hdrs = [("Content-Type", "application/rss+xml")]
        return self._add(path, _Route(headers=hdrs, chunks=[body], delay_before=delay_seconds))

    # -- observations -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def hits(self, path: str) -> int:
        """How many requests asked for ``path`` (query strings ignored unless given)."""
        with self._lock:
            return sum(
                1 for r in self._requests if r.path == path or urlsplit(r.path).path == path
            )

    # -- used by the handler ----------------------------------------------------------

    def _record(self, request: RecordedRequest) -> _Route | None:
        with self._lock:
            self._requests.append(request)
            return self._routes.get(urlsplit(request.path).path)

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def _wait(self, seconds: float) -> bool:
        """Sleep, but wake at once when the server closes; True if it is closing."""
        return self._stop.wait(seconds) if seconds > 0 else self._stop.is_set()


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of concurrent test clients

    def __init__(self, address: tuple[str, int], handler: type, owner: FeedServer) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        # Clients hang up on purpose in these tests (timeouts, size limits): not an error.
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # an idle keep-alive connection must not pin a thread forever

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = owner._record(RecordedRequest(self.command, self.path, headers))
        if route is None:
            self._plain(404, b"not found")
            return
        if owner._wait(route.delay_before):
            self.close_connection = True
            return
        if route.status == 200 and _not_modified(route, headers):
            self.send_response(304)
            for name, value in route.headers:
                if name.lower() in ("etag", "last-modified"):
                    self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(route.status)
        for name, value in route.headers:
            self.send_header(name, value)
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if head:
                return
            for chunk in route.chunks:
                if owner._wait(route.delay_between):
                    self.close_connection = True
                    return
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b"".join(route.chunks)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _not_modified(route: _Route, headers: dict[str, str]) -> bool:
    """RFC 9110 precedence: If-None-Match decides when present, else If-Modified-Since."""
    inm = headers.get("if-none-match")
    if inm is not None:
        if route.etag is None:
            return False
        wanted = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in wanted or route.etag.removeprefix("W/") in wanted
    ims = headers.get("if-modified-since")
    if ims is None or route.last_modified is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(ims)
        modified = email.utils.parsedate_to_datetime(route.last_modified)
    except (TypeError, ValueError):
        return False
    return modified <= since


class TimedServer(FeedServer):
    """A FeedServer that also notes when each request arrived (server-side clock).

    Politeness is judged where the publisher sees it: by arrival times, not by
    timers in the client.
    """

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []

    def _record(self, request: RecordedRequest) -> _Route | None:
        self.arrivals.append((time.monotonic(), request.path))
        return super()._record(request)

    def arrival_times(self, path: str) -> list[float]:
        """Monotonic arrival times of the requests for ``path`` (query strings ignored)."""
        return [t for t, p in list(self.arrivals) if p == path or urlsplit(p).path == path]
