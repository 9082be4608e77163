"""`page-latency`: how long a page takes from Alertmanager's webhook to the channel's HTTP request.

One fresh Redis (core 1), one `sevrouter serve` and one `sevrouter worker` (both on core 0), and a
rules directory written to a temp dir: every alert is SEV2, one incident per `alertname`, and the
team's escalation step 1 is a `webhook` channel (`page`) pointing at a sink in this process (core
1, with the generator). The team channel (`team`, told of every incident) is a second webhook on
the same sink, so both deliveries a SEV2 causes are counted, but only `page` is the page.

Per phase (`rate`: N webhooks at a fixed rate; `burst`: N as fast as the receiver takes them, on
64 connections), on freshly started processes and a flushed Redis:

1. a few warmup incidents, until their pages arrive (connection pools, lazy imports);
2. N single-alert webhooks, each a new alert with a unique `alertname` and a `bench_id` label,
   recording each one's send time and its 202;
3. the sink records when each page's request arrived (complete), keyed by the `bench_id` it reads
   from the body's `incident.alerts[*].labels`; we wait (bounded) for all N.

Latency = page arrival at the sink - webhook send time (the moment the request was written).
Afterwards the rq job records still in Redis (enqueued/started/ended) split that time into stages:
receiver, pump, queue waits, the `process_events` job, the `deliver_page` job's HTTP send.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import math
import secrets
import shlex
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from bench import loadgen
from bench.payloads import Alert, fingerprint, go_time, webhook_body
from bench.targets import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    Context,
    Proc,
    Redis,
    Sevrouter,
    StartupError,
    core_busy_seconds,
    free_port,
    http_ok,
    wait_ready,
)

NAME = "page-latency"
INCIDENTS = 1000
# Webhooks/s of the `rate` phase: about half of what one worker pages per second on its shared
# core (~50 incidents/s, see the burst row), as the harness measures latency at half saturation.
# At 50/s the worker is saturated and the latency is that of a growing queue.
RATE = 25.0
WARMUP = 5  # incidents before each phase's measurement, not counted
RATE_CONNECTIONS = 8  # open loop: enough idle connections that a slow 202 never delays a send
BURST_CONNECTIONS = 64  # closed loop, as the harness's saturation runs
PAGE_WAIT_S = 30.0  # after the last webhook, at most this long for the pages
GRACE_S = 0.5  # after the last page, for duplicates
REQUEST_TIMEOUT_S = 10.0
BUDGET_S = 85.0  # the whole part, both phases
QUIET_BUSY = 0.15
QUIET_WAIT_S = 4.0
PAGE_PATH, TEAM_PATH = "/page", "/team"
SINK_REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"

Log = Callable[[str], None]


# --- the rules ------------------------------------------------------------------------------

RULES = {
    "integrations.yaml": """\
integrations:
  - name: alertmanager
    type: alertmanager
    auth:
      bearer: {env: SEVROUTER_WEBHOOK_TOKEN}
""",
    "severities.yaml": """\
severities:
  SEV1: {response_time: 0s, update_every: 15m, paging: page}
  SEV2: {response_time: 15m, update_every: 30m, paging: page}
  SEV3: {response_time: 1h, update_every: 1h, paging: notify_then_page}
  SEV4: {response_time: next_business_day, paging: notify_business_hours}
incidents:
  flap_window: 30m
  retention: 1d
""",
    "teams.yaml": """\
channels:
  - name: page
    type: webhook
    url: {env: SEVROUTER_BENCH_PAGE_URL}
    signing_secret: {env: SEVROUTER_BENCH_SIGNING_SECRET}
    timeout: 5s
  - name: team
    type: webhook
    url: {env: SEVROUTER_BENCH_TEAM_URL}
    signing_secret: {env: SEVROUTER_BENCH_SIGNING_SECRET}
    timeout: 5s
teams:
  - name: platform
    channel: team
    escalation:
      - notify: [page]
        wait: 5m
""",
    "routing.yaml": """\
defaults:
  team: platform
  severity: SEV2
  group_by: [alertname]
rules:
  - name: everything-sev2
    severity: SEV2
""",
}


def write_rules(directory: Path) -> Path:
    """Every alert SEV2, one incident per alertname, step 1 = the `page` webhook channel."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in RULES.items():
        (directory / name).write_text(text)
    return directory


def bodies(tag: str, count: int) -> list[bytes]:
    """`count` single-alert webhooks (Alertmanager 0.25's shape), each alert and group new."""
    starts = go_time(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
    out = []
    for k in range(count):
        name = f"BenchPage{tag.capitalize()}{k:05d}"
        labels = {
            "alertname": name,
            "bench_id": f"{tag}-{k:05d}",
            "cluster": "prod-eu-west-1",
            "instance": "10.42.3.17:8443",
            "job": "kube-state-metrics",
            "namespace": "payments",
            "severity": "critical",
        }
        alert = Alert(
            labels=labels,
            annotations={
                "description": f"Benchmark alert {k} of phase {tag}.",
                "summary": "Page latency benchmark.",
            },
            starts_at=starts,
            generator_url="http://prometheus-k8s-0:9090/graph?g0.expr=vector%281%29&g0.tab=1",
            fingerprint=fingerprint(labels),
        )
        out.append(webhook_body([alert], {"alertname": name}))
    return out


# --- the sink: what the worker's webhook channel POSTs to ----------------------------------


@dataclass
class SinkState:
    """Arrivals per path and bench_id (perf_counter seconds), and what else was seen."""

    arrivals: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {PAGE_PATH: {}, TEAM_PATH: {}}
    )
    incident_of: dict[str, str] = field(default_factory=dict)  # bench_id -> incident id
    keys: dict[str, set[str]] = field(default_factory=lambda: {PAGE_PATH: set(), TEAM_PATH: set()})
    events: dict[str, int] = field(default_factory=dict)
    unparsed: int = 0
    other_paths: int = 0
    waiting: tuple[str, set[str], asyncio.Future[None]] | None = None

    def on_request(self, path: str, body: bytes, at: float) -> None:
        if path not in self.arrivals:
            self.other_paths += 1
            return
        try:
            doc = json.loads(body)
            incident = doc["incident"]
            bench_id = str(incident["alerts"][0]["labels"]["bench_id"])
            self.incident_of.setdefault(bench_id, str(incident["id"]))
            self.keys[path].add(str(doc.get("idempotency_key", "")))
            event = f"{path[1:]}:{doc.get('event', '?')}"
            self.events[event] = self.events.get(event, 0) + 1
        except (ValueError, KeyError, IndexError, TypeError):
            self.unparsed += 1
            return
        self.arrivals[path].setdefault(bench_id, []).append(at)
        if self.waiting is not None:
            wanted_path, missing, done = self.waiting
            if path == wanted_path:
                missing.discard(bench_id)
                if not missing and not done.done():
                    done.set_result(None)

    async def wait_for(self, path: str, ids: set[str], deadline: float) -> bool:
        """Until every id in `ids` has arrived on `path`, or the perf_counter `deadline`."""
        missing = {i for i in ids if i not in self.arrivals[path]}
        if not missing:
            return True
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting = (path, missing, done)
        try:
            await asyncio.wait_for(done, max(0.0, deadline - time.perf_counter()))
        except TimeoutError:
            return False
        finally:
            self.waiting = None
        return True


class _SinkProtocol(asyncio.Protocol):
    __slots__ = ("buf", "state", "transport")

    def __init__(self, state: SinkState) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        replies = 0
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = bytes(buf[:head_end])
            lower = head.lower()
            cl = lower.find(b"\r\ncontent-length:")
            length = 0
            if cl >= 0:
                eol = lower.find(b"\r\n", cl + 2)
                length = int(lower[cl + 17 : eol if eol >= 0 else len(lower)])
            end = head_end + 4 + length
            if len(buf) < end:
                break
            at = time.perf_counter()  # the whole request is here
            path = head.split(b" ", 2)[1].decode(errors="replace") if b" " in head else ""
            body = bytes(buf[head_end + 4 : end])
            del buf[:end]
            self.state.on_request(path, body, at)
            replies += 1
        if replies and self.transport is not None:
            self.transport.write(SINK_REPLY * replies)


# --- the sender: webhooks into `sevrouter serve` -------------------------------------------


@dataclass
class Sent:
    """Per webhook k (perf_counter seconds): scheduled, written, answered, status."""

    count: int
    sched: list[float] = field(init=False)
    sent: list[float] = field(init=False)
    done: list[float] = field(init=False)
    status: list[int] = field(init=False)
    errors: int = 0

    def __post_init__(self) -> None:
        self.sched = [math.nan] * self.count
        self.sent = [math.nan] * self.count
        self.done = [math.nan] * self.count
        self.status = [0] * self.count


class _Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = loadgen._Response()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, float, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for status, close in self.parser.feed(data):
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((status, time.perf_counter(), close))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))


async def send_all(
    port: int,
    requests: list[bytes],
    *,
    rate: float | None,
    connections: int,
    deadline: float,
) -> Sent:
    """POST every request: request k at t0 + k/rate (open loop), or all at once over
    `connections` keep-alive sockets (rate None). Stops scheduling at the perf_counter
    `deadline`."""
    loop = asyncio.get_running_loop()
    result = Sent(len(requests))
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def connect() -> _Client:
        _, proto = await loop.create_connection(_Client, HOST, port)
        return proto

    async def worker() -> None:
        conn: _Client | None = None
        while (k := await queue.get()) is not None:
            try:
                if conn is None or conn.transport is None:
                    conn = await connect()
                assert conn.transport is not None
                waiter: asyncio.Future[tuple[int, float, bool]] = loop.create_future()
                conn.waiter = waiter
                result.sent[k] = time.perf_counter()
                conn.transport.write(requests[k])
                status, at, close = await asyncio.wait_for(waiter, REQUEST_TIMEOUT_S)
            except (OSError, TimeoutError):  # ConnectionError is an OSError
                result.errors += 1
                if conn is not None and conn.transport is not None:
                    conn.transport.abort()
                conn = None
                continue
            result.done[k], result.status[k] = at, status
            if close and conn.transport is not None:
                conn.transport.close()
                conn = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    workers = [loop.create_task(worker()) for _ in range(connections)]
    try:
        t0 = time.perf_counter() + 0.01
        for k in range(len(requests)):
            sched = t0 + k / rate if rate else t0
            if sched > deadline:
                break
            delay = sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            result.sched[k] = sched
            queue.put_nowait(k)
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return result


# --- one phase --------------------------------------------------------------------------------


@dataclass
class Options:
    incidents: int = INCIDENTS
    rate: float = RATE
    sevrouter_cmd: str = ""
    extra_env: Mapping[str, str] = field(default_factory=dict)
    budget_s: float = BUDGET_S


def _worker_argv(serve_argv: list[str], rules: Path) -> list[str]:
    """`sevrouter worker` from the serve command line: everything before `serve`."""
    if "serve" in serve_argv:
        return [*serve_argv[: serve_argv.index("serve")], "worker", "--rules", str(rules)]
    return [serve_argv[0], "worker", "--rules", str(rules)]


def _quiet(label: str, log: Log, max_wait: float) -> float:
    """Wait (bounded) until both cores are nearly idle; returns the background load seen."""
    deadline = time.monotonic() + max_wait
    while True:
        before = core_busy_seconds(SERVER_CPU) + core_busy_seconds(CLIENT_CPU)
        time.sleep(0.3)
        busy = (core_busy_seconds(SERVER_CPU) + core_busy_seconds(CLIENT_CPU) - before) / 0.3
        if busy < QUIET_BUSY or time.monotonic() > deadline:
            if busy >= QUIET_BUSY:
                log(f"{label} machine still busy ({busy:.0%} of a core), measuring anyway")
            return busy
        log(f"{label} machine busy ({busy:.0%} of a core), waiting")
        time.sleep(0.7)


def _cpu_probe(procs: Mapping[str, Proc], redis: Redis) -> dict[str, float]:
    values = {name: proc.cpu_seconds() for name, proc in procs.items()}
    values["redis"] = redis.proc.cpu_seconds()
    values["harness"] = time.process_time()
    values["core0"] = core_busy_seconds(SERVER_CPU)
    values["core1"] = core_busy_seconds(CLIENT_CPU)
    values["wall"] = time.perf_counter()
    return values


@dataclass
class PhaseRaw:
    sent: Sent
    state: SinkState
    ids: list[str]
    measured_from: float
    measured_to: float
    complete: bool
    warmup_ok: bool
    probe_start: dict[str, float]
    probe_end: dict[str, float]
    wall_offset: float  # time.time() - time.perf_counter()


async def _phase_async(
    sink_port: int,
    serve_port: int,
    head: bytes,
    tag: str,
    n: int,
    rate: float | None,
    deadline: float,
    probe: Callable[[], dict[str, float]],
) -> PhaseRaw:
    loop = asyncio.get_running_loop()
    state = SinkState()
    server = await loop.create_server(lambda: _SinkProtocol(state), HOST, sink_port, backlog=1024)
    try:

        def encode(items: list[bytes]) -> list[bytes]:
            pre, post = head.split(b"{}")
            return [pre + str(len(b)).encode() + post + b for b in items]

        warm_ids = [f"w{tag}-{k:05d}" for k in range(WARMUP)]
        warm = await send_all(
            serve_port,
            encode(bodies(f"w{tag}", WARMUP)),
            rate=None,
            connections=WARMUP,
            deadline=deadline,
        )
        warmup_ok = all(200 <= s < 300 for s in warm.status) and await state.wait_for(
            PAGE_PATH, set(warm_ids), min(deadline, time.perf_counter() + 15.0)
        )
        await state.wait_for(TEAM_PATH, set(warm_ids), min(deadline, time.perf_counter() + 5.0))
        requests = encode(bodies(tag, n))  # before timing
        ids = [f"{tag}-{k:05d}" for k in range(n)]
        wall_offset = time.time() - time.perf_counter()
        probe_start = probe()
        sent = await send_all(
            serve_port,
            requests,
            rate=rate,
            connections=RATE_CONNECTIONS if rate else BURST_CONNECTIONS,
            deadline=deadline,
        )
        accepted = {ids[k] for k in range(n) if 200 <= sent.status[k] < 300}
        wait_until = min(deadline, time.perf_counter() + PAGE_WAIT_S)
        complete = await state.wait_for(PAGE_PATH, accepted, wait_until)
        pages = state.arrivals[PAGE_PATH]
        last = max((min(pages[i]) for i in ids if i in pages), default=time.perf_counter())
        probe_end = probe()
        # Late duplicates, and the team notifications that queue behind the last pages.
        await state.wait_for(TEAM_PATH, accepted, min(deadline, time.perf_counter() + 5.0))
        await asyncio.sleep(GRACE_S)
        return PhaseRaw(
            sent,
            state,
            ids,
            probe_start["wall"],
            last,
            complete,
            warmup_ok,
            probe_start,
            probe_end,
            wall_offset,
        )
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)


def _start(
    ctx: Context,
    options: Options,
    rules: Path,
    token: str,
    sink_port: int,
    serve_port: int,
    redis: Redis,
) -> dict[str, Proc]:
    env = {
        "REDIS_URL": ctx.redis_url,
        "SEVROUTER_WEBHOOK_TOKEN": token,
        "SEVROUTER_BENCH_PAGE_URL": f"http://{HOST}:{sink_port}{PAGE_PATH}",
        "SEVROUTER_BENCH_TEAM_URL": f"http://{HOST}:{sink_port}{TEAM_PATH}",
        "SEVROUTER_BENCH_SIGNING_SECRET": secrets.token_hex(16),
        **options.extra_env,
    }
    serve_argv = shlex.split(options.sevrouter_cmd.format(host=HOST, port=serve_port, rules=rules))
    procs: dict[str, Proc] = {}
    try:
        serve = procs["serve"] = ctx.procs.spawn(
            "page-latency-serve", serve_argv, cpu=SERVER_CPU, env=env
        )
        worker = procs["worker"] = ctx.procs.spawn(
            "page-latency-worker", _worker_argv(serve_argv, rules), cpu=SERVER_CPU, env=env
        )
        wait_ready(serve, lambda: http_ok(serve_port, "/healthz"), "GET /healthz = 200")

        def worker_up() -> bool:
            try:
                started = b"worker_started" in worker.log.read_bytes()
            except OSError:
                return False
            # The pump created its consumer group (and with it the stream) in the flushed Redis.
            return started and redis.command("EXISTS", "sevrouter:events").startswith(b":1")

        wait_ready(worker, worker_up, "worker_started and its consumer group")
    except BaseException:
        for proc in procs.values():
            ctx.procs.stop(proc)
        raise
    return procs


# --- analysis -------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _dist_ms(values: list[float]) -> dict[str, float | None]:
    def ms(v: float) -> float | None:
        return None if math.isnan(v) else round(v * 1e3, 3)

    return {
        "n": len(values),
        "min": ms(min(values) if values else math.nan),
        "p50": ms(_pct(values, 0.5)),
        "p90": ms(_pct(values, 0.9)),
        "p99": ms(_pct(values, 0.99)),
        "max": ms(max(values) if values else math.nan),
        "mean": ms(statistics.fmean(values) if values else math.nan),
    }


@dataclass
class JobTimes:
    """From rq's job hashes, wall-clock seconds. `by_incident`: the first `process_events` job
    and the step-1 (`page_*`) and team (`team_*`) `deliver_page` jobs of each incident, as
    `{prefix}_enqueued/_started/_ended`; `every`: (enqueued, started, ended) of every job."""

    by_incident: dict[str, dict[str, float]] = field(default_factory=dict)
    every: list[tuple[float, float, float]] = field(default_factory=list)


def job_times(redis_url: str) -> JobTimes:
    """Read every rq job of the run (they are kept `result_ttl`, an hour) from Redis."""
    from redis import Redis as Client
    from rq.job import Job

    client = Client.from_url(redis_url)
    try:
        ids = [
            key.decode()[len("rq:job:") :]
            for key in client.scan_iter(match="rq:job:*", count=2000)
            if key.count(b":") == 2
        ]
        jobs = Job.fetch_many(ids, connection=client)
    finally:
        client.close()

    def wall(value: datetime | None) -> float:
        if value is None:
            return math.nan
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()

    result = JobTimes()
    out = result.by_incident
    for job in jobs:
        if job is None:
            continue
        result.every.append((wall(job.enqueued_at), wall(job.started_at), wall(job.ended_at)))
        try:
            name, args = job.func_name, job.args
        except Exception:  # noqa: BLE001, S112 - a job we cannot decode is left out, no more
            continue
        if name is None:
            continue
        if name.endswith("process_events"):
            incident, prefix = str(args[0]), "events"
        elif name.endswith("deliver_page"):
            incident, step = str(args[0]).split(":")[:2]
            prefix = {"1": "page", "0": "team"}.get(step, "")
            if not prefix:
                continue
        else:
            continue
        times = out.setdefault(incident, {})
        enqueued = wall(job.enqueued_at)
        if f"{prefix}_enqueued" in times and not enqueued < times[f"{prefix}_enqueued"]:
            continue  # keep the first job (a retry or a second event batch comes later)
        times[f"{prefix}_enqueued"] = enqueued
        times[f"{prefix}_started"] = wall(job.started_at)
        times[f"{prefix}_ended"] = wall(job.ended_at)
    return result


def worker_gaps(
    every: list[tuple[float, float, float]], start: float, end: float
) -> dict[str, Any]:
    """What the rq worker does between jobs while work is waiting: for consecutive jobs a, b
    (by start) with b queued before a ended, b.started - a.ended. Also the busiest queue."""
    jobs = sorted(
        (j for j in every if not any(math.isnan(t) for t in j) and start <= j[1] <= end),
        key=lambda j: j[1],
    )
    gaps = [b[1] - a[2] for a, b in itertools.pairwise(jobs) if b[0] <= a[2]]
    marks = sorted([(j[0], 1) for j in jobs] + [(j[1], -1) for j in jobs])
    depth = deepest = 0
    for _, step in marks:
        depth += step
        deepest = max(deepest, depth)
    busy = sum(j[2] - j[1] for j in jobs)
    return {
        "jobs": len(jobs),
        "between_jobs_ms": _dist_ms(gaps),
        "in_jobs_s": round(busy, 3),
        "between_jobs_s": round(sum(gaps), 3),
        "max_queue": deepest,
    }


STAGES = (
    ("receiver", "webhook sent -> 202"),
    ("pump", "202 -> events job queued"),
    ("events_wait", "events job queued -> started"),
    ("events_run", "events job started -> page job queued"),
    ("page_wait", "page job queued -> started"),
    ("page_send", "page job started -> request at sink"),
)


def analyse(raw: PhaseRaw, times: JobTimes, rate: float | None) -> dict[str, Any]:
    sent, state, jobs = raw.sent, raw.state, times.by_incident
    pages, team = state.arrivals[PAGE_PATH], state.arrivals[TEAM_PATH]
    n_sched = sum(1 for t in sent.sched if not math.isnan(t))
    ok = [k for k in range(sent.count) if 200 <= sent.status[k] < 300]
    non2xx = sum(1 for k in range(sent.count) if sent.status[k] and not 200 <= sent.status[k] < 300)
    latency, team_latency, ack = [], [], []
    for k in ok:
        ack.append(sent.done[k] - sent.sent[k])
        bench_id = raw.ids[k]
        if bench_id in pages:
            latency.append(min(pages[bench_id]) - sent.sent[k])
        if bench_id in team:
            team_latency.append(min(team[bench_id]) - sent.sent[k])
    measured = set(raw.ids)
    duplicates = sum(len(v) - 1 for i, v in pages.items() if i in measured)
    team_duplicates = sum(len(v) - 1 for i, v in team.items() if i in measured)
    incidents = {state.incident_of[i] for i in measured if i in state.incident_of}
    stray = sum(1 for i in pages if i not in measured and not i.startswith("w"))

    stages: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    off = raw.wall_offset
    for k in ok:
        bench_id = raw.ids[k]
        incident = state.incident_of.get(bench_id)
        got = jobs.get(incident or "", {})
        if bench_id not in pages or not got:
            continue
        points = [
            sent.sent[k] + off,
            sent.done[k] + off,
            got.get("events_enqueued", math.nan),
            got.get("events_started", math.nan),
            got.get("page_enqueued", math.nan),
            got.get("page_started", math.nan),
            min(pages[bench_id]) + off,
        ]
        if any(math.isnan(p) for p in points):
            continue
        for (name, _), a, b in zip(STAGES, points[:-1], points[1:], strict=True):
            stages[name].append(b - a)
    events_run = [
        t["events_ended"] - t["events_started"]
        for t in jobs.values()
        if not math.isnan(t.get("events_ended", math.nan))
        and not math.isnan(t.get("events_started", math.nan))
    ]
    page_run = [
        t["page_ended"] - t["page_started"]
        for t in jobs.values()
        if not math.isnan(t.get("page_ended", math.nan))
        and not math.isnan(t.get("page_started", math.nan))
    ]
    team_run = [
        t["team_ended"] - t["team_started"]
        for t in jobs.values()
        if not math.isnan(t.get("team_ended", math.nan))
        and not math.isnan(t.get("team_started", math.nan))
    ]

    start, end = raw.probe_start, raw.probe_end
    wall = end["wall"] - start["wall"]

    def share(key: str) -> float | None:
        if wall <= 0 or key not in start or key not in end:
            return None
        return round((end[key] - start[key]) / wall, 3)

    ours = sum(share(k) or 0.0 for k in ("serve", "worker", "redis", "harness"))
    background = max(0.0, (share("core0") or 0.0) + (share("core1") or 0.0) - ours)
    sends = [sent.sent[k] for k in range(sent.count) if not math.isnan(sent.sent[k])]
    lag = [
        sent.sent[k] - sent.sched[k]
        for k in range(sent.count)
        if not math.isnan(sent.sent[k]) and not math.isnan(sent.sched[k])
    ]
    send_span = (max(sends) - min(sends)) if len(sends) > 1 else 0.0
    return {
        "phase": "rate" if rate else "burst",
        "target_rate": rate,
        "achieved_send_rate": round((len(sends) - 1) / send_span, 1) if send_span > 0 else None,
        "incidents": sent.count,
        "sent": n_sched,
        "accepted_2xx": len(ok),
        "non_2xx": non2xx,
        "request_errors": sent.errors,
        "pages": len([i for i in measured if i in pages]),
        "duplicates": duplicates,
        "team_notifications": len([i for i in measured if i in team]),
        "team_duplicates": team_duplicates,
        "distinct_incidents": len(incidents),
        "stray_pages": stray,
        "unparsed_requests": state.unparsed,
        "other_paths": state.other_paths,
        "events_seen": dict(sorted(state.events.items())),
        "complete": raw.complete,
        "warmup_ok": raw.warmup_ok,
        "page_latency_ms": _dist_ms(latency),
        "team_latency_ms": _dist_ms(team_latency),
        "webhook_202_ms": _dist_ms(ack),
        "send_lag_ms": _dist_ms(lag),
        "stages_ms": {name: _dist_ms(values) for name, values in stages.items()},
        "job_run_ms": {
            "process_events": _dist_ms(events_run),
            "deliver_page": _dist_ms(page_run),
            "deliver_team": _dist_ms(team_run),
        },
        "pages_per_s": round(len(latency) / (raw.measured_to - raw.measured_from), 1)
        if latency and raw.measured_to > raw.measured_from
        else None,
        "measured_s": round(raw.measured_to - raw.measured_from, 2),
        "rq_worker": worker_gaps(
            times.every, raw.measured_from + raw.wall_offset, raw.measured_to + raw.wall_offset
        ),
        "cpu_share": {k: share(k) for k in ("serve", "worker", "redis", "harness")},
        "background_cpu": round(background, 3),
    }


# --- the part run by bench.run ----------------------------------------------------------------


def measure(
    runner: asyncio.Runner,
    ctx: Context,
    redis: Redis,
    options: Options,
    log: Log,
) -> dict[str, Any]:
    """Both phases on fresh processes; returns what goes under `page_latency` in the JSON."""
    started = time.monotonic()
    budget = max(options.budget_s, 1.2 * options.incidents / options.rate + 45.0)
    deadline_mono = started + budget
    rules = write_rules(ctx.tmp / "page-latency-rules")
    token = secrets.token_hex(12)
    target = Sevrouter(options.sevrouter_cmd, token, options.extra_env)
    phases: list[dict[str, Any]] = []
    for tag, rate in (("r", options.rate), ("b", None)):
        label = f"[{NAME} {f'{rate:g}/s' if rate else 'burst'}]"
        remaining = deadline_mono - time.monotonic()
        phase: dict[str, Any] = {"phase": "rate" if rate else "burst", "target_rate": rate}
        # A phase needs its start-up, its sending and some time for the pages.
        need = 10.0 + (options.incidents / rate if rate else 5.0)
        if remaining < need:
            phase |= {"status": "skipped", "note": f"out of time budget ({budget:.0f}s)"}
            log(f"{label} skipped: {phase['note']}")
            phases.append(phase)
            continue
        redis.flush()
        before = _quiet(label, log, min(QUIET_WAIT_S, remaining - need))
        sink_port, serve_port = free_port(), free_port()
        log(f"{label} starting serve + worker")
        try:
            procs = _start(ctx, options, rules, token, sink_port, serve_port, redis)
        except StartupError as exc:
            phase |= {"status": "skipped", "note": f"did not start: {exc}"}
            log(f"{label} {phase['note']}")
            phases.append(phase)
            continue
        try:
            deadline = time.perf_counter() + (deadline_mono - time.monotonic()) - 3.0
            raw = runner.run(
                _phase_async(
                    sink_port,
                    serve_port,
                    target.request_head(serve_port),
                    tag,
                    options.incidents,
                    rate,
                    deadline,
                    functools.partial(_cpu_probe, procs, redis),
                )
            )
            exited = {name: p.popen.poll() for name, p in procs.items()}
        finally:
            for proc in reversed(list(procs.values())):
                ctx.procs.stop(proc)
        try:
            jobs = job_times(ctx.redis_url)
        except Exception as exc:  # noqa: BLE001 - the breakdown is a bonus, the latency is not
            log(f"{label} no job breakdown: {exc!r}")
            jobs = JobTimes()
        phase |= analyse(raw, jobs, rate)
        phase["status"] = "ok"
        phase["background_before"] = round(before, 3)
        notes = []
        if not raw.warmup_ok:
            notes.append("warmup pages missing")
        if not raw.complete:
            notes.append(f"only {phase['pages']} of {phase['accepted_2xx']} pages in time")
        for name, code in exited.items():
            if code is not None:
                notes.append(f"{name} exited with {code}: {procs[name].tail()}")
        phase["note"] = "; ".join(notes)
        lat = phase["page_latency_ms"]
        log(
            f"{label} {phase['pages']}/{phase['sent']} pages, p50 {lat['p50']} ms, "
            f"p99 {lat['p99']} ms, max {lat['max']} ms, duplicates {phase['duplicates']}"
        )
        phases.append(phase)
    return {
        "config": {
            "incidents": options.incidents,
            "rate": options.rate,
            "warmup_incidents": WARMUP,
            "rate_connections": RATE_CONNECTIONS,
            "burst_connections": BURST_CONNECTIONS,
            "page_wait_s": PAGE_WAIT_S,
            "budget_s": round(budget, 1),
            "rules": {name: text for name, text in RULES.items()},
        },
        "phases": phases,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def render(result: Mapping[str, Any]) -> str:
    cfg = result["config"]
    out = [
        f"page latency: webhook sent -> the page's HTTP request at the channel's sink; "
        f"{cfg['incidents']} single-alert SEV2 incidents per phase ({result['elapsed_s']}s)",
        "  sevrouter serve + sevrouter worker on core 0; redis, generator and sink on core 1; "
        f"{cfg['warmup_incidents']} warmup incidents first",
        "",
    ]
    header = (
        f"{'phase':<12}|{'sent':>6} {'2xx':>6} {'pages':>6} {'dups':>5} {'team':>6} |"
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} |{'202 p50':>8} "
        f"{'202 p99':>8} |{'pages/s':>8} |{'serve':>6} {'worker':>7} {'other':>6}"
    )
    out += [header, "-" * len(header)]
    ok_phases = []
    for phase in result["phases"]:
        name = f"rate {phase['target_rate']:g}/s" if phase["target_rate"] else "burst"
        if phase.get("status") != "ok":
            out.append(f"{name:<12}| {phase.get('status', '?').upper()}: {phase.get('note', '')}")
            continue
        ok_phases.append((name, phase))
        lat, ack, cpu = phase["page_latency_ms"], phase["webhook_202_ms"], phase["cpu_share"]
        row = (
            f"{name:<12}|{phase['sent']:>6} {phase['accepted_2xx']:>6} {phase['pages']:>6} "
            f"{phase['duplicates']:>5} {phase['team_notifications']:>6} |"
            f"{_ms(lat['p50']):>8} {_ms(lat['p90']):>8} {_ms(lat['p99']):>8} "
            f"{_ms(lat['max']):>8} |{_ms(ack['p50']):>8} {_ms(ack['p99']):>8} |"
            f"{phase['pages_per_s'] or '-':>8} |{_share(cpu['serve']):>6} "
            f"{_share(cpu['worker']):>7} {_share(phase['background_cpu']):>6}"
        )
        if phase.get("note"):
            row += f"  ! {phase['note']}"
        out.append(row)
    if ok_phases:
        out += ["", "where the time goes, p50 / p99 ms (from rq's job records):"]
        width = max(len(text) for _, text in STAGES)
        out.append(f"  {'stage':<{width}} " + "".join(f"| {name:>17} " for name, _ in ok_phases))
        for key, text in STAGES:
            cells = ""
            for _, phase in ok_phases:
                d = phase["stages_ms"][key]
                cells += f"| {_ms(d['p50']):>8} {_ms(d['p99']):>8} "
            out.append(f"  {text:<{width}} {cells}")
        for job in ("process_events", "deliver_page", "deliver_team"):
            text = f"{job} job run time"
            cells = ""
            for _, phase in ok_phases:
                d = phase["job_run_ms"][job]
                cells += f"| {_ms(d['p50']):>8} {_ms(d['p99']):>8} "
            out.append(f"  {text:<{width}} {cells}")
        text = "rq worker between two jobs"
        cells = "".join(
            f"| {_ms(p['rq_worker']['between_jobs_ms']['p50']):>8} "
            f"{_ms(p['rq_worker']['between_jobs_ms']['p99']):>8} "
            for _, p in ok_phases
        )
        out.append(f"  {text:<{width}} {cells}")
        for _, phase in ok_phases:
            rq = phase["rq_worker"]
            name = f"rate {phase['target_rate']:g}/s" if phase["target_rate"] else "burst"
            out.append(
                f"  {name}: {rq['jobs']} jobs, {rq['in_jobs_s']}s in jobs + "
                f"{rq['between_jobs_s']}s between jobs with work waiting; "
                f"up to {rq['max_queue']} jobs queued"
            )
    out += [
        "",
        "pages: incidents whose page reached the sink (dups: extra deliveries of one page);",
        "team: the team-channel notification each incident also sends (after the page).",
        "p50..max: page arrival at the sink - webhook send time; 202: the webhook's own answer.",
        "pages/s: pages over first send -> last page. serve/worker: share of one core used.",
    ]
    return "\n".join(out)
