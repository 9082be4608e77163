"""Escalation by severity on a timeline: a real rq worker, a test clock, a local paged endpoint.

The test rules page `pager` (/page) in step 1 and whoever is on call in schedule `primary`
(alice this week, through the `backup` channel, /page/backup) in step 2. SEV2's response time
is 15 minutes, SEV3's an hour; SEV4 waits for business hours (Mon-Fri 09:00-17:00 UTC).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.http_receiver import Receiver, Reply, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.rules import ALICE_TOKEN, PAGERDUTY_WEBHOOK_SECRET, TOKEN
from tests.support.worker import TestWorker

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
DISK = {"alertname": "DiskFull", "cluster": "eu-1", "instance": "db-1"}


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


@pytest.fixture
def at_thursday(worker: TestWorker) -> TestWorker:
    worker.clock.now = THURSDAY_10
    return worker


def post(client: httpx.Client, severity: str, **labels: str) -> dict[str, Any]:
    body = alertmanager_body([DISK | {"severity": severity} | labels])
    response = client.post(AM, content=body, headers=HEADERS)
    assert response.status_code == 202
    answer: dict[str, Any] = response.json()
    return answer


def seen(sink: Receiver) -> list[tuple[str, str]]:
    """(path, event) of every request the paged endpoint received."""
    return [(r.path, r.headers["x-sevrouter-event"]) for r in sink.requests]


def timeline(client: httpx.Client, incident: str = "INC-1") -> list[tuple[str, str, str]]:
    entries = client.get(f"/api/v1/incidents/{incident}").json()["timeline"]
    return [(e["kind"], e["actor"], e["text"]) for e in entries]


def test_sev2_unacknowledged_pages_step_2_at_15_minutes(
    client: httpx.Client, at_thursday: TestWorker, sink: Receiver
) -> None:
    worker = at_thursday
    post(client, "critical")
    worker.drain()
    assert seen(sink) == [("/page", "incident.opened")]
    worker.advance(timedelta(minutes=14, seconds=59))
    assert seen(sink) == [("/page", "incident.opened")]
    worker.advance(timedelta(seconds=1))
    assert seen(sink) == [("/page", "incident.opened"), ("/page/backup", "incident.escalated")]
    # Step 2 went to alice, on call in `primary` this week, at her address on `backup`.
    step2 = sink.requests[1]
    assert (
        step2.headers["x-sevrouter-idempotency-key"] == "INC-1:2:person:alice:backup:escalate-2-r0"
    )
    assert json.loads(step2.body)["recipient"] == "alice@example.com"
    # Step 2 was the last (no repeat): ten minutes later escalation says it is exhausted.
    worker.advance(timedelta(minutes=10))
    assert len(sink.requests) == 2
    assert timeline(client)[-1][2] == "escalation exhausted: every step paged, unacknowledged"


def test_acknowledged_at_5_minutes_step_2_never_fires(
    client: httpx.Client, at_thursday: TestWorker, sink: Receiver
) -> None:
    worker = at_thursday
    post(client, "critical")
    worker.drain()
    worker.advance(timedelta(minutes=5))
    response = client.post("/api/v1/incidents/INC-1/ack", headers=ALICE)
    assert response.status_code == 200
    assert response.json()["state"] == "acknowledged"
    worker.drain()
    # Whoever was paged hears that alice took it; nobody else is woken.
    assert seen(sink) == [("/page", "incident.opened"), ("/page", "incident.acknowledged")]
    worker.advance(timedelta(minutes=30))
    assert len(sink.requests) == 2
    assert ("acknowledged", "alice", "Acknowledged by alice") in timeline(client)


def test_sev3_raised_to_sev1_pages_at_once(
    client: httpx.Client, at_thursday: TestWorker, sink: Receiver
) -> None:
    worker = at_thursday
    post(client, "warning")
    worker.drain()
    assert sink.requests == []  # SEV3: the team channel (a log channel) only
    post(client, "page", instance="db-2")  # same group, SEV1
    worker.drain()
    assert seen(sink) == [("/page", "incident.severity_raised")]
    incident = client.get("/api/v1/incidents/INC-1").json()
    assert incident["severity"] == "SEV1"


def test_sev3_unacknowledged_pages_after_its_response_time(
    client: httpx.Client, at_thursday: TestWorker, sink: Receiver
) -> None:
    worker = at_thursday
    post(client, "warning")
    worker.drain()
    worker.advance(timedelta(minutes=59))
    assert sink.requests == []
    worker.advance(timedelta(minutes=1))
    assert seen(sink) == [("/page", "incident.opened")]


def test_sev4_at_23_00_waits_for_business_hours(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    worker.clock.now = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # a Friday night
    post(client, "info")
    worker.drain()
    assert not [t for k, _, t in timeline(client) if k == "page_sent"]
    assert timeline(client)[-1][2] == "team channel at Mon 09:00 UTC"
    worker.advance(timedelta(days=2, hours=9, minutes=59))  # Monday 08:59
    assert not [t for k, _, t in timeline(client) if k == "page_sent"]
    worker.advance(timedelta(minutes=1))
    assert ("page_sent", "sevrouter", "notify page to team-log delivered (attempt 1)") in timeline(
        client
    )
    assert sink.requests == []  # SEV4 never pages


def test_acknowledging_cancels_pending_retries(
    client: httpx.Client, at_thursday: TestWorker, sink: Receiver
) -> None:
    worker = at_thursday
    sink.script(Reply(503))
    post(client, "critical")
    worker.drain()
    assert len(sink.requests) == 1
    assert client.post("/api/v1/incidents/INC-1/ack", headers=ALICE).status_code == 200
    worker.drain()
    worker.advance(timedelta(minutes=20))
    assert len(sink.requests) == 1  # the retry found the page cancelled; step 2 never came


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        # Acknowledging twice is harmless: the second says it already is.
        pytest.param(["ack", "ack"], [(200, "ok"), (200, "same")], id="ack-twice"),
        # Closing needs a resolved incident (and its postmortem): refused with 409.
        pytest.param(["close"], [(409, "refused")], id="close-triggered"),
        # The full human path.
        pytest.param(
            ["ack", "mitigate", "resolve", "close"],
            [(200, "ok"), (200, "ok"), (200, "ok"), (200, "ok")],
            id="full-path",
        ),
        # Reopening a resolved incident triggers it again.
        pytest.param(["resolve", "reopen"], [(200, "ok"), (200, "ok")], id="reopen"),
        # Reopening a triggered incident: it already is (idempotent, like a repeated ack).
        pytest.param(["reopen"], [(200, "same")], id="reopen-triggered"),
        # Reopening an acknowledged one does not apply: someone is on it.
        pytest.param(["ack", "reopen"], [(200, "ok"), (409, "refused")], id="reopen-acknowledged"),
    ],
)
def test_transitions(
    client: httpx.Client,
    at_thursday: TestWorker,
    actions: list[str],
    expected: list[tuple[int, str]],
) -> None:
    post(client, "critical")
    results = []
    for action in actions:
        response = client.post(f"/api/v1/incidents/INC-1/{action}", headers=ALICE)
        results.append((response.status_code, response.json()["result"]))
    assert results == expected


def test_write_calls_need_a_token(client: httpx.Client, at_thursday: TestWorker) -> None:
    post(client, "critical")
    assert client.post("/api/v1/incidents/INC-1/ack").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/v1/incidents/INC-1/ack", headers=wrong).status_code == 401
    assert client.post("/api/v1/incidents/INC-1/explode", headers=ALICE).status_code == 404
    assert client.post("/api/v1/incidents/INC-9/ack", headers=ALICE).status_code == 404


def test_one_click_link_acknowledges_after_confirmation(
    client: httpx.Client, at_thursday: TestWorker, sink: Receiver
) -> None:
    worker = at_thursday
    post(client, "critical")
    worker.drain()
    links = json.loads(sink.requests[0].body)["links"]
    assert links["incident"] == "http://sevrouter.test/api/v1/incidents/INC-1"
    ack = urlsplit(links["ack"])
    local = f"{ack.path}?{ack.query}"
    # A link preview (GET) only shows a confirmation form; nothing changes.
    preview = client.get(local)
    assert preview.status_code == 200
    assert "<form method=post>" in preview.text
    assert client.get("/api/v1/incidents/INC-1").json()["state"] == "triggered"
    assert client.post(local).status_code == 200
    assert client.get("/api/v1/incidents/INC-1").json()["state"] == "acknowledged"
    # The signature covers incident, action, person and expiry: change one and it fails.
    query = parse_qs(ack.query)
    forged = local.replace(f"person={query['person'][0]}", "person=mallory")
    assert client.post(forged).status_code == 403


def _pagerduty(
    event_type: str, incident_key: str, secret: str = PAGERDUTY_WEBHOOK_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": {
                "id": "01DEN4HPBQAJ7GRZJQ7E6ZPCRM",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-11-26T10:05:00.000Z",
                "agent": {"type": "user_reference", "summary": "Alice Example"},
                "data": {"id": "PGR0VU2", "type": "incident", "incident_key": incident_key},
            }
        }
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": f"v1={signature}"}


def test_acknowledge_in_pagerduty_acknowledges_here(
    client: httpx.Client, at_thursday: TestWorker, sink: Receiver
) -> None:
    worker = at_thursday
    post(client, "critical")
    worker.drain()
    body, headers = _pagerduty("incident.acknowledged", "INC-1")
    response = client.post("/api/v1/pagerduty/webhook", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["state"] == "acknowledged"
    worker.drain()
    assert (
        "acknowledged",
        "pagerduty:Alice Example",
        "Acknowledged by pagerduty:Alice Example",
    ) in timeline(client)
    # PagerDuty also reports the acks we mirror to it: applying one again changes nothing.
    assert (
        client.post("/api/v1/pagerduty/webhook", content=body, headers=headers).json()["result"]
        == "same"
    )


@pytest.mark.parametrize(
    ("secret", "event_type", "status"),
    [
        # A signature made with another secret is refused.
        pytest.param("wrong", "incident.resolved", 401, id="bad-signature"),
        # Event types we do not mirror are accepted and ignored.
        pytest.param(PAGERDUTY_WEBHOOK_SECRET, "incident.annotated", 200, id="ignored-type"),
    ],
)
def test_pagerduty_webhook_refusals(
    client: httpx.Client, at_thursday: TestWorker, secret: str, event_type: str, status: int
) -> None:
    post(client, "critical")
    body, headers = _pagerduty(event_type, "INC-1", secret)
    response = client.post("/api/v1/pagerduty/webhook", content=body, headers=headers)
    assert response.status_code == status
    assert client.get("/api/v1/incidents/INC-1").json()["state"] == "triggered"
