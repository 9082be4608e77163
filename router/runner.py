"""`sevrouter run`: the all-in-one process tree for a single machine.

Starts `redis-server` (AOF on, its own data directory) unless REDIS_URL is set, then the
receiver and one worker as child processes, and prints what to give Alertmanager and Grafana.
When any child exits, or on SIGINT/SIGTERM, the others are stopped gracefully (SIGTERM, then
SIGKILL after a grace period) so no job or request is cut short.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

from router.settings import Settings

DATA_DIR = Path(".sevrouter")
REDIS_PORT = 6390
GRACE_SECONDS = 35


def run_all(settings: Settings, *, host: str, port: int) -> int:
    children: list[subprocess.Popen[bytes]] = []
    env = dict(settings.environ)
    if "REDIS_URL" not in env:
        redis = _start_redis()
        if redis is None:
            return 1
        children.append(redis)
        env["REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
        settings = replace(settings, redis_url=env["REDIS_URL"])
    env["SEVROUTER_RULES"] = str(settings.rules_path)
    command = [sys.executable, "-m", "router"]
    # Our own interpreter and module with arguments we built: no untrusted input.
    serve = [*command, "serve", "--host", host, "--port", str(port)]
    # Children get their own sessions so a Ctrl-C reaches only us: we stop them in order, with
    # Redis last, instead of the terminal killing Redis under a worker that is still draining.
    children.append(subprocess.Popen(serve, env=env, start_new_session=True))  # noqa: S603
    worker = [*command, "worker"]
    children.append(subprocess.Popen(worker, env=env, start_new_session=True))  # noqa: S603

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    _print_banner(settings, host, port)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        _stop_all(children)
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    return 1 if failed and not stopping else 0


def _start_redis() -> subprocess.Popen[bytes] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        print(
            "sevrouter: redis-server not found. Install it (Debian/Ubuntu: apt-get install "
            "redis-server) or set REDIS_URL to an existing Redis.",
            file=sys.stderr,
        )
        return None
    data = DATA_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # noqa: S603 - the redis-server found on PATH, fixed arguments
        [
            binary,
            "--port",
            str(REDIS_PORT),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=0.2).close()
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
        else:
            return process
    print(f"sevrouter: redis-server did not start on port {REDIS_PORT}", file=sys.stderr)
    process.terminate()
    return None


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    # Receiver and worker first (they drain), Redis last (they need it while draining).
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _print_banner(settings: Settings, host: str, port: int) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only
    base = settings.public_url or f"http://{shown}:{port}"
    token_file = settings.environ.get("SEVROUTER_TOKEN_FILE", "/path/to/webhook-token")
    print(
        f"""
sevrouter is running (rules: {settings.rules_path}, redis: {settings.redis_url})

Alertmanager (alertmanager.yml):
  receivers:
    - name: sevrouter
      webhook_configs:
        - url: {base}/api/v1/webhooks/alertmanager
          send_resolved: true
          http_config:
            authorization:
              credentials_file: {token_file}

Grafana contact point: type Webhook, URL {base}/api/v1/webhooks/grafana,
  Authorization header scheme "Bearer", credentials: the token in {token_file}

Incidents: {base}/api/v1/incidents   Ready: {base}/readyz   Metrics: {base}/metrics
Stop with Ctrl-C (in-flight requests and jobs finish first).
""",
        flush=True,
    )
