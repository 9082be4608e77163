"""A small HTTP/1.1 load generator: asyncio + uvloop protocols over raw keep-alive sockets.

Why not wrk or httpx: httpx spends far more CPU per request than a one-core server under test, so
it would measure itself. wrk is fast but closed-loop only (the open-loop wrk2 is not packaged for
Debian), and we need an open-loop, coordinated-omission-free mode for "p99 at half saturation";
one generator for both modes keeps the two measurements comparable. Every request is encoded
before timing starts, a response is parsed only as far as its status line and framing
(Content-Length or chunked), and each connection is a bare `asyncio.Protocol` with no
per-request task or future. On one core this sustains several times the request rate of the
fastest target (measure it: `python -m bench.run --only sink`, and see the generator's CPU column).

Two modes:

* `saturate`: closed loop; each of N connections sends its next request as soon as the previous
  response arrives. Throughput and latency count responses that complete inside the window.
* `fixed_rate`: open loop; request k is *scheduled* at t0 + k/rate whether or not the server has
  kept up, sent on the first idle connection, and its latency runs from the scheduled time (so a
  stalled server is charged for the requests it delayed, i.e. no coordinated omission). Requests
  that never complete by the end of the grace period count as errors and as infinite latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import math
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

Probe = Callable[[], dict[str, float]]

GRACE_S = 3.0  # how long to wait for in-flight requests after the window closes
_TIMER_FLOOR_S = 0.001  # uvloop timers have 1 ms resolution; shorter ones would spin
_TICK_S = 0.0001  # open-loop dispatcher period when a timerfd is available
_CLOCK_MONOTONIC = 1


@dataclass
class RunResult:
    mode: str
    window_s: float
    completed: int = 0  # responses (any status) completed inside the window
    statuses: Counter[int] = field(default_factory=Counter)
    conn_errors: int = 0  # connection failures/resets (each loses its in-flight request)
    unfinished: int = 0  # scheduled (open loop) or sent (closed loop) but never answered
    latencies: list[float] = field(default_factory=list)  # seconds, window only
    sent: int = 0
    target_rate: float | None = None
    send_lag: list[float] = field(default_factory=list)  # open loop: actual - scheduled send
    probe_start: dict[str, float] = field(default_factory=dict)
    probe_end: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.completed / self.window_s

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def ok(self) -> int:
        return self.completed - self.non_2xx

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in seconds; unfinished requests count as infinitely slow."""
        samples = sorted(self.latencies)
        total = len(samples) + self.unfinished
        if total == 0:
            return math.nan
        rank = max(1, math.ceil(q * total))
        return samples[rank - 1] if rank <= len(samples) else math.inf

    def cpu_share(self, key: str) -> float:
        """Fraction of one core that `key`'s cumulative CPU seconds used during the window."""
        if key not in self.probe_start or key not in self.probe_end:
            return math.nan
        wall = self.probe_end["wall"] - self.probe_start["wall"]
        used = self.probe_end[key] - self.probe_start[key]
        return used / wall if wall > 0 and used >= 0 else math.nan


class _Response:
    """Incremental parser for a stream of HTTP/1.1 responses; returns (status, close) per reply."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bool]]:
        buf = self.buf
        buf += data
        done: list[tuple[int, bool]] = []
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                return done
            head = bytes(buf[:head_end]).lower()
            status = int(head[9:12])
            body_start = head_end + 4
            close = b"\r\nconnection: close" in head
            cl = head.find(b"\r\ncontent-length:")
            if cl >= 0:
                eol = head.find(b"\r\n", cl + 2)
                length = int(head[cl + 17 : eol if eol >= 0 else len(head)])
                end = body_start + length
                if len(buf) < end:
                    return done
            elif b"\r\ntransfer-encoding: chunked" in head:
                end = _chunked_end(buf, body_start)
                if end < 0:
                    return done
            elif status in (204, 304) or status < 200:
                end = body_start
            else:  # no framing: the body runs until the server closes
                return done
            del buf[:end]
            if status >= 200:
                done.append((status, close))


def _chunked_end(buf: bytearray, pos: int) -> int:
    """Offset just past a complete chunked body starting at `pos`, or -1 if incomplete."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", eol)
            if buf[eol : eol + 4] == b"\r\n\r\n":
                return eol + 4
            return -1 if trailer_end < 0 else trailer_end + 4
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return -1


class _Conn(asyncio.Protocol):
    __slots__ = ("gen", "parser", "sched", "sent_at", "transport")

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.parser = _Response()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0  # when the in-flight request was written; 0.0 when idle
        self.sched = 0.0  # when it was scheduled (open loop) or written (closed loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes, sched: float) -> None:
        assert self.transport is not None
        self.sched = sched
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        for status, close in self.parser.feed(data):
            self.gen.on_response(self, status, close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.gen.on_lost(self)


class _Generator:
    """Shared state of one run; subclasses decide when a connection sends its next request."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[bytes],
        start_index: int,
        connections: int,
        warmup: float,
        duration: float,
        probe: Probe | None,
        mode: str,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.requests = requests
        self.index = start_index
        self.connections = connections
        self.probe = probe
        self.warmup, self.duration = warmup, duration
        self.start_clock()
        self.result = RunResult(mode=mode, window_s=duration)
        self.conns: list[_Conn] = []
        self.inflight = 0
        self.stopping = False  # no new requests
        self.closing = False  # connections are being torn down on purpose
        self.drained = self.loop.create_future()
        self.probe_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def start_clock(self) -> None:
        """Fix the schedule: warmup from t0, then the measured window."""
        self.t0 = time.perf_counter() + 0.01
        self.win_start = self.t0 + self.warmup
        self.win_end = self.win_start + self.duration

    def next_request(self) -> bytes:
        req = self.requests[self.index % len(self.requests)]
        self.index += 1
        self.result.sent += 1
        return req

    async def connect_all(self) -> None:
        async def one() -> _Conn:
            _, proto = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
            return proto

        self.conns = list(await asyncio.gather(*(one() for _ in range(self.connections))))

    def _probe(self, into: dict[str, float]) -> None:
        if self.probe is not None:
            into.update(self.probe())
        into.setdefault("wall", time.perf_counter())
        into["gen"] = time.process_time()

    def schedule_probes(self) -> None:
        async def probes() -> None:
            await asyncio.sleep(max(0.0, self.win_start - time.perf_counter()))
            self._probe(self.result.probe_start)
            await asyncio.sleep(max(0.0, self.win_end - time.perf_counter()))
            if not self.result.probe_end:
                self._probe(self.result.probe_end)

        self.probe_task = self.loop.create_task(probes())

    def record(self, conn: _Conn, status: int, now: float) -> None:
        raise NotImplementedError

    def on_response(self, conn: _Conn, status: int, close: bool) -> None:
        now = time.perf_counter()
        self.inflight -= 1
        self.record(conn, status, now)
        conn.sent_at = 0.0
        if close and conn.transport is not None:
            conn.transport.close()  # on_lost reconnects it
            return
        self.after_response(conn, now)
        self.check_drained()

    def after_response(self, conn: _Conn, now: float) -> None:
        raise NotImplementedError

    def on_lost(self, conn: _Conn) -> None:
        if self.closing:
            return
        if conn.sent_at:
            self.inflight -= 1
            self.result.conn_errors += 1
            self.lost_request(conn)
        if conn in self.conns:
            self.conns.remove(conn)
        if not self.stopping:
            self._spawn(self._reconnect())
        self.check_drained()

    def lost_request(self, conn: _Conn) -> None:
        """Hook: account a request that a dropped connection took with it."""

    def abandon(self, conns: list[_Conn]) -> None:
        """Hook: account requests still unanswered when the grace period ran out."""
        self.result.unfinished += len(conns)

    async def _reconnect(self) -> None:
        try:
            _, proto = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError:
            self.result.conn_errors += 1
            await asyncio.sleep(0.05)
            if not self.stopping:
                self._spawn(self._reconnect())
            return
        self.conns.append(proto)
        self.on_idle(proto)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        """Tear everything down at once (normal end, error, or Ctrl-C)."""
        self.stopping = self.closing = True
        for task in [*self.tasks, self.probe_task]:
            if task is not None:
                task.cancel()
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.abort()

    def on_idle(self, conn: _Conn) -> None:
        """A connection is ready to send (new or reconnected)."""
        raise NotImplementedError

    def check_drained(self) -> None:
        if self.stopping and self.inflight <= 0 and not self.drained.done():
            self.drained.set_result(None)

    async def run(self) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        self.stopping = True
        if not self.result.probe_end:
            self._probe(self.result.probe_end)
        self.check_drained()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.drained), GRACE_S)
        self.abandon([c for c in self.conns if c.sent_at])
        self.close()
        await asyncio.sleep(0)


class _ClosedLoop(_Generator):
    def record(self, conn: _Conn, status: int, now: float) -> None:
        if self.win_start <= now < self.win_end:
            res = self.result
            res.completed += 1
            res.statuses[status] += 1
            res.latencies.append(now - conn.sent_at)

    def after_response(self, conn: _Conn, now: float) -> None:
        if now < self.win_end and not self.stopping:
            self.on_idle(conn)

    def on_idle(self, conn: _Conn) -> None:
        if self.stopping or time.perf_counter() >= self.win_end:
            return
        self.inflight += 1
        conn.send(self.next_request(), 0.0)

    async def run(self) -> None:
        self.schedule_probes()
        delay = self.t0 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for conn in list(self.conns):
            self.on_idle(conn)
        await asyncio.sleep(max(0.0, self.win_end - time.perf_counter()))
        await self.finish()


class _OpenLoop(_Generator):
    def __init__(self, *args: Any, rate: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interval = 1.0 / rate
        self.result.target_rate = rate
        self.k = 0  # index of the next request in the schedule
        self.pending: deque[float] = deque()  # scheduled times not yet sent
        self.idle: list[_Conn] = []

    def _in_window(self, sched: float) -> bool:
        return self.win_start <= sched < self.win_end

    def record(self, conn: _Conn, status: int, now: float) -> None:
        if self._in_window(conn.sched):
            res = self.result
            res.completed += 1
            res.statuses[status] += 1
            res.latencies.append(now - conn.sched)

    def lost_request(self, conn: _Conn) -> None:
        if self._in_window(conn.sched):
            self.result.unfinished += 1

    def abandon(self, conns: list[_Conn]) -> None:
        self.result.unfinished += sum(1 for c in conns if self._in_window(c.sched))

    def after_response(self, conn: _Conn, now: float) -> None:
        self.on_idle(conn)

    def on_idle(self, conn: _Conn) -> None:
        if self.pending:
            self._send(conn, self.pending.popleft())
        else:
            self.idle.append(conn)

    def _send(self, conn: _Conn, sched: float) -> None:
        self.inflight += 1
        conn.send(self.next_request(), sched)
        if self._in_window(sched):
            self.result.send_lag.append(conn.sent_at - sched)

    def _dispatch_due(self) -> bool:
        """Send (or queue) every request whose time has come; False once the schedule is done."""
        now = time.perf_counter()
        sched = self.t0 + self.k * self.interval
        while sched <= now and sched < self.win_end:
            if self.idle:
                self._send(self.idle.pop(), sched)
            else:
                self.pending.append(sched)
            self.k += 1
            sched = self.t0 + self.k * self.interval
        return sched < self.win_end

    async def _tick_with_timerfd(self, timer: _TimerFd) -> None:
        done = self.loop.create_future()

        def on_tick() -> None:
            timer.drain()
            if not self._dispatch_due() and not done.done():
                done.set_result(None)

        self.loop.add_reader(timer.fd, on_tick)
        try:
            await done
        finally:
            self.loop.remove_reader(timer.fd)

    async def _tick_with_sleep(self) -> None:
        while self._dispatch_due():
            next_sched = self.t0 + self.k * self.interval
            await asyncio.sleep(max(_TIMER_FLOOR_S, next_sched - time.perf_counter()))

    async def run(self) -> None:
        self.schedule_probes()
        self.idle = list(self.conns)
        self.k = 0
        timer = _TimerFd.create(_TICK_S)
        if timer is None:
            await self._tick_with_sleep()
        else:
            try:
                await self._tick_with_timerfd(timer)
            finally:
                timer.close()
        # Whatever is still queued has its latency clock running; let it drain, then give up.
        deadline = time.perf_counter() + GRACE_S
        while self.pending and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        self.result.unfinished += sum(1 for s in self.pending if self._in_window(s))
        self.pending.clear()
        await self.finish()


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _TimerFd:
    """A periodic Linux timerfd. asyncio/uvloop timers have 1 ms resolution, which would send
    open-loop requests up to ~2 ms late in bursts (and charge that to the server); a 100 us
    tick keeps the schedule within ~0.1 ms for a few percent of one core."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def create(cls, period_s: float) -> _TimerFd | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        ns = int(period_s * 1e9)
        tick = _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
        spec = _Itimerspec(tick, tick)
        if libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
            os.close(fd)
            return None
        return cls(fd)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


async def _run(gen: _Generator) -> RunResult:
    try:
        await gen.connect_all()
        gc.collect()
        gen.start_clock()  # connecting is not part of the warmup
        gc.disable()  # a collection pause would show up as server latency
        await gen.run()
    finally:
        gc.enable()
        gen.close()
    return gen.result


async def saturate(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    start_index: int = 0,
    connections: int = 64,
    warmup: float = 1.0,
    duration: float = 5.0,
    probe: Probe | None = None,
) -> RunResult:
    """Closed loop: as many requests as the server will answer, on `connections` sockets."""
    gen = _ClosedLoop(
        host, port, requests, start_index, connections, warmup, duration, probe, "saturate"
    )
    return await _run(gen)


async def fixed_rate(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    start_index: int = 0,
    connections: int = 64,
    warmup: float = 1.0,
    duration: float = 5.0,
    probe: Probe | None = None,
) -> RunResult:
    """Open loop at `rate` requests/s; latency measured from each request's scheduled time."""
    gen = _OpenLoop(
        host,
        port,
        requests,
        start_index,
        connections,
        warmup,
        duration,
        probe,
        "fixed_rate",
        rate=rate,
    )
    return await _run(gen)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when available (it roughly doubles what one core can generate)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
