"""`sevrouter incidents ...` and `sevrouter oncall`, run as subprocesses exactly as an operator
runs them: the incident commands against the receiver served for real by the `client` fixture,
`oncall` against the test rules directory.

The test rules' schedule `primary` (Europe/Berlin) rotates weekly between alice and bob, handing
off on Mondays at 09:00 local time from 2026-01-05: alice has the weeks of Jan 5, Jan 19, ...,
Mar 30; bob those of Jan 12, ..., Mar 23. Summer time starts on 2026-03-29, so the handoff on
Monday 2026-03-30 is at 07:00 UTC, the one before it at 08:00 UTC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.http_receiver import Receiver, Reply, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.processes import free_port
from tests.support.rules import ALICE_TOKEN, TOKEN
from tests.support.worker import TestWorker

REPO = Path(__file__).resolve().parents[1]
AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
DISK = {"alertname": "DiskFull", "cluster": "eu-1", "instance": "db-1", "severity": "critical"}
CPU = {"alertname": "CPUHigh", "cluster": "eu-1", "instance": "web-1", "severity": "page"}


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
def sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


@pytest.fixture
def url(client: httpx.Client, worker: TestWorker) -> str:
    """The receiver's URL, with INC-1 (DiskFull, SEV2) and then INC-2 (CPUHigh, SEV1) open and
    every job they caused run: titles rendered, pages sent, timelines written."""
    worker.clock.now = THURSDAY_10
    for alert in (DISK, CPU):
        response = client.post(AM, content=alertmanager_body([alert]), headers=HEADERS)
        assert response.status_code == 202, response.text
    worker.drain()
    return str(client.base_url).rstrip("/")


def incident(client: httpx.Client, incident_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.get(f"/api/v1/incidents/{incident_id}").json()
    return answer


def test_list_prints_a_table_newest_first(client: httpx.Client, url: str) -> None:
    opened = {i: incident(client, i)["opened_at"][:16] for i in ("INC-1", "INC-2")}
    result = sevrouter("incidents", "--url", url, "list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"INC-2    SEV1  triggered    platform     {opened['INC-2']}  CPUHigh on web-1",
        f"INC-1    SEV2  triggered    platform     {opened['INC-1']}  DiskFull on db-1",
    ]


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        # No filter: both open incidents, newest first.
        pytest.param([], ["INC-2", "INC-1"], id="all"),
        # The severity filter is passed to the API (which upper-cases it).
        pytest.param(["--severity", "sev2"], ["INC-1"], id="severity"),
        # A state nothing is in: an empty list, still exit 0.
        pytest.param(["--state", "acknowledged"], [], id="state-empty"),
        # --limit caps the rows.
        pytest.param(["--limit", "1"], ["INC-2"], id="limit"),
        # A team with no incidents.
        pytest.param(["--team", "db"], [], id="team-empty"),
    ],
)
def test_list_json_is_the_api_answer(
    client: httpx.Client, url: str, filters: list[str], ids: list[str]
) -> None:
    by_id = {i["id"]: i for i in client.get("/api/v1/incidents").json()["incidents"]}
    result = sevrouter("incidents", "--url", url, "--json", "list", *filters)
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"incidents": [by_id[i] for i in ids]}


def test_list_with_no_incidents_says_so(client: httpx.Client) -> None:
    result = sevrouter("incidents", "--url", str(client.base_url), "list")
    assert (result.returncode, result.stdout, result.stderr) == (0, "no incidents\n", "")


def test_list_bad_filter_is_the_api_error(client: httpx.Client) -> None:
    result = sevrouter("incidents", "--url", str(client.base_url), "list", "--severity", "SEV9")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "sevrouter: severity must be one of SEV1, SEV2, SEV3, SEV4 (HTTP 400)\n"
    )


def test_show_prints_the_incident_and_its_timeline(client: httpx.Client, url: str) -> None:
    document = incident(client, "INC-1")
    result = sevrouter("incidents", "--url", url, "show", "inc-1")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "INC-1 [SEV2] DiskFull on db-1",
        "  state triggered, team platform, rule alerts, 1 firing",
        "  DiskFull fired",
        "timeline:",
    ]
    at = [entry["at"][:19] for entry in document["timeline"]]
    # Opened (at the receiver's time), the escalation plan and two pages (by the worker's).
    assert lines[4:] == [
        f"  {at[0]}  sevrouter    Incident opened: DiskFull on db-1 (SEV2, team platform, "
        "rule alerts)",
        f"  {at[1]}  sevrouter    paging step 1: channel pager; next step at 10:15:00 UTC "
        "unless acknowledged",
        f"  {at[2]}  sevrouter    trigger page to pager delivered (attempt 1)",
        f"  {at[3]}  sevrouter    notify page to team-log delivered (attempt 1)",
    ]
    assert at[1:] == ["2026-11-26T10:00:00"] * 3


def test_show_json_is_the_api_answer(client: httpx.Client, url: str) -> None:
    result = sevrouter("incidents", "--url", url, "--json", "show", "INC-2")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == incident(client, "INC-2")


def test_ack_with_a_token_prints_the_transition(
    client: httpx.Client, url: str, worker: TestWorker, sink: Receiver
) -> None:
    result = sevrouter("incidents", "--url", url, "--token", ALICE_TOKEN, "ack", "INC-1")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "INC-1: triggered -> acknowledged\n",
        "",
    )
    assert incident(client, "INC-1")["state"] == "acknowledged"
    assert incident(client, "INC-2")["state"] == "triggered"
    worker.drain()
    # Written as alice (the token's person), and the pager hears of it.
    kinds = [(e["kind"], e["actor"], e["text"]) for e in incident(client, "INC-1")["timeline"]]
    assert ("acknowledged", "alice", "Acknowledged by alice") in kinds
    assert [r.headers["x-sevrouter-idempotency-key"] for r in sink.requests] == [
        "INC-1:1:channel:pager:pager:trigger",
        "INC-2:1:channel:pager:pager:trigger",
        "INC-1:1:channel:pager:pager:ack-0",
    ]
    assert sink.requests[2].headers["x-sevrouter-event"] == "incident.acknowledged"


@pytest.mark.parametrize(
    ("actions", "outputs", "state"),
    [
        # The human path, each step printing old -> new state.
        pytest.param(
            ["ack", "mitigate", "resolve"],
            [
                (0, "INC-1: triggered -> acknowledged\n", ""),
                (0, "INC-1: acknowledged -> mitigated\n", ""),
                (0, "INC-1: mitigated -> resolved\n", ""),
            ],
            "resolved",
            id="ack-mitigate-resolve",
        ),
        # Repeating an action is harmless and says so.
        pytest.param(
            ["ack", "ack"],
            [
                (0, "INC-1: triggered -> acknowledged\n", ""),
                (0, "INC-1 is already acknowledged\n", ""),
            ],
            "acknowledged",
            id="ack-twice",
        ),
        # Resolve then reopen: triggered again.
        pytest.param(
            ["resolve", "reopen"],
            [
                (0, "INC-1: triggered -> resolved\n", ""),
                (0, "INC-1: resolved -> triggered\n", ""),
            ],
            "triggered",
            id="reopen",
        ),
        # Closing a triggered incident is refused (409): exit 1, the reason on stderr.
        pytest.param(
            ["close"],
            [(1, "", "sevrouter: cannot close INC-1: it is triggered (HTTP 409)\n")],
            "triggered",
            id="close-refused",
        ),
    ],
)
def test_actions_with_url_and_token_from_the_environment(
    client: httpx.Client,
    url: str,
    actions: list[str],
    outputs: list[tuple[int, str, str]],
    state: str,
) -> None:
    env = {"SEVROUTER_URL": url, "SEVROUTER_TOKEN": ALICE_TOKEN}
    results = [sevrouter("incidents", action, "INC-1", env=env) for action in actions]
    assert [(r.returncode, r.stdout, r.stderr) for r in results] == outputs
    assert incident(client, "INC-1")["state"] == state


@pytest.mark.parametrize(
    ("args", "env", "code", "stderr"),
    [
        # No --token and no SEVROUTER_TOKEN: the API's 401 explained, nothing changes.
        pytest.param(
            ["ack", "INC-1"],
            {},
            1,
            "sevrouter: missing or invalid API token (Authorization: Bearer <token>) (HTTP 401)\n",
            id="ack-without-token",
        ),
        # A token the receiver does not know is the same 401.
        pytest.param(
            ["--token", "not-a-token", "ack", "INC-1"],
            {},
            1,
            "sevrouter: missing or invalid API token (Authorization: Bearer <token>) (HTTP 401)\n",
            id="ack-wrong-token",
        ),
        # Acknowledging an incident that does not exist: 404, exit 1.
        pytest.param(
            ["--token", ALICE_TOKEN, "ack", "INC-99"],
            {},
            1,
            "sevrouter: no incident 'INC-99' (HTTP 404)\n",
            id="ack-unknown-incident",
        ),
        # Showing one: the same.
        pytest.param(
            ["show", "INC-99"],
            {},
            1,
            "sevrouter: no incident 'INC-99' (HTTP 404)\n",
            id="show-unknown-incident",
        ),
    ],
)
def test_refusals_exit_1_with_a_message(
    client: httpx.Client,
    url: str,
    args: list[str],
    env: dict[str, str],
    code: int,
    stderr: str,
) -> None:
    result = sevrouter("incidents", "--url", url, *args, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (code, "", stderr)
    assert incident(client, "INC-1")["state"] == "triggered"


@pytest.mark.parametrize(
    "args",
    [
        # Reading.
        pytest.param(["list"], id="list"),
        # Writing.
        pytest.param(["--token", ALICE_TOKEN, "ack", "INC-1"], id="ack"),
    ],
)
def test_unreachable_receiver_exits_2(args: list[str]) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    result = sevrouter("incidents", "--url", nobody, *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "sevrouter: cannot reach the receiver: ConnectError\n"


def test_unreachable_receiver_from_the_environment_exits_2() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = sevrouter("incidents", "list", env={"SEVROUTER_URL": nobody})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "sevrouter: cannot reach the receiver: ConnectError\n"


# A 2xx answer that is not the API's JSON (a proxy's sign-in page, a wrong --url) is an error
# with exit 1 and a message, never a traceback.
@pytest.mark.parametrize(
    "reply",
    [
        # An HTML page.
        pytest.param(Reply(200, body=b"<html>sign in</html>"), id="html"),
        # JSON, but not ours.
        pytest.param(Reply(200, body=b'{"ok":true}'), id="foreign-json"),
    ],
)
def test_answer_that_is_not_the_api_is_an_error_not_a_traceback(
    sink: Receiver, reply: Reply
) -> None:
    sink.script(reply)
    result = sevrouter("incidents", "--url", sink.url, "--token", ALICE_TOKEN, "ack", "INC-1")
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("sevrouter: ")


# --- oncall ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # The first week: alice from Mon Jan 5 09:00 CET (08:00 UTC) to the next Monday.
        pytest.param(
            "2026-01-07T12:00:00+01:00",
            "primary              alice until 2026-01-12 09:00 UTC+01:00",
            id="first-week",
        ),
        # A minute before the handoff alice still has the pager.
        pytest.param(
            "2026-01-12T08:59:00+01:00",
            "primary              alice until 2026-01-12 09:00 UTC+01:00",
            id="minute-before-handoff",
        ),
        # At 09:00 local the pager passes to bob for a week.
        pytest.param(
            "2026-01-12T09:00:00+01:00",
            "primary              bob until 2026-01-19 09:00 UTC+01:00",
            id="at-handoff",
        ),
        # The same instant in UTC, printed in UTC: the handoff was at 08:00 UTC in winter.
        pytest.param(
            "2026-01-12T08:00:00Z",
            "primary              bob until 2026-01-19 08:00 UTC",
            id="at-handoff-utc",
        ),
        # A naive time is read as UTC: 08:30 UTC is after the 08:00 UTC handoff.
        pytest.param(
            "2026-01-12T08:30",
            "primary              bob until 2026-01-19 08:00 UTC",
            id="naive-is-utc",
        ),
        # Bob's week spans the start of summer time (Sun Mar 29): his handoff to alice stays at
        # 09:00 local, which is 07:00 UTC now, not 08:00.
        pytest.param(
            "2026-03-28T12:00:00Z",
            "primary              bob until 2026-03-30 07:00 UTC",
            id="dst-handoff-in-utc",
        ),
        # Monday after the change, 08:59 CEST: still bob.
        pytest.param(
            "2026-03-30T08:59:00+02:00",
            "primary              bob until 2026-03-30 09:00 UTC+02:00",
            id="dst-minute-before",
        ),
        # 09:00 CEST: alice, until next Monday 09:00 CEST.
        pytest.param(
            "2026-03-30T09:00:00+02:00",
            "primary              alice until 2026-04-06 09:00 UTC+02:00",
            id="dst-at-handoff",
        ),
        # Autumn: bob's week (turn 41, from Oct 19) spans the end of summer time (Sun Oct 25);
        # alice takes over at 09:00 CET on Oct 26, 08:00 UTC, not 07:00.
        pytest.param(
            "2026-10-24T12:00:00Z",
            "primary              bob until 2026-10-26 08:00 UTC",
            id="dst-autumn",
        ),
        # Before the rotation starts nobody is on call, until the first handoff.
        pytest.param(
            "2026-01-01T00:00:00Z",
            "primary              nobody until 2026-01-05 08:00 UTC",
            id="before-start",
        ),
    ],
)
def test_oncall_at(rules_path: Path, at: str, expected: str) -> None:
    result = sevrouter("oncall", "--rules", str(rules_path), "--at", at)
    assert (result.returncode, result.stdout, result.stderr) == (0, expected + "\n", "")


@pytest.mark.parametrize(
    ("team", "code", "stdout", "stderr"),
    [
        # platform pages `primary` in step 2: its schedule is shown.
        pytest.param(
            "platform",
            0,
            "primary              bob until 2026-01-19 08:00 UTC\n",
            "",
            id="team-with-schedule",
        ),
        # db pages only the `pager` channel: no schedules, said plainly, still exit 0.
        pytest.param(
            "db", 0, "no schedules in team db's escalation\n", "", id="team-without-schedule"
        ),
        # A team that does not exist: exit 1.
        pytest.param("payments", 1, "", "sevrouter: no team 'payments'\n", id="unknown-team"),
    ],
)
def test_oncall_team(rules_path: Path, team: str, code: int, stdout: str, stderr: str) -> None:
    result = sevrouter("oncall", team, "--rules", str(rules_path), "--at", "2026-01-13T12:00Z")
    assert (result.returncode, result.stdout, result.stderr) == (code, stdout, stderr)


@pytest.mark.parametrize(
    "at",
    [
        # Not a time at all.
        pytest.param("yesterday", id="word"),
        # A month that does not exist.
        pytest.param("2026-13-01T09:00", id="month-13"),
        # An hour that does not exist.
        pytest.param("2026-01-12T25:00", id="hour-25"),
    ],
)
def test_oncall_bad_at_exits_2(rules_path: Path, at: str) -> None:
    result = sevrouter("oncall", "--rules", str(rules_path), "--at", at)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"sevrouter: --at {at!r} is not an ISO time\n"


def test_oncall_invalid_rules_exit_1(tmp_path: Path) -> None:
    (tmp_path / "teams.yaml").write_text("teams: [{name: x, nonsense: 1}]\n")
    result = sevrouter("oncall", "--rules", str(tmp_path))
    assert (result.returncode, result.stdout) == (1, "")
    assert f"{tmp_path}/teams.yaml: teams[x].nonsense: unknown key" in result.stderr.splitlines()
