"""The container image, without a Docker engine: hadolint, the Dockerfile's promises, the build
context .dockerignore leaves, and the image's own install script run in a temporary virtualenv
exactly as the builder stage runs it, then the installed command started the way the image
starts it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from router import __version__
from tests.deploy.tools import ROOT, hadolint_binary

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INSTALL_SCRIPT = ROOT / "docker" / "install.sh"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
OCI_LABELS = (
    "title",
    "description",
    "version",
    "revision",
    "created",
    "source",
    "licenses",
    "base.name",
)


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    arguments: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, each with its stage's name."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    result = []
    stage = ""
    for line in joined:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = arguments.split()[-1] if " AS " in arguments.upper() else arguments
        result.append(Instruction(stage, keyword, " ".join(arguments.split())))
    return result


def stage(name: str) -> list[Instruction]:
    return [i for i in instructions() if i.stage == name]


def test_hadolint_finds_nothing() -> None:
    labels = [f"--require-label=org.opencontainers.image.{label}:text" for label in OCI_LABELS]
    result = subprocess.run(
        [
            str(hadolint_binary()),
            "--no-color",
            "--failure-threshold",
            "style",
            "--strict-labels",
            *labels,
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_two_stages_on_the_same_slim_python() -> None:
    every = instructions()
    assert every[0] == Instruction("", "ARG", "PYTHON_IMAGE=python:3.11-slim")
    froms = [i.arguments for i in every if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]


def test_builder_stage_runs_the_install_script() -> None:
    runs = [i.arguments for i in stage("builder") if i.keyword == "RUN"]
    assert len(runs) == 1
    assert "sh docker/install.sh /src /tmp/wheels /opt/sevrouter /src/rules" in runs[0]


def test_runtime_stage_is_small_and_unprivileged() -> None:
    runtime = stage("runtime")
    runs = " ".join(i.arguments for i in runtime if i.keyword == "RUN")
    for tool in ("apt-get", "pip install", "curl", "wget", "gcc", "build-essential"):
        assert tool not in runs, f"the runtime stage installs {tool}"
    assert "pip uninstall" in runs and "--uid 10001" in runs
    copies = [i.arguments for i in runtime if i.keyword == "COPY"]
    assert "--from=builder /opt/sevrouter /opt/sevrouter" in copies
    assert "rules/ /etc/sevrouter/rules/" in copies
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users == ["10001:10001"]
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "SEVROUTER_RULES=/etc/sevrouter/rules",
        "SEVROUTER_LOG_FORMAT=json",
        "PATH=/opt/sevrouter/bin:$PATH",
    ):
        assert setting in env.split(), setting
    by_keyword = {i.keyword: i.arguments for i in runtime}
    assert json.loads(by_keyword["ENTRYPOINT"]) == ["sevrouter"]
    assert json.loads(by_keyword["CMD"]) == ["serve", "--host", "0.0.0.0", "--port", "9095"]
    assert by_keyword["EXPOSE"] == "9095"
    health = by_keyword["HEALTHCHECK"]
    assert health.endswith('CMD ["python", "/opt/sevrouter/healthcheck.py"]'), health
    labels = " ".join(i.arguments for i in runtime if i.keyword == "LABEL")
    for label in OCI_LABELS:
        assert f"org.opencontainers.image.{label}=" in labels, label


# --- the build context ----------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out += pattern[index : end + 1]
            index = end + 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, regex) per line, in order: the last matching line decides."""
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker leaves `path` out; a pattern matching a parent directory applies too."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for exception, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            verdict = not exception
    return verdict


def build_context() -> list[str]:
    """Relative paths of the files `docker build .` would send."""
    rules = dockerignore_rules()
    files = []
    for directory, subdirectories, names in os.walk(ROOT):
        relative = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else relative + "/"
        # Directories that are out, and that no exception reaches into, are not walked.
        subdirectories[:] = [
            d
            for d in subdirectories
            if not excluded(prefix + d, rules) or _exception_below(prefix + d)
        ]
        files += [prefix + n for n in names if not excluded(prefix + n, rules)]
    return sorted(files)


def _exception_below(directory: str) -> bool:
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("!") and line[1:].strip().strip("/").startswith(directory + "/"):
            return True
    return False


def test_dockerignore_sends_only_what_the_build_reads() -> None:
    context = build_context()
    tops = {path.split("/")[0] for path in context}
    assert tops == {"pyproject.toml", "README.md", "router", "rules", "docker"}
    assert not [p for p in context if "__pycache__" in p or p.endswith(".pyc")]
    assert "docker/install.sh" in context and "docker/healthcheck.py" in context
    # Everything the Dockerfile copies from the context is in it.
    for instruction in instructions():
        if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
            continue
        *sources, _ = shlex.split(instruction.arguments)
        for source in sources:
            source = source.rstrip("/")
            assert any(p == source or p.startswith(source + "/") for p in context), source


# --- the install, as the builder stage runs it ------------------------------------------------


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the image's filesystem: the build context at /src, then the install
    script run with the Dockerfile's own arguments, each path moved under this directory."""
    root = tmp_path_factory.mktemp("image")
    source = root / "src"
    for relative in build_context():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    [run] = [i.arguments for i in stage("builder") if i.keyword == "RUN"]
    command = shlex.split(run[run.index("sh docker/install.sh") :])
    assert command[:2] == ["sh", "docker/install.sh"]
    arguments = [str(root / a.lstrip("/")) for a in command[2:]]
    # The builder's interpreter is the base image's; here it is the test's (Python 3.11 too).
    env = {**os.environ, "PYTHON": sys.executable, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        ["sh", str(source / "docker" / "install.sh"), *arguments],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert f"sevrouter {__version__}" in result.stdout
    assert "OK:" in result.stdout  # `sevrouter check` on the shipped rules
    return root


def test_install_leaves_a_runtime_without_pip_or_dev_extras(image_root: Path) -> None:
    venv = image_root / "opt" / "sevrouter"
    python = venv / "bin" / "python"
    assert (venv / "bin" / "sevrouter").is_file()
    probe = (
        "import importlib.util as u, json; "
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "['router', 'uvicorn', 'rq', 'redis', 'pip', 'setuptools', 'pytest', 'mypy', 'ruff']}))"
    )
    found = json.loads(
        subprocess.run(
            [str(python), "-c", probe],
            cwd=image_root,  # not this checkout, whose router/ would be importable from here
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    assert found == {
        "router": True,
        "uvicorn": True,
        "rq": True,
        "redis": True,
        "pip": False,
        "setuptools": False,
        "pytest": False,
        "mypy": False,
        "ruff": False,
    }
    # The package came from the wheel, not from this checkout.
    location = subprocess.run(
        [str(python), "-c", "import router; print(router.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=image_root,
    ).stdout.strip()
    assert location.startswith(str(venv))


def image_env(image_root: Path, **extra: str) -> dict[str, str]:
    """The runtime stage's ENV, with paths under the stand-in root."""
    env = {
        "PATH": f"{image_root / 'opt' / 'sevrouter' / 'bin'}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "SEVROUTER_RULES": str(image_root / "src" / "rules"),
        "SEVROUTER_LOG_FORMAT": "json",
    }
    return {**env, **extra}


def test_check_uses_sevrouter_rules_like_the_image(image_root: Path) -> None:
    # `docker run IMAGE check`: no argument, the rules from SEVROUTER_RULES.
    result = subprocess.run(
        ["sevrouter", "check", "--secrets"],
        env=image_env(image_root, SEVROUTER_WEBHOOK_TOKEN="t"),
        cwd=image_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"{image_root / 'src' / 'rules'}: OK" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_installed_receiver_serves_and_passes_the_healthcheck(
    image_root: Path, redis_url: str
) -> None:
    port = free_port()
    argv = ["sevrouter", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = image_env(
        image_root,
        REDIS_URL=redis_url,
        SEVROUTER_WEBHOOK_TOKEN="t",
        SEVROUTER_KEY_PREFIX="deploy-test",
    )
    process = subprocess.Popen(
        argv, env=env, cwd=image_root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the receiver exited"
            assert time.monotonic() < deadline, "the receiver did not start in 30 s"
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        # The image's HEALTHCHECK, given this process's command line instead of PID 1's.
        health = subprocess.run(
            [sys.executable, str(HEALTHCHECK), *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        assert f"http://127.0.0.1:{port}/healthz: HTTP 200" in health.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=40)
    # uvicorn drains, then re-raises SIGTERM to exit by it (143 in a container): both are fine.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete." in output
    # SEVROUTER_LOG_FORMAT=json: the log is JSON lines.
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert "receiver_started" in {e.get("event") for e in events}, output


def test_installed_worker_starts(image_root: Path, redis_url: str) -> None:
    result = subprocess.run(
        ["sevrouter", "worker", "--burst"],
        env=image_env(
            image_root,
            REDIS_URL=redis_url,
            SEVROUTER_WEBHOOK_TOKEN="t",
            SEVROUTER_KEY_PREFIX="deploy-test",
            SEVROUTER_QUEUE="deploy-test",
        ),
        cwd=image_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker_started" in result.stdout + result.stderr


# --- the HEALTHCHECK script -------------------------------------------------------------------


def healthcheck(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class _Status(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def status_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_healthcheck_follows_the_serving_command(status_server: HTTPServer) -> None:
    port = str(status_server.server_address[1])
    for argv in (
        # PID 1 as the image starts it: the console script's interpreter, then the script.
        [
            "/opt/sevrouter/bin/python",
            "/opt/sevrouter/bin/sevrouter",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            port,
        ],
        # `docker run --init IMAGE run --host 0.0.0.0 --port=N`
        ["/sbin/docker-init", "--", "sevrouter", "run", "--host", "0.0.0.0", f"--port={port}"],
        ["python", "-m", "router", "serve", "--port", port],
    ):
        result = healthcheck(*argv)
        assert result.returncode == 0, (argv, result.stdout)
        assert f"http://127.0.0.1:{port}/healthz: HTTP 200" in result.stdout


def test_healthcheck_fails_on_errors_and_silence(status_server: HTTPServer) -> None:
    port = status_server.server_address[1]
    _Status.status = 503
    try:
        result = healthcheck("sevrouter", "serve", "--port", str(port))
    finally:
        _Status.status = 200
    assert result.returncode == 1 and "HTTP 503" in result.stdout
    result = healthcheck("sevrouter", "serve", "--port", str(free_port()))
    assert result.returncode == 1 and result.stdout.startswith("unhealthy:")


def test_healthcheck_treats_workers_as_healthy_while_they_run() -> None:
    result = healthcheck("/opt/sevrouter/bin/python", "/opt/sevrouter/bin/sevrouter", "worker")
    assert result.returncode == 0
    assert "serves no HTTP" in result.stdout


def test_docker_helpers_pass_the_projects_linters() -> None:
    """docker/ is outside `make lint`'s paths: ruff and mypy --strict run on it here."""
    bin_dir = Path(sys.executable).parent
    for command in (
        [str(bin_dir / "ruff"), "check", "docker"],
        [str(bin_dir / "ruff"), "format", "--check", "docker"],
        [str(bin_dir / "mypy"), "--strict", "--no-incremental", str(HEALTHCHECK)],
    ):
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
