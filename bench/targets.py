"""The processes a benchmark starts: the systems under test (pinned to core 0) and Redis (core 1).

Every process is started through `Processes`, in its own session, under `taskset`, with its output
in a log file and a parent-death signal, and `Processes.stop_all()` ends each one by its process
group id. Nothing here listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SERVER_CPU = 0  # the system under test
CLIENT_CPU = 1  # the load generator (this process) and Redis
READY_TIMEOUT_S = 30.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it if the harness dies without cleaning up."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def set_priority(pid: int, nice: int) -> None:
    """Nice `pid`, and its session's autogroup: with autogroup scheduling on (the default) the
    plain nice value only ranks a process against others of its own session."""
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    autogroup = Path(f"/proc/{pid}/autogroup")
    if autogroup.exists():
        autogroup.write_text(f"{nice}\n")


def venv_python() -> str:
    candidate = REPO / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class StartupError(Exception):
    """A target could not be started; the message is shown in the results table."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    tree: list[int] = field(default_factory=list)  # pid and descendants, for CPU accounting

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 4) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])

    def refresh_tree(self) -> None:
        self.tree = [self.pid, *_descendants(self.pid)]

    def cpu_seconds(self) -> float:
        return sum(_proc_cpu(pid) for pid in self.tree or [self.pid])

    def affinity(self) -> str:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from #3 (state) on


def _proc_cpu(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(
                    int(entry.name)
                )
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def core_busy_seconds(cpu: int) -> float:
    """Non-idle time of one core since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / _CLK_TCK
    return 0.0


class Processes:
    """Starts pinned processes and guarantees they are all ended."""

    def __init__(self, log_dir: Path, nice: int = 0) -> None:
        self.log_dir = log_dir
        self.nice = nice
        self.running: list[Proc] = []

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        cpu: int,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                ["taskset", "-c", str(cpu), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # Ctrl-C reaches only the harness, which stops us
                preexec_fn=die_with_parent,
            )
        proc = Proc(name, popen, log)
        self.running.append(proc)
        if self.nice:
            # Its own session means its own autogroup, at nice 0 until told otherwise.
            with contextlib.suppress(OSError):
                set_priority(proc.pid, self.nice)
        return proc

    def stop(self, proc: Proc, timeout: float = 5.0) -> None:
        if proc in self.running:
            self.running.remove(proc)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)  # its own session: the group id is its pid
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            break

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc)


def wait_ready(
    proc: Proc, check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.popen.poll()
        if code is not None:
            raise StartupError(f"exited with code {code} before {what}; last output: {proc.tail()}")
        if check():
            proc.refresh_tree()
            return
        time.sleep(0.05)
    raise StartupError(f"no {what} within {timeout:.0f}s; last output: {proc.tail()}")


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_ok(port: int, path: str) -> bool:
    try:
        return http_request(port, "GET", path)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


# --- targets ----------------------------------------------------------------------------------


@dataclass
class Context:
    procs: Processes
    tmp: Path
    redis_url: str = ""


class Target:
    """A system under test: how to start it, where to POST, and which body shape it eats."""

    name = ""
    shape = "webhook"  # or "am_v2"
    path = "/api/v1/webhooks/alertmanager"
    user_agent = "Alertmanager/0.25.0"
    parses = True  # False: it never looks at alerts, so "fresh" needs no unique bodies
    half_rate = True  # measure latency at half saturation too
    needs_redis = False
    describe = ""

    def unavailable(self) -> str | None:
        """Why this target cannot run at all (missing executable), or None."""
        return None

    def start(self, ctx: Context, port: int) -> Proc:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {"User-Agent": self.user_agent, "Content-Type": "application/json"}

    def request_head(self, port: int) -> bytes:
        """Everything before the body, with `{}` left for Content-Length."""
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {HOST}:{port}"]
        lines += [f"{k}: {v}" for k, v in self.headers().items()]
        return ("\r\n".join(lines) + "\r\nContent-Length: {}\r\n\r\n").encode()


class Sink(Target):
    name = "sink"
    parses = False
    half_rate = False
    describe = "raw uvloop socket server, constant 202 (load generator ceiling)"

    def start(self, ctx: Context, port: int) -> Proc:
        proc = ctx.procs.spawn(
            "sink",
            [venv_python(), "-m", "bench.sink", "--host", HOST, "--port", str(port)],
            cpu=SERVER_CPU,
        )
        wait_ready(proc, lambda: tcp_open(port), "TCP accept")
        return proc


class Bare(Target):
    name = "bare"
    parses = False
    describe = "Starlette + uvicorn (uvloop, httptools), returns 202, no JSON parsing"

    def start(self, ctx: Context, port: int) -> Proc:
        argv = [
            venv_python(),
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        proc = ctx.procs.spawn("bare", argv, cpu=SERVER_CPU)
        wait_ready(proc, lambda: tcp_open(port), "TCP accept")
        return proc


ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
  group_by: [alertname, namespace]
receivers:
  - name: "null"
"""


class Alertmanager(Target):
    name = "alertmanager"
    shape = "am_v2"
    path = "/api/v2/alerts"
    user_agent = "Prometheus/2.51.0"

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.describe = f"{binary} (GOMAXPROCS=1, cluster off, null receiver), POST /api/v2/alerts"

    def unavailable(self) -> str | None:
        return None if shutil.which(self.binary) else f"executable not found: {self.binary}"

    def start(self, ctx: Context, port: int) -> Proc:
        workdir = ctx.tmp / f"alertmanager-{port}"
        workdir.mkdir()
        config = workdir / "alertmanager.yml"
        config.write_text(ALERTMANAGER_CONFIG)
        argv = [
            self.binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        proc = ctx.procs.spawn("alertmanager", argv, cpu=SERVER_CPU, env={"GOMAXPROCS": "1"})
        wait_ready(proc, lambda: http_ok(port, "/-/ready"), "GET /-/ready = 200")
        return proc


DEFAULT_SEVROUTER_CMD = (
    f"{REPO}/.venv/bin/sevrouter serve --host {{host}} --port {{port}} --rules {{rules}}"
)


class Sevrouter(Target):
    name = "sevrouter"
    needs_redis = True

    def __init__(self, cmd: str, token: str, extra_env: Mapping[str, str]) -> None:
        self.cmd = cmd
        self.token = token
        self.extra_env = dict(extra_env)
        self.describe = "sevrouter serve (one process), POST /api/v1/webhooks/alertmanager"

    def argv(self, port: int) -> list[str]:
        return shlex.split(self.cmd.format(host=HOST, port=port, rules=REPO / "rules"))

    def unavailable(self) -> str | None:
        exe = self.argv(0)[0]
        found = exe if "/" in exe else shutil.which(exe)
        if not found or not os.access(found, os.X_OK):
            return f"executable not found: {exe} (point --sevrouter-cmd at it)"
        return None

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Authorization": f"Bearer {self.token}"}

    def start(self, ctx: Context, port: int) -> Proc:
        env = {
            "REDIS_URL": ctx.redis_url,
            "SEVROUTER_WEBHOOK_TOKEN": self.token,
            **self.extra_env,
        }
        proc = ctx.procs.spawn("sevrouter", self.argv(port), cpu=SERVER_CPU, env=env)
        wait_ready(proc, lambda: http_ok(port, "/healthz"), "GET /healthz = 200")
        return proc


class Redis:
    """A throwaway redis-server on the generator's core: no persistence, flushed per scenario."""

    def __init__(self, ctx: Context, binary: str = "redis-server") -> None:
        self.port = free_port()
        workdir = ctx.tmp / "redis"
        workdir.mkdir()
        argv = [
            binary,
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "yes",
        ]
        self.proc = ctx.procs.spawn("redis", argv, cpu=CLIENT_CPU)
        wait_ready(self.proc, self._pong, "PING = PONG", timeout=10)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self, *args: str) -> bytes:
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            raw = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(raw), raw)
        with socket.create_connection((HOST, self.port), timeout=5) as sock:
            sock.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply

    def _pong(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        reply = self.command("FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise StartupError(f"redis FLUSHALL failed: {reply[:100]!r}")

    def dbsize(self) -> int:
        reply = self.command("DBSIZE")
        return int(reply[1:].strip()) if reply.startswith(b":") else -1
