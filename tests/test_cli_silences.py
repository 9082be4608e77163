"""`sevrouter silence add|list|expire`, run as subprocesses exactly as an operator runs them,
against the receiver served for real by the `client` fixture. What a command did is checked
through the API as well as on its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import free_port
from tests.support.rules import ALICE_TOKEN, BOB_TOKEN

REPO = Path(__file__).resolve().parents[1]
SILENCES = "/api/v1/silences"
DISK = ('alertname="DiskFull"', 'cluster=~"eu.*"')


def sevrouter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m router ARGS` with no SEVROUTER_* variables but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEVROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=REPO,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(client: httpx.Client) -> dict[str, str]:
    """The receiver's URL and alice's token, as an operator exports them."""
    return {"SEVROUTER_URL": str(client.base_url), "SEVROUTER_TOKEN": ALICE_TOKEN}


def utc(iso: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def silences(client: httpx.Client, *, expired: bool = False) -> list[dict[str, Any]]:
    params = {"expired": "true"} if expired else {}
    answer: list[dict[str, Any]] = client.get(SILENCES, params=params).json()["silences"]
    return answer


def test_add_with_a_duration(client: httpx.Client, env: dict[str, str]) -> None:
    result = sevrouter(
        "silence", "add", *DISK, "--duration", "2h", "--comment", "disk swap", env=env
    )
    assert (result.returncode, result.stderr) == (0, "")
    [created] = silences(client)
    assert created["created_by"] == "alice"
    assert created["comment"] == "disk swap"
    assert created["matchers"] == list(DISK)
    assert created["expire_on_resolve"] is False
    start, end = (datetime.fromisoformat(created[k]) for k in ("starts_at", "ends_at"))
    assert end - start == timedelta(hours=2)
    assert result.stdout == (
        f'{created["id"]}: silenced alertname="DiskFull", cluster=~"eu.*" '
        f"until {utc(created['ends_at'])}\n"
    )


def test_add_pending_until_with_expire_on_resolve_as_json(client: httpx.Client) -> None:
    # --url, --token and --json after the action this time.
    result = sevrouter(
        "silence",
        "add",
        'alertname="Deploy",env!=staging',
        "--starts",
        "2099-01-01T10:00",
        "--until",
        "2099-01-01T12:00Z",
        "--comment",
        "release",
        "--expire-on-resolve",
        "--url",
        str(client.base_url),
        "--token",
        BOB_TOKEN,
        "--json",
    )
    assert (result.returncode, result.stderr) == (0, "")
    printed = json.loads(result.stdout)
    assert silences(client) == [printed]
    assert printed["state"] == "pending"
    assert printed["matchers"] == ['alertname="Deploy"', 'env!="staging"']
    assert (printed["starts_at"], printed["ends_at"]) == (
        "2099-01-01T10:00:00+00:00",
        "2099-01-01T12:00:00+00:00",
    )
    assert (printed["created_by"], printed["expire_on_resolve"]) == ("bob", True)


def test_list_and_expire(client: httpx.Client, env: dict[str, str]) -> None:
    assert sevrouter("silence", "list", env=env).stdout == "no silences\n"
    for matcher, duration, comment in (
        ("alertname=CPUHigh", "3h", "noisy"),
        (DISK[0], "1h", "swap"),
    ):
        added = sevrouter(
            "silence", "add", matcher, "--duration", duration, "--comment", comment, env=env
        )
        assert added.returncode == 0, added.stderr
    soon, later = silences(client)
    result = sevrouter("silence", "list", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    # id, state, window, author, matchers and the comment.
    assert result.stdout.splitlines() == [
        f'{soon["id"]}  active   until {utc(soon["ends_at"])}  alice  alertname="DiskFull"  # swap',
        f"{later['id']}  active   until {utc(later['ends_at'])}  alice  "
        'alertname="CPUHigh"  # noisy',
    ]

    expired = sevrouter("silence", "expire", soon["id"], env=env)
    assert (expired.returncode, expired.stderr) == (0, "")
    [ended] = [s for s in silences(client, expired=True) if s["id"] == soon["id"]]
    assert ended["state"] == "expired"
    assert expired.stdout == f"{soon['id']}: expired, ended {utc(ended['ends_at'])}\n"

    # Without --expired the list is the one left; with it, the expired one comes first.
    assert [
        line.split()[0] for line in sevrouter("silence", "list", env=env).stdout.splitlines()
    ] == [later["id"]]
    with_expired = sevrouter("silence", "list", "--expired", env=env).stdout.splitlines()
    assert with_expired[0] == (
        f'{soon["id"]}  expired  ended {utc(ended["ends_at"])}  alice  alertname="DiskFull"  # swap'
    )
    assert len(with_expired) == 2
    # --json is the API's answer as is.
    listed = sevrouter("silence", "--json", "list", "--expired", env=env)
    assert json.loads(listed.stdout) == {"silences": silences(client, expired=True)}


@pytest.mark.parametrize(
    ("args", "token", "stderr"),
    [
        # No token: the receiver refuses the write (exit 1, its reason on stderr).
        pytest.param(
            ["add", "alertname=X", "--duration", "1h", "--comment", "c"],
            "",
            "sevrouter: missing or invalid API token (Authorization: Bearer <token>) (HTTP 401)\n",
            id="no-token",
        ),
        # The receiver's validation: matchers that match alerts without the label.
        pytest.param(
            ["add", 'team=~".*"', "--duration", "1h", "--comment", "c"],
            ALICE_TOKEN,
            'sevrouter: at least one matcher must require a label value: team=~".*" also '
            "matches alerts without these labels (HTTP 400)\n",
            id="matches-everything",
        ),
        pytest.param(
            ["add", "alertname=X", "--duration", "31d", "--comment", "c"],
            ALICE_TOKEN,
            "sevrouter: a silence may last at most 30d, this one would last 31d (HTTP 400)\n",
            id="too-long",
        ),
        pytest.param(
            ["expire", "sil-000000000000"],
            ALICE_TOKEN,
            "sevrouter: no silence 'sil-000000000000' (HTTP 404)\n",
            id="expire-unknown",
        ),
    ],
)
def test_refusals_exit_1(
    client: httpx.Client, env: dict[str, str], args: list[str], token: str, stderr: str
) -> None:
    result = sevrouter("silence", *args, env=env | {"SEVROUTER_TOKEN": token})
    assert (result.returncode, result.stdout, result.stderr) == (1, "", stderr)
    assert silences(client, expired=True) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        # Matchers are parsed before anything is sent.
        pytest.param(
            ["add", "severity>3", "--duration", "1h", "--comment", "c"],
            "argument MATCHER: 'severity>3': expected one of =, !=, =~, !~ after label name "
            '"severity" at column 9',
            id="bad-matcher",
        ),
        pytest.param(
            ["add", "alertname=X", "--duration", "2 hours", "--comment", "c"],
            "argument --duration: invalid duration '2 hours': use a number and a unit, like "
            "30s, 5m, 1h or 1h30m",
            id="bad-duration",
        ),
        pytest.param(
            ["add", "alertname=X", "--until", "tomorrow", "--comment", "c"],
            "argument --until: 'tomorrow' is not an ISO time (2026-11-26T14:30Z; without an "
            "offset, UTC)",
            id="bad-until",
        ),
        pytest.param(
            ["add", "alertname=X", "--duration", "1h", "--until", "2099-01-01", "--comment", "c"],
            "argument --until: not allowed with argument --duration",
            id="duration-and-until",
        ),
        pytest.param(
            ["add", "alertname=X", "--comment", "c"],
            "one of the arguments --duration --until is required",
            id="no-end",
        ),
        pytest.param(
            ["add", "alertname=X", "--duration", "1h"],
            "the following arguments are required: --comment",
            id="no-comment",
        ),
        # Not an id: refused before it becomes part of a URL.
        pytest.param(
            ["expire", "../incidents"],
            "argument ID: '../incidents' is not a silence id (sil- and 12 hex digits, e.g. "
            "sil-0123456789ab)",
            id="expire-not-an-id",
        ),
    ],
)
def test_usage_errors_exit_2(
    client: httpx.Client, env: dict[str, str], args: list[str], error: str
) -> None:
    result = sevrouter("silence", *args, env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1].endswith(f"error: {error}")
    assert silences(client, expired=True) == []


def test_unreachable_receiver_exits_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = sevrouter("silence", "list", "--url", url)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "sevrouter: cannot reach the receiver: ConnectError\n"
