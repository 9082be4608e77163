"""The image's HEALTHCHECK, written with the Python standard library only (no curl in the image).

One image runs every sevrouter command, and only `serve` and `run` listen for HTTP: a worker has
no port. So the check reads the command line of the container's main process (PID 1, or the
process `docker run --init` started) and, for `serve` and `run`, asks `GET /healthz` on the
address and port that command listens on. For any other command the process being alive is its
health: Docker runs the check only while the container's main process lives.

Exit status 0 means healthy and 1 unhealthy, as Docker expects. Kubernetes ignores HEALTHCHECK;
the Helm chart declares its own probes.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PORT = 9095
TIMEOUT_SECONDS = 3.0
# Commands that serve HTTP; every other sevrouter command is healthy while it runs.
SERVING = frozenset({"serve", "run"})
COMMANDS = frozenset({"serve", "run", "worker", "check", "incidents", "oncall"})


def command_line(pid: int = 1) -> list[str]:
    """The argument vector of process `pid`, from /proc."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


def _option(args: Sequence[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in `args` (the last one wins)."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg.partition("=")[2]
    return value


def health_url(argv: Sequence[str]) -> str | None:
    """The /healthz URL of the sevrouter command in `argv`, or None when it serves no HTTP.

    `argv` is a whole process command line, such as
    `/opt/sevrouter/bin/python /opt/sevrouter/bin/sevrouter serve --host 0.0.0.0 --port 9095`
    or `/sbin/docker-init -- sevrouter worker`.
    """
    for index, arg in enumerate(argv):
        if Path(arg).name == "sevrouter" or (arg == "router" and argv[index - 1 : index] == ["-m"]):
            rest = list(argv[index + 1 :])
            break
    else:
        return None
    command = next((arg for arg in rest if arg in COMMANDS), None)
    if command not in SERVING:
        return None
    port = _option(rest, "--port") or str(DEFAULT_PORT)
    host = _option(rest, "--host") or "127.0.0.1"
    if host in {"0.0.0.0", ""}:  # noqa: S104 - compared, not bound: any IPv4 address answers
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/healthz"


def check(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Whether `url` answers 2xx within `timeout`, and what happened, for the health log."""
    try:
        # A plain http:// URL built above from the process's own arguments, never user input.
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"
    return 200 <= status < 300, f"{url}: HTTP {status}"


def main(argv: Sequence[str] | None = None) -> int:
    process = list(argv) if argv is not None else command_line()
    url = health_url(process)
    if url is None:
        print("healthy: this command serves no HTTP and its process is running")
        return 0
    healthy, detail = check(url)
    print(("healthy: " if healthy else "unhealthy: ") + detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
