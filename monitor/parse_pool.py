"""Parse feeds in worker processes, where a runaway parse cannot take the daemon down.

feedparser is pure Python: tens of milliseconds of CPU for a typical news feed, and on hostile or
broken input it can run for minutes or allocate gigabytes. In a thread it would still
hold the GIL against the event loop and share the daemon's memory. Here each parse runs in
a worker process with an address-space limit (``RLIMIT_AS``) and a wall-clock limit, and
every way a parse can go wrong ends as a ``HostileFeedError`` for that feed alone:

* ``parse_timeout``: the worker interrupts itself (``SIGALRM``) when the parse overruns,
  which costs nothing to recover from; a parse stuck where the signal cannot reach it is
  killed from outside after a grace period and its worker replaced.
* ``parse_memory``: the worker's allocation failed against its limit; the worker is
  replaced so no half-freed heap lingers.
* ``parse_crashed``: the worker died twice on the same feed. A first death is retried
  once in a fresh worker because it may not be the feed's fault (the kernel's OOM killer,
  an operator's ``kill``).

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot say which process runs which
call, so one runaway parse would mean killing every worker (through a private attribute
before Python 3.14) and failing or retrying the innocent parses with it; and each call
crosses two helper threads. Here each worker is one process with one socket: blame is
exact, a kill hits only the guilty parse, and a call costs the event loop one framed
pickle each way, no threads, which costs the daemon about half what ProcessPoolExecutor
did per parse (a small fraction of the parse itself). Workers parse one feed at a time;
callers queue for a free one.

Why forkserver (spawn where unavailable): forking the daemon itself would copy its
threads' locks and its memory; a forkserver with ``monitor.parse_pool`` preloaded starts a
worker several times faster than a fresh interpreter, which is what makes replacing workers
cheap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import resource
import signal
import socket
import struct
from collections import Counter
from dataclasses import dataclass, fields
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from types import FrameType, TracebackType
from typing import Any

from monitor.errors import HostileFeedError, ParseError
from monitor.models import ParsedFeed, RawEntry
from monitor.parse import parse_feed
from monitor.worker_context import worker_context

log = logging.getLogger("monitor.parse_pool")

_MB = 1024 * 1024
_HEADER = struct.Struct("!Q")  # every message: 8-byte length, then a pickle
_ENTRY_FIELDS = tuple(f.name for f in fields(RawEntry))


# -- the worker side ---------------------------------------------------------------------------


class _SoftTimeout(BaseException):
    """Raised by SIGALRM inside a worker; a BaseException so feedparser's and parse_feed's
    ``except Exception`` clauses cannot swallow it."""


@dataclass(frozen=True, slots=True)
class _Request:
    feed_name: str
    body: bytes
    content_type: str | None
    base_url: str | None
    max_items: int
    max_entity_declarations: int
    timeout_seconds: float
    fast_path: bool = True


def _worker_main(sock: socket.socket, memory_limit_bytes: int) -> None:
    """Serve parse requests from the daemon until it closes the socket."""
    _worker_init(memory_limit_bytes)
    with sock:
        try:
            _send_frame(sock, pickle.dumps(os.getpid()))  # "ready"
        except OSError:
            return  # the daemon gave up on this worker while it was starting
        while True:
            try:
                payload = _recv_frame(sock)
            except (MemoryError, OSError):
                payload = None  # out of step with the daemon: exiting is the clear answer
            if payload is None:
                return
            try:
                outcome = _worker_parse(pickle.loads(payload))
                del payload
                reply = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
            except MemoryError:  # the request or the result did not fit
                reply = pickle.dumps(("memory",))
            try:
                _send_frame(sock, reply)
            except OSError:
                return


def _worker_init(memory_limit_bytes: int) -> None:
    # Ctrl+C reaches the whole process group; the daemon, not its workers, decides
    # what happens then (otherwise every worker dies mid-parse during a clean drain).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)
    if memory_limit_bytes > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = memory_limit_bytes
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _SoftTimeout


def _worker_parse(request: _Request) -> tuple[Any, ...]:
    """Run one parse; every outcome comes back as a small tagged tuple, never a traceback."""
    try:
        signal.setitimer(signal.ITIMER_REAL, request.timeout_seconds)
        try:
            parsed = parse_feed(
                request.feed_name,
                request.body,
                content_type=request.content_type,
                base_url=request.base_url,
                max_items=request.max_items,
                max_entity_declarations=request.max_entity_declarations,
                fast_path=request.fast_path,
            )
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:
        return ("timeout",)
    except MemoryError:
        return ("memory",)
    except HostileFeedError as exc:
        return ("hostile", exc.kind, str(exc))
    except ParseError as exc:
        if isinstance(exc.__cause__, MemoryError):  # parse_feed wraps what feedparser raises
            return ("memory",)
        return ("parse", str(exc))
    except Exception as exc:  # a bug in our code: the feed still fails alone
        return ("parse", f"parser bug on {request.feed_name!r}: {type(exc).__name__}: {exc}")
    return ("ok", _pack(parsed))


def _pack(parsed: ParsedFeed) -> tuple[Any, ...]:
    """Plain tuples pickle in a fraction of the time frozen slotted dataclasses take."""
    entries = [tuple(getattr(e, name) for name in _ENTRY_FIELDS) for e in parsed.entries]
    return (parsed.feed_name, parsed.title, parsed.problem, entries, parsed.ttl_seconds)


def _unpack(packed: tuple[Any, ...]) -> ParsedFeed:
    feed_name, title, problem, entries, ttl_seconds = packed
    return ParsedFeed(feed_name, title, tuple(RawEntry(*values) for values in entries), problem,
                      ttl_seconds)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    # One write, not two: each write wakes the daemon's event loop.
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_frame(sock: socket.socket) -> bytearray | None:
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            return None  # the daemon closed the socket: time to exit
        received += count
    return buffer  # pickle reads a bytearray as well: no second copy of a large body


# -- the daemon side ---------------------------------------------------------------------------


class _WorkerGone(Exception):
    """The worker's socket closed or broke: the process died (or was killed)."""


class _Channel(asyncio.Protocol):
    """The daemon's end of a worker's socket: length-prefixed messages, one at a time.

    A bare protocol rather than asyncio streams: a reply resolves the waiting future
    straight from ``data_received``, which halves the event-loop work per parse.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[bytes] | None = None
        self._lost: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._deliver()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = f"the worker's socket closed ({exc or 'end of file'})"
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(_WorkerGone(self._lost))

    def request(self, payload: bytes | None) -> asyncio.Future[bytes]:
        """Send ``payload`` (if any) and return a future for the next message back."""
        if self._lost is not None or self.transport is None or self.transport.is_closing():
            raise _WorkerGone(self._lost or "the worker's socket is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        if payload is not None:
            # One write, not two: each write wakes the worker. No drain: one request at
            # a time, and a worker that stops reading is killed by the deadline anyway.
            self.transport.write(_HEADER.pack(len(payload)) + payload)
        self._deliver()
        return self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _deliver(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done() or len(self._buffer) < _HEADER.size:
            return
        (size,) = _HEADER.unpack_from(self._buffer)
        end = _HEADER.size + size
        if len(self._buffer) >= end:
            message = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            self._waiter = None
            waiter.set_result(message)


class _Worker:
    """One worker process and the daemon's end of its socket."""

    def __init__(self, process: BaseProcess, channel: _Channel) -> None:
        self.process = process
        self.channel = channel
        self.pid = -1

    @classmethod
    async def start(
        cls, context: BaseContext, memory_limit_bytes: int, timeout: float
    ) -> _Worker:
        ours, theirs = socket.socketpair()
        process = context.Process(  # type: ignore[attr-defined]  # every real context has it
            target=_worker_main,
            args=(theirs, memory_limit_bytes),
            name="monitor-parser",
            daemon=True,
        )
        try:
            # Blocking (it talks to the forkserver, starting it the first time): off the loop.
            await asyncio.to_thread(process.start)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        _, channel = await loop.create_connection(_Channel, sock=ours)
        worker = cls(process, channel)
        try:
            worker.pid = pickle.loads(await asyncio.wait_for(channel.request(None), timeout))
        except BaseException:
            worker.kill()
            raise
        return worker

    def call(self, request: _Request) -> asyncio.Future[bytes]:
        """Send a request; the future holds the pickled reply (or raises ``_WorkerGone``)."""
        return self.channel.request(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))

    def kill(self) -> None:
        """SIGKILL and close: a running parse cannot be cancelled any other way."""
        self.process.kill()
        self.channel.close()


@dataclass(slots=True)
class _Slot:
    """A place for one worker; its worker is replaced whenever the process is in doubt."""

    worker: _Worker | None = None


class ParserPool:
    """Runs ``parse_feed`` (XML guard included) in worker processes with time and memory limits.

    Use as ``async with ParserPool(...) as pool`` or call ``start()``/``aclose()``; a pool
    that was never started starts on its first ``parse``. ``timeout_seconds`` counts the
    parse only, not the wait for a free worker; ``memory_limit_mb`` is each worker's whole
    address space (an idle worker uses about 30 MB of it).
    """

    def __init__(
        self,
        workers: int = 1,
        timeout_seconds: float = 20.0,
        memory_limit_mb: int = 512,
        *,
        kill_grace_seconds: float = 2.0,
        start_timeout_seconds: float = 60.0,
        fast_path: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if timeout_seconds <= 0 or kill_grace_seconds <= 0:
            raise ValueError("timeout_seconds and kill_grace_seconds must be positive")
        self.workers = workers
        self.timeout_seconds = timeout_seconds
        self.memory_limit_mb = memory_limit_mb
        self.fast_path = fast_path
        self.kill_grace_seconds = kill_grace_seconds
        self.start_timeout_seconds = start_timeout_seconds
        self.counts: Counter[str] = Counter()
        """Outcomes and worker restarts, for metrics: ``ok``, ``parse_error``, each
        ``HostileFeedError`` kind, ``worker_died``, ``worker_started``."""
        self._context = worker_context()
        self._slots = [_Slot() for _ in range(workers)]
        self._idle: asyncio.Queue[_Slot | None] = asyncio.Queue()
        self._dead: list[BaseProcess] = []
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False

    async def __aenter__(self) -> ParserPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start every worker and wait until each answers, so the first parses don't pay
        for process start-up (and start-up failures show at daemon start, not per feed)."""
        async with self._start_lock:
            if self._closed:
                raise ParseError("the parser pool is closed")
            if self._started:
                return
            try:
                await asyncio.gather(*(self._spawn(slot) for slot in self._slots))
            except BaseException:
                for slot in self._slots:
                    self._discard(slot)
                raise
            for slot in self._slots:
                self._idle.put_nowait(slot)
            self._started = True

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for health checks, and for chaos tests)."""
        return [s.worker.pid for s in self._slots if s.worker is not None]

    async def parse(
        self,
        feed_name: str,
        body: bytes,
        *,
        content_type: str | None = None,
        base_url: str | None = None,
        max_items: int = 500,
        max_entity_declarations: int = 0,
    ) -> ParsedFeed:
        """``parse_feed`` in a worker; raises ``ParseError`` or ``HostileFeedError`` as it would,
        plus ``HostileFeedError`` kinds ``parse_timeout``, ``parse_memory``, ``parse_crashed``."""
        if self._closed:
            raise ParseError("the parser pool is closed")
        if not self._started:
            await self.start()
        request = _Request(
            feed_name, body, content_type, base_url, max_items, max_entity_declarations,
            self.timeout_seconds, self.fast_path,
        )
        slot = await self._idle.get()
        if slot is None or self._closed:
            # Closing: callers still waiting for a worker give up at once, passing the
            # slot (or aclose's sentinel) on, so shutdown never waits for a backlog.
            self._idle.put_nowait(slot)
            raise ParseError("the parser pool is closed")
        try:
            return await self._parse_on(slot, request)
        finally:
            self._idle.put_nowait(slot)

    async def aclose(self) -> None:
        """Let running parses finish (each is bounded by its own limits), refuse waiting and
        new ones with ``ParseError``, then stop the workers."""
        async with self._start_lock:
            if self._closed:
                return
            self._closed = True
        if self._started:
            for _ in self._slots:  # every slot is back once the parses holding them are done
                await self._idle.get()
            self._idle.put_nowait(None)  # wakes parse() calls still waiting for a worker
        processes = list(self._dead)
        for slot in self._slots:
            if slot.worker is not None:
                # Closing the socket is the worker's signal to exit after its current parse.
                slot.worker.channel.close()
                processes.append(slot.worker.process)
                slot.worker = None
        self._dead.clear()
        await asyncio.to_thread(_join_all, processes, self.kill_grace_seconds)

    # -- internals -----------------------------------------------------------------------------

    async def _parse_on(self, slot: _Slot, request: _Request) -> ParsedFeed:
        for attempt in (1, 2):
            if slot.worker is None:
                await self._spawn(slot)
            assert slot.worker is not None
            try:
                outcome = await self._call(slot, slot.worker, request)
            except _WorkerGone:
                self._discard(slot)
                self.counts["worker_died"] += 1
                if attempt == 1:
                    log.warning(
                        "parser worker died while parsing feed %r; retrying once in a new worker",
                        request.feed_name,
                    )
                    continue
                raise self._fail(
                    "parse_crashed",
                    f"the parser worker died twice while parsing {request.feed_name!r}",
                ) from None
            return await self._result(slot, request, outcome)
        raise AssertionError("unreachable")

    async def _call(self, slot: _Slot, worker: _Worker, request: _Request) -> tuple[Any, ...]:
        try:
            reply = await asyncio.wait_for(
                worker.call(request), request.timeout_seconds + self.kill_grace_seconds
            )
            outcome: tuple[Any, ...] = pickle.loads(reply)
            return outcome
        except TimeoutError:
            # Stuck where SIGALRM cannot interrupt it (in C code, or the process is stopped).
            self._discard(slot)
            await self._respawn_quietly(slot)
            raise self._fail(
                "parse_timeout",
                f"parsing feed {request.feed_name!r} did not stop within "
                f"{request.timeout_seconds:g} s; its worker was killed",
            ) from None
        except asyncio.CancelledError:
            self._discard(slot)  # the worker is still busy with a parse nobody awaits
            raise

    async def _result(
        self, slot: _Slot, request: _Request, outcome: tuple[Any, ...]
    ) -> ParsedFeed:
        tag = outcome[0]
        if tag == "ok":
            self.counts["ok"] += 1
            return _unpack(outcome[1])
        if tag == "timeout":
            raise self._fail(
                "parse_timeout",
                f"parsing feed {request.feed_name!r} took longer than "
                f"{request.timeout_seconds:g} s and was stopped",
            )
        if tag == "memory":
            self._discard(slot)
            await self._respawn_quietly(slot)
            raise self._fail(
                "parse_memory",
                f"parsing feed {request.feed_name!r} needed more than "
                f"{self.memory_limit_mb} MB and was stopped",
            )
        if tag == "hostile":
            raise self._fail(outcome[1], outcome[2])
        self.counts["parse_error"] += 1
        raise ParseError(outcome[1])

    def _fail(self, kind: str, message: str) -> HostileFeedError:
        self.counts[kind] += 1
        return HostileFeedError(kind, message)

    async def _spawn(self, slot: _Slot) -> None:
        self._reap()
        try:
            worker = await _Worker.start(
                self._context, self.memory_limit_mb * _MB, self.start_timeout_seconds
            )
        except Exception as exc:  # OSError, TimeoutError, _WorkerGone, a bad __main__ …
            raise ParseError(f"could not start a parser worker: {exc!r}") from exc
        slot.worker = worker
        self.counts["worker_started"] += 1
        log.debug("parser worker %d started", worker.pid)

    async def _respawn_quietly(self, slot: _Slot) -> None:
        """Replace a discarded worker now, so the next parse need not wait for it; if that
        fails, the next parse on this slot tries again."""
        if self._closed:
            return
        try:
            await self._spawn(slot)
        except ParseError as exc:
            log.warning("%s; will retry on the next parse", exc)

    def _discard(self, slot: _Slot) -> None:
        if slot.worker is not None:
            log.debug("discarding parser worker %d", slot.worker.pid)
            slot.worker.kill()
            self._dead.append(slot.worker.process)
        slot.worker = None

    def _reap(self) -> None:
        """Collect killed workers that have exited (``exitcode`` polls without blocking)."""
        self._dead = [p for p in self._dead if p.exitcode is None]


def _join_all(processes: list[BaseProcess], grace: float) -> None:
    for process in processes:
        process.join(grace)
        if process.exitcode is None:
            process.kill()
            process.join()
