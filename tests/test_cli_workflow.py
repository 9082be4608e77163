"""`sevrouter incidents update|role|severity`, `sevrouter postmortem` and `sevrouter actions`,
run as subprocesses exactly as an operator runs them, against the receiver served for real by
the `client` fixture, on the worker's test clock (see tests/test_workflow_timeline.py).

INC-1 is a SEV1 (DiskFull on db-1, opened Thursday 2026-11-26 10:00 UTC) with every job it
caused run: pages sent, "Incident Started" posted to the team channel, timeline written.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from router.settings import Settings
from tests.support.http_receiver import Receiver, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.processes import free_port
from tests.support.rules import ALICE_TOKEN, BOB_TOKEN, TOKEN
from tests.support.worker import TestWorker
from tests.test_workflow_timeline import T0, page_record, share_clock, write_workflow_rules

REPO = Path(__file__).resolve().parents[1]
AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
DISK = {"alertname": "DiskFull", "cluster": "eu-1", "instance": "db-1", "severity": "page"}
NO_TOKEN = "sevrouter: missing or invalid API token (Authorization: Bearer <token>) (HTTP 401)\n"


def sevrouter(
    *args: str, env: dict[str, str] | None = None, stdout: Any = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """`python -m router ARGS` with no SEVROUTER_* variables but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEVROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=REPO,
        env=clean | (env or {}),
        stdout=stdout,
        stderr=subprocess.PIPE,
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
def rules_path(tmp_path: Path) -> Path:
    return write_workflow_rules(tmp_path / "rules")


@pytest.fixture
def url(client: httpx.Client, worker: TestWorker, monkeypatch: pytest.MonkeyPatch) -> str:
    """The receiver's URL, with INC-1 open and its jobs run, at 10:00 on the test clock."""
    worker.clock.now = T0
    share_clock(monkeypatch, worker.clock)
    response = client.post(AM, content=alertmanager_body([DISK]), headers=HEADERS)
    assert response.status_code == 202, response.text
    worker.drain()
    return str(client.base_url)


def alice(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A command as alice: `--url` and `--token` after the command's own arguments."""
    return sevrouter(*args, "--url", url, "--token", ALICE_TOKEN)


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def timeline(client: httpx.Client) -> list[tuple[str, str, str]]:
    entries = client.get("/api/v1/incidents/INC-1").json()["timeline"]
    return [(e["kind"], e["actor"], e["text"]) for e in entries]


# --- incidents role ----------------------------------------------------------------------------


def test_role_assigns_and_hands_over(client: httpx.Client, url: str, worker: TestWorker) -> None:
    steps = [
        (["commander", "alice"], "INC-1: alice is Incident Commander\n"),
        # Role names are forgiving of case and dashes; the rules' spelling is tech_lead.
        (["Tech-Lead", "bob"], "INC-1: bob is Tech Lead\n"),
        (["commander", "bob"], "INC-1: Incident Commander handed over from alice to bob\n"),
    ]
    for args, stdout in steps:
        assert outcome(alice(url, "incidents", "role", "inc-1", *args)) == (0, stdout, "")
    worker.drain()
    assert [entry for entry in timeline(client) if entry[0] == "role_assigned"] == [
        ("role_assigned", "alice", "alice is Incident Commander (assigned by alice)"),
        ("role_assigned", "alice", "bob is Tech Lead (assigned by alice)"),
        ("role_assigned", "alice", "Incident Commander handed over from alice to bob by alice"),
    ]


# --- incidents update --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdout"),
    [
        # A duration: the next update is due that long from now (10:00).
        pytest.param(
            ["--status", "investigating", "--next", "30m"],
            "INC-1: status update #1 posted (investigating); next update due 2026-11-26 "
            "10:30 UTC\n",
            id="next-duration",
        ),
        # An ISO time with an offset, printed in UTC.
        pytest.param(
            ["--status", "Mitigating", "--next", "2026-11-26T12:15:00+01:00"],
            "INC-1: status update #1 posted (mitigating); next update due 2026-11-26 11:15 UTC\n",
            id="next-iso",
        ),
        # No --next: the SEV1 cadence, 15 minutes.
        pytest.param(
            ["--status", "investigating"],
            "INC-1: status update #1 posted (investigating); next update due 2026-11-26 "
            "10:15 UTC\n",
            id="next-cadence",
        ),
        # Resolved: no next update.
        pytest.param(
            ["--status", "resolved"],
            "INC-1: status update #1 posted (resolved); no further update due\n",
            id="resolved",
        ),
    ],
)
def test_update_posts_and_sets_the_next_deadline(url: str, args: list[str], stdout: str) -> None:
    result = sevrouter("incidents", "--url", url, "--token", BOB_TOKEN, "update", "INC-1", *args)
    assert outcome(result) == (0, stdout, "")


def test_update_facts_and_actions_reach_the_team_channel(
    client: httpx.Client, url: str, worker: TestWorker, redis: Redis, settings: Settings
) -> None:
    result = alice(
        url,
        "incidents",
        "update",
        "INC-1",
        "--status",
        "investigating",
        "--fact",
        "db-1 data volume is full",
        "--fact",
        "writes fail since 09:58",
        "--action",
        "Moving WAL archives off the volume",
        "--next",
        "20m",
        "--json",
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "incident": "INC-1",
        "number": 1,
        "update": {
            "at": "2026-11-26T10:00:00+00:00",
            "author": "alice",
            "status": "investigating",
            "facts": ["db-1 data volume is full", "writes fail since 09:58"],
            "actions": ["Moving WAL archives off the volume"],
            "next_update": "2026-11-26T10:20:00+00:00",
        },
    }
    worker.drain()
    posted = page_record(redis, settings, "INC-1:0:channel:team-log:team-log:update-1")
    assert posted["body"] == (
        "**Status Update - 2026-11-26 10:00 UTC**\n\n"
        "INC-1 (SEV1): DiskFull on db-1\n\n"
        "Current Status: Investigating\n\n"
        "What we know:\n- db-1 data volume is full\n- writes fail since 09:58\n\n"
        "What we're doing:\n- Moving WAL archives off the volume\n\n"
        "Next update: 2026-11-26 10:20 UTC\n"
    )
    assert ("status_update", "alice", "Status update #1 posted by alice") in timeline(client)


# --- incidents severity ------------------------------------------------------------------------


def test_severity_change_with_reason(client: httpx.Client, url: str, worker: TestWorker) -> None:
    steps = [
        (["sev2", "--reason", "Only EU customers"], "INC-1 is now SEV2: Only EU customers\n"),
        (["SEV2", "--reason", "Still EU only"], "INC-1 is already SEV2\n"),
    ]
    for args, stdout in steps:
        assert outcome(alice(url, "incidents", "severity", "INC-1", *args)) == (0, stdout, "")
    worker.drain()
    assert client.get("/api/v1/incidents/INC-1").json()["severity"] == "SEV2"
    assert [entry for entry in timeline(client) if entry[0] == "severity_changed"] == [
        (
            "severity_changed",
            "alice",
            "Severity changed from SEV1 to SEV2 by alice: Only EU customers",
        ),
    ]


# --- postmortem --------------------------------------------------------------------------------


def test_postmortem_redirected_to_a_file_is_the_markdown_draft(
    client: httpx.Client, url: str, worker: TestWorker, tmp_path: Path
) -> None:
    assert alice(url, "incidents", "role", "INC-1", "commander", "alice").returncode == 0
    worker.advance(timedelta(minutes=42))
    assert alice(url, "incidents", "resolve", "INC-1").returncode == 0
    worker.drain()
    path = tmp_path / "docs" / "postmortems" / "INC-1.md"
    path.parent.mkdir(parents=True)
    # `sevrouter postmortem INC-1 > docs/postmortems/INC-1.md`
    with path.open("w") as handle:
        result = sevrouter("postmortem", "INC-1", "--url", url, stdout=handle)
    assert (result.returncode, result.stderr) == (0, "")
    draft = path.read_text()
    assert draft == client.get("/api/v1/incidents/INC-1/postmortem").text
    lines = draft.splitlines()
    assert lines[:6] == [
        "## Incident Postmortem: INC-1 DiskFull on db-1",
        "",
        "**Date**: 2026-11-26",
        "**Duration**: 2026-11-26 10:00 UTC - 2026-11-26 10:42 UTC (42m)",
        "**Severity**: SEV1 (Complete outage)",
        "**Author**: alice",
    ]
    assert "| Incident Commander | alice |" in lines
    assert "- 2026-11-26 10:42:00 UTC - **Resolved (root cause fixed)**: Resolved by alice" in lines
    assert draft.endswith("from the incident's timeline._\n")  # one newline, as served


# --- actions -----------------------------------------------------------------------------------


def test_action_items_added_listed_and_done(
    client: httpx.Client, url: str, worker: TestWorker
) -> None:
    steps = [
        (["actions", "INC-1"], "INC-1 has no action items\n"),
        (
            [
                "actions",
                "INC-1",
                "add",
                "Alert at 80% disk",
                "--owner",
                "bob",
                "--due",
                "2026-12-04",
            ],
            "INC-1: added #1 [ ] Alert at 80% disk - Owner: bob - Due: 2026-12-04\n",
        ),
        (
            ["actions", "inc-1", "add", "Move WAL archives to S3"],
            "INC-1: added #2 [ ] Move WAL archives to S3 - Owner: unassigned - Due: no date\n",
        ),
        (
            ["actions", "INC-1", "done", "2"],
            "INC-1: done #2 [x] Move WAL archives to S3 - Owner: unassigned - Due: no date\n",
        ),
        (
            ["actions", "INC-1", "list"],
            "#1 [ ] Alert at 80% disk - Owner: bob - Due: 2026-12-04\n"
            "#2 [x] Move WAL archives to S3 - Owner: unassigned - Due: no date\n",
        ),
    ]
    for args, stdout in steps:
        assert outcome(alice(url, *args)) == (0, stdout, "")
    listed = sevrouter("actions", "INC-1", "--json", "--url", url)
    assert (listed.returncode, json.loads(listed.stdout)) == (
        0,
        client.get("/api/v1/incidents/INC-1/actions").json(),
    )
    worker.drain()
    assert [entry for entry in timeline(client) if entry[0].startswith("action_")] == [
        ("action_added", "alice", "Action item #1 added by alice"),
        ("action_added", "alice", "Action item #2 added by alice"),
        ("action_done", "alice", "Action item #2 done, marked by alice"),
    ]


# --- refusals and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "token", "stderr"),
    [
        # Writes need a token: the API's 401 explained. Assigning a role ...
        pytest.param(
            ["incidents", "role", "INC-1", "scribe", "bob"], None, NO_TOKEN, id="role-no-token"
        ),
        # ... posting an update ...
        pytest.param(
            ["incidents", "update", "INC-1", "--status", "investigating"],
            None,
            NO_TOKEN,
            id="update-no-token",
        ),
        # ... changing the severity (a token nobody has is no token) ...
        pytest.param(
            ["incidents", "severity", "INC-1", "SEV2", "--reason", "x"],
            "wrong",
            NO_TOKEN,
            id="severity-wrong-token",
        ),
        # ... and adding an action item.
        pytest.param(["actions", "INC-1", "add", "Fix it"], None, NO_TOKEN, id="action-no-token"),
        # The next update cannot be due before now (10:00): the API's 400, naming the field.
        pytest.param(
            [
                "incidents",
                "update",
                "INC-1",
                "--status",
                "investigating",
                "--next",
                "2026-11-26T09:00:00Z",
            ],
            ALICE_TOKEN,
            "sevrouter: next_update must be in the future (HTTP 400)\n",
            id="next-in-the-past",
        ),
        # An incident that does not exist: 404 from every command; assigning a role ...
        pytest.param(
            ["incidents", "role", "INC-9", "scribe", "bob"],
            ALICE_TOKEN,
            "sevrouter: no incident 'INC-9' (HTTP 404)\n",
            id="role-unknown",
        ),
        # ... posting an update ...
        pytest.param(
            ["incidents", "update", "INC-9", "--status", "resolved"],
            ALICE_TOKEN,
            "sevrouter: no incident 'INC-9' (HTTP 404)\n",
            id="update-unknown",
        ),
        # ... changing its severity ...
        pytest.param(
            ["incidents", "severity", "INC-9", "SEV2", "--reason", "x"],
            ALICE_TOKEN,
            "sevrouter: no incident 'INC-9' (HTTP 404)\n",
            id="severity-unknown",
        ),
        # ... its postmortem (no token needed to read) ...
        pytest.param(
            ["postmortem", "INC-9"],
            None,
            "sevrouter: no incident 'INC-9' (HTTP 404)\n",
            id="postmortem-unknown",
        ),
        # ... and its action items: not an empty list.
        pytest.param(
            ["actions", "INC-9"],
            None,
            "sevrouter: no incident 'INC-9' (HTTP 404)\n",
            id="actions-unknown",
        ),
        # An action item that does not exist.
        pytest.param(
            ["actions", "INC-1", "done", "3"],
            ALICE_TOKEN,
            "sevrouter: INC-1 has no action item #3 (HTTP 404)\n",
            id="action-item-unknown",
        ),
    ],
)
def test_refusals_exit_1_with_the_reason(
    client: httpx.Client, url: str, args: list[str], token: str | None, stderr: str
) -> None:
    before = client.get("/api/v1/incidents/INC-1").json()
    credentials = ["--token", token] if token else []
    result = sevrouter(*args, "--url", url, *credentials)
    assert outcome(result) == (1, "", stderr)
    assert client.get("/api/v1/incidents/INC-1").json() == before


def test_severity_of_a_resolved_incident_is_refused(client: httpx.Client, url: str) -> None:
    assert alice(url, "incidents", "resolve", "INC-1").returncode == 0
    result = alice(url, "incidents", "severity", "INC-1", "SEV3", "--reason", "in hindsight")
    assert outcome(result) == (
        1,
        "",
        "sevrouter: cannot change the severity of INC-1: it is resolved (HTTP 409)\n",
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        # A role the seed does not have.
        pytest.param(
            ["incidents", "role", "INC-1", "boss", "bob"],
            "argument ROLE: 'boss' is not one of commander, tech_lead, communications, scribe",
            id="bad-role",
        ),
        # A status the seed does not have.
        pytest.param(
            ["incidents", "update", "INC-1", "--status", "fixed"],
            "argument --status: 'fixed' is not one of investigating, mitigating, resolved",
            id="bad-status",
        ),
        # Every update says what the status is.
        pytest.param(
            ["incidents", "update", "INC-1", "--fact", "x"],
            "the following arguments are required: --status",
            id="no-status",
        ),
        # Neither a duration nor a time.
        pytest.param(
            ["incidents", "update", "INC-1", "--status", "investigating", "--next", "soon"],
            "argument --next: 'soon' is neither a duration (30m, 1h) nor an ISO time "
            "(2026-11-26T14:30Z; without an offset, UTC)",
            id="bad-next",
        ),
        # A severity that does not exist.
        pytest.param(
            ["incidents", "severity", "INC-1", "SEV5", "--reason", "x"],
            "argument SEV: 'SEV5' is not one of SEV1, SEV2, SEV3, SEV4",
            id="bad-severity",
        ),
        # A severity change without its reason.
        pytest.param(
            ["incidents", "severity", "INC-1", "SEV2"],
            "the following arguments are required: --reason",
            id="no-reason",
        ),
        # A due date that is not a date.
        pytest.param(
            ["actions", "INC-1", "add", "Fix it", "--due", "2026-12-32"],
            "argument --due: '2026-12-32' is not a date (YYYY-MM-DD)",
            id="bad-due",
        ),
        # Action items are numbered from 1.
        pytest.param(
            ["actions", "INC-1", "done", "0"],
            "argument N: '0' is not an action item number (1, 2, ...)",
            id="bad-item-number",
        ),
    ],
)
def test_usage_errors_exit_2_before_calling_the_receiver(args: list[str], error: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens: the call is never made
    result = sevrouter(*args, "--url", nobody, "--token", ALICE_TOKEN)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1].endswith(f": error: {error}")


@pytest.mark.parametrize(
    "args",
    [
        # Assigning a role.
        pytest.param(["incidents", "role", "INC-1", "commander", "alice"], id="role"),
        # Posting an update.
        pytest.param(["incidents", "update", "INC-1", "--status", "resolved"], id="update"),
        # Changing the severity.
        pytest.param(["incidents", "severity", "INC-1", "SEV2", "--reason", "x"], id="severity"),
        # Reading the postmortem.
        pytest.param(["postmortem", "INC-1"], id="postmortem"),
        # Listing action items.
        pytest.param(["actions", "INC-1"], id="actions"),
        # Completing one.
        pytest.param(["actions", "INC-1", "done", "1"], id="action-done"),
    ],
)
def test_unreachable_receiver_exits_2(args: list[str]) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = sevrouter(*args, "--url", nobody, "--token", ALICE_TOKEN)
    assert outcome(result) == (2, "", "sevrouter: cannot reach the receiver: ConnectError\n")


class _Impostor(BaseHTTPRequestHandler):
    """Answers every GET and POST with the server's one canned reply."""

    def _answer(self) -> None:
        assert isinstance(self.server, _ImpostorServer)
        status, content_type, body = self.server.reply
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # BaseHTTPRequestHandler dispatches on `do_<METHOD>`.
    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _ImpostorServer(ThreadingHTTPServer):
    reply: tuple[int, str, bytes]


@contextlib.contextmanager
def impostor(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """Something that is not sevrouter listening where --url points (a proxy, a wrong port)."""
    server = _ImpostorServer(("127.0.0.1", 0), _Impostor)
    server.reply = (status, content_type, body)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "content_type", "body", "code", "stderr"),
    [
        # The receiver cannot serve it now (Redis down): exit 2, like unreachable.
        pytest.param(
            503,
            "application/json",
            b'{"error":"storage unavailable, retry later"}',
            2,
            "sevrouter: storage unavailable, retry later (HTTP 503)\n",
            id="503",
        ),
        # A 200 that is not sevrouter (a proxy's sign-in page): an error, not a traceback.
        pytest.param(
            200,
            "text/html",
            b"<html>sign in</html>",
            1,
            "sevrouter: the answer from {url}/api/v1/incidents/INC-1/{path} is not sevrouter's "
            "API (HTTP 200, text/html); check --url\n",
            id="html",
        ),
        # JSON, but not sevrouter's answer.
        pytest.param(
            200,
            "application/json",
            b'{"ok":true}',
            1,
            "sevrouter: the answer from {url}/api/v1/incidents/INC-1/{path} is not sevrouter's "
            "API (HTTP 200, application/json); check --url\n",
            id="foreign-json",
        ),
    ],
)
@pytest.mark.parametrize(
    ("args", "path"),
    [
        # Reading the postmortem (Markdown expected).
        pytest.param(["postmortem", "INC-1"], "postmortem", id="postmortem"),
        # Listing action items (JSON expected) ...
        pytest.param(["actions", "INC-1"], "actions", id="actions-list"),
        # ... completing one ...
        pytest.param(["actions", "INC-1", "done", "1"], "actions/1/done", id="action-done"),
        # ... posting an update ...
        pytest.param(
            ["incidents", "update", "INC-1", "--status", "resolved"], "updates", id="update"
        ),
        # ... assigning a role ...
        pytest.param(["incidents", "role", "INC-1", "scribe", "bob"], "roles", id="role"),
        # ... and changing the severity.
        pytest.param(
            ["incidents", "severity", "INC-1", "SEV2", "--reason", "x"], "severity", id="severity"
        ),
    ],
)
def test_answers_that_are_not_the_api_are_errors(
    status: int,
    content_type: str,
    body: bytes,
    code: int,
    stderr: str,
    args: list[str],
    path: str,
) -> None:
    with impostor(status, content_type, body) as url:
        result = sevrouter(*args, "--url", url, "--token", ALICE_TOKEN)
    assert outcome(result) == (code, "", stderr.format(url=url, path=path))


def test_connection_options_before_the_action_or_from_the_environment(
    client: httpx.Client, url: str
) -> None:
    """`incidents --url U --token T role ...` and $SEVROUTER_URL/$SEVROUTER_TOKEN work too."""
    before = sevrouter(
        "incidents", "--url", url, "--token", ALICE_TOKEN, "role", "INC-1", "scribe", "bob"
    )
    assert outcome(before) == (0, "INC-1: bob is Scribe\n", "")
    env = {"SEVROUTER_URL": url, "SEVROUTER_TOKEN": BOB_TOKEN}
    from_env = sevrouter("actions", "INC-1", "add", "Write the runbook", env=env)
    assert outcome(from_env) == (
        0,
        "INC-1: added #1 [ ] Write the runbook - Owner: unassigned - Due: no date\n",
        "",
    )
