"""`make bench`: sevrouter vs a bare Starlette endpoint vs Prometheus Alertmanager, in one run.

For each target in turn (alone on the machine, pinned to core 0; this process, the load generator
and Redis on core 1) and each scenario (webhooks of 1 and 20 alerts, `fresh` or `repeated`):

1. start the target from scratch (and FLUSHALL Redis), send one preflight request;
2. saturate it (closed loop) for --duration seconds after a warmup;
3. drive it open-loop at half the saturation rate and take p50/p99 from scheduled send times.

Prints one table and the goal ratios, and writes bench/results/latest.json. Not a test: it never
fails on numbers. Usage: python -m bench.run [--quick] [--duration S] [--only TARGET ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench import loadgen, report
from bench.payloads import Bodies, FreshPool, repeated_bodies
from bench.targets import (
    CLIENT_CPU,
    DEFAULT_SEVROUTER_CMD,
    HOST,
    SERVER_CPU,
    Alertmanager,
    Bare,
    Context,
    Proc,
    Processes,
    Redis,
    Sevrouter,
    Sink,
    StartupError,
    Target,
    core_busy_seconds,
    free_port,
    http_request,
)

TARGETS = ("sink", "bare", "alertmanager", "sevrouter")
SIZES = (1, 20)
MODES = ("fresh", "repeated")
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
# First guess of the fastest parsing target's saturation rate (requests/s) per webhook size, to
# size the fresh pool before anything was measured; a measured bare rate replaces it. If a target
# outruns the pool anyway, the row says so ("pool wrapped").
FRESH_RATE_GUESS = {1: 8000.0, 20: 2000.0}
FRESH_MIN_BODIES = {1: 4000, 20: 800}  # what the non-parsing targets cycle through


QUIET_BUSY = 0.15  # background CPU (share of one core, both cores summed) we call quiet
QUIET_WAIT_S = 20.0


def _busy_both_cores(seconds: float) -> float:
    before = core_busy_seconds(SERVER_CPU) + core_busy_seconds(CLIENT_CPU)
    time.sleep(seconds)
    return (core_busy_seconds(SERVER_CPU) + core_busy_seconds(CLIENT_CPU) - before) / seconds


@dataclass
class Measurement:
    target: str
    size: int
    mode: str
    status: str = "ok"  # ok | skipped | failed
    note: str = ""
    saturation: loadgen.RunResult | None = None
    half: loadgen.RunResult | None = None
    wrapped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per measurement (default 5, --quick 1.5)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="unmeasured seconds before each window (default 1, --quick 0.5)",
    )
    parser.add_argument("--quick", action="store_true", help="short windows for a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=TARGETS,
        metavar="TARGET",
        help=f"run only this target (repeatable): {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="keep-alive connections (default 32)"
    )
    parser.add_argument(
        "--sevrouter-cmd",
        default=DEFAULT_SEVROUTER_CMD,
        help="command line for sevrouter; {host} {port} {rules} are filled in "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--sevrouter-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for sevrouter (repeatable)",
    )
    parser.add_argument("--alertmanager-bin", default="prometheus-alertmanager")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write results")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the temp dir with every process's log"
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 1.5 if args.quick else 5.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    for item in args.sevrouter_env:
        if "=" not in item:
            parser.error(f"--sevrouter-env wants KEY=VALUE, got {item!r}")
    return args


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, procs: Processes, tmp: Path) -> None:
        self.args = args
        self.ctx = Context(procs=procs, tmp=tmp)
        self.redis: Redis | None = None
        self.repeated = {size: repeated_bodies(size) for size in SIZES}
        self.fresh = {size: FreshPool(size) for size in SIZES}
        self.rate_seen: dict[tuple[int, str], float] = {}  # best saturation req/s per scenario
        self.results: list[Measurement] = []
        token = secrets.token_hex(12)
        extra_env = dict(item.split("=", 1) for item in args.sevrouter_env)
        all_targets: list[Target] = [
            Sink(),
            Bare(),
            Alertmanager(args.alertmanager_bin),
            Sevrouter(args.sevrouter_cmd, token, extra_env),
        ]
        wanted = set(args.only or TARGETS)
        self.targets = [t for t in all_targets if t.name in wanted]

    # --- bodies --------------------------------------------------------------------------------

    def _bodies(self, target: Target, size: int, mode: str, needed: int) -> Bodies:
        if mode == "repeated":
            return self.repeated[size]
        pool = self.fresh[size]
        if target.parses:
            pool.ensure(needed)
        else:
            pool.ensure(FRESH_MIN_BODIES[size])
        return pool.bodies

    def _window(self) -> float:
        return self.args.warmup + self.args.duration

    def _fresh_need(self, size: int, mode: str) -> int:
        guess = self.rate_seen.get((size, mode), FRESH_RATE_GUESS[size])
        return math.ceil(guess * 1.3 * self._window()) + self.args.connections + 1

    # --- one measurement ------------------------------------------------------------------------

    def measure(self, runner: asyncio.Runner, target: Target, size: int, mode: str) -> Measurement:
        m = Measurement(target.name, size, mode)
        label = f"[{target.name} {size:>2} {mode}]"
        if self.redis is not None:
            self.redis.flush()
        bodies = self._bodies(target, size, mode, self._fresh_need(size, mode))
        m.extra["background_before"] = round(self._wait_for_quiet(label), 3)
        port = free_port()
        log(f"{label} starting")
        proc = target.start(self.ctx, port)
        try:
            m.extra["server_cpus"] = proc.affinity()
            shape = bodies.webhook if target.shape == "webhook" else bodies.am_v2
            try:
                status, reply = http_request(port, "POST", target.path, shape[0], target.headers())
                if not 200 <= status < 300:
                    m.note = f"preflight HTTP {status}: {reply[:160].decode(errors='replace')}"
            except (OSError, http.client.HTTPException) as exc:
                m.note = f"preflight failed: {exc!r}"
            if m.note:
                log(f"{label} {m.note}")
            head, tail = target.request_head(port).split(b"{}")
            requests = [head + str(len(b)).encode() + tail + b for b in shape]
            probe = self._probe(proc)
            common = {
                "connections": self.args.connections,
                "warmup": self.args.warmup,
                "duration": self.args.duration,
                "probe": probe,
            }
            sat = runner.run(loadgen.saturate(HOST, port, requests, start_index=1, **common))
            m.saturation = sat
            used = 1 + sat.sent
            m.wrapped = mode == "fresh" and target.parses and used > len(shape)
            log(
                f"{label} saturation {sat.rps:,.0f} req/s, p99 {sat.percentile(0.99) * 1e3:.1f} ms"
                f", non-2xx {sat.non_2xx}"
            )
            key = (size, mode)
            self.rate_seen[key] = max(self.rate_seen.get(key, 0.0), sat.rps)
            if target.half_rate and sat.ok > 0:
                rate = 0.5 * sat.rps
                if mode == "fresh" and target.parses:
                    before = len(shape)
                    need = used + math.ceil(rate * 1.05 * self._window()) + self.args.connections
                    bodies = self._bodies(target, size, mode, need)
                    shape = bodies.webhook if target.shape == "webhook" else bodies.am_v2
                    requests += [head + str(len(b)).encode() + tail + b for b in shape[before:]]
                half = runner.run(
                    loadgen.fixed_rate(HOST, port, requests, rate=rate, start_index=used, **common)
                )
                m.half = half
                m.wrapped = m.wrapped or (
                    mode == "fresh" and target.parses and used + half.sent > len(shape)
                )
                log(
                    f"{label} at {rate:,.0f} req/s: p50 {half.percentile(0.5) * 1e3:.2f} ms, "
                    f"p99 {half.percentile(0.99) * 1e3:.2f} ms"
                )
            if self.redis is not None:
                m.extra["redis_keys"] = self.redis.dbsize()
            if proc.popen.poll() is not None:
                m.status, m.note = "failed", f"exited with {proc.popen.returncode}: {proc.tail()}"
        finally:
            self.ctx.procs.stop(proc)
        if m.wrapped:
            m.note = (m.note + "; " if m.note else "") + "fresh pool wrapped: some alerts repeated"
        return m

    def _wait_for_quiet(self, label: str) -> float:
        """Other work on this machine skews every number: wait (bounded) until both cores are
        nearly idle while nothing of ours runs. Returns the background load last seen."""
        deadline = time.monotonic() + QUIET_WAIT_S
        while True:
            busy = _busy_both_cores(0.3)
            if busy < QUIET_BUSY or time.monotonic() > deadline:
                if busy >= QUIET_BUSY:
                    log(f"{label} machine still busy ({busy:.0%} of a core), measuring anyway")
                return busy
            log(f"{label} machine busy ({busy:.0%} of a core), waiting")
            time.sleep(1.0)

    def _probe(self, proc: Proc) -> loadgen.Probe:
        redis = self.redis

        def probe() -> dict[str, float]:
            values = {
                "wall": time.perf_counter(),
                "server": proc.cpu_seconds(),
                f"core{SERVER_CPU}": core_busy_seconds(SERVER_CPU),
                f"core{CLIENT_CPU}": core_busy_seconds(CLIENT_CPU),
            }
            if redis is not None:
                values["redis"] = redis.proc.cpu_seconds()
            return values

        return probe

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> list[Measurement]:
        with asyncio.Runner(loop_factory=loadgen.new_event_loop) as runner:
            for target in self.targets:
                reason = target.unavailable()
                if reason is None and target.needs_redis and self.redis is None:
                    try:
                        self.redis = Redis(self.ctx)
                        self.ctx.redis_url = self.redis.url
                    except StartupError as exc:
                        reason = f"redis: {exc}"
                for size in SIZES:
                    for mode in MODES:
                        if reason is not None:
                            self.results.append(
                                Measurement(target.name, size, mode, "skipped", reason)
                            )
                            continue
                        try:
                            self.results.append(self.measure(runner, target, size, mode))
                        except StartupError as exc:
                            reason = f"did not start: {exc}"
                            log(f"[{target.name}] {reason}")
                            self.results.append(
                                Measurement(target.name, size, mode, "skipped", reason)
                            )
        return self.results


def environment(args: argparse.Namespace) -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return (
            (out.stdout or out.stderr).strip().splitlines()[0]
            if (out.stdout or out.stderr)
            else "?"
        )

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "server_cpu": SERVER_CPU,
        "client_cpu": CLIENT_CPU,
        "alertmanager": version([args.alertmanager_bin, "--version"]),
        "redis": version(["redis-server", "--version"]),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "sevrouter_cmd": args.sevrouter_cmd,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        log("warning: fewer than 2 cores, nothing is pinned; numbers mean little")
    else:
        os.sched_setaffinity(0, {CLIENT_CPU})  # the generator; children get their own taskset

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="sevrouter-bench-"))
    procs = Processes(tmp)
    bench = Bench(args, procs, tmp)
    started = time.monotonic()
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping every process started")
    finally:
        procs.stop_all()
        if args.keep_logs:
            log(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if not bench.results:
        return 130 if interrupted else 1
    env = environment(args)
    env["elapsed_s"] = round(time.monotonic() - started, 1)
    sizes = {
        f"{size}": {
            "webhook_bytes": round(bench.repeated[size].mean_size("webhook")),
            "am_v2_bytes": round(bench.repeated[size].mean_size("am_v2")),
        }
        for size in SIZES
    }
    env["body_sizes"] = sizes
    print(report.render(bench.results, env, {t.name: t.describe for t in bench.targets}))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report.to_json(bench.results, env), indent=2) + "\n")
    log(f"wrote {args.json}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
