"""Flap control: an alert that resolves and fires again repeatedly within the flap window is
marked flapping; its incident stays open and stops re-paging until it has been quiet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support.http_receiver import Receiver, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.rules import TOKEN
from tests.support.worker import TestWorker

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
FLAPPY = {"alertname": "LinkFlap", "severity": "critical", "cluster": "eu-1"}


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


def post(client: httpx.Client, status: str) -> dict[str, Any]:
    ends = "2026-11-26T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    body = alertmanager_body([FLAPPY], status=status, ends_at=ends)
    response = client.post(AM, content=body, headers=HEADERS)
    assert response.status_code == 202
    answer: dict[str, Any] = response.json()
    return answer


def test_flapping_alert_keeps_its_incident_open_and_stops_paging(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    outcomes = []
    for _ in range(6):
        outcomes.append(post(client, "firing")["outcomes"])
        worker.drain()
        outcomes.append(post(client, "resolved")["outcomes"])
        worker.drain()
    # Fire, resolve (mitigated), re-fire x2 reopen; the third re-fire marks it flapping, after
    # which resolves no longer mitigate and re-fires just join the open incident.
    assert outcomes[:6] == [
        {"opened": 1},
        {"all_resolved": 1},
        {"reopened": 1},
        {"all_resolved": 1},
        {"reopened": 1},
        {"all_resolved": 1},
    ]
    assert outcomes[6] == {"reopened": 1}
    assert outcomes[7:] == [
        {"resolved": 1},
        {"added": 1},
        {"resolved": 1},
        {"added": 1},
        {"resolved": 1},
    ]
    incident = client.get("/api/v1/incidents/INC-1").json()
    assert incident["flapping"] is True
    assert incident["state"] == "triggered"
    paging = [r.headers["x-sevrouter-event"] for r in sink.requests]
    # Pages stop once it flaps: no reopen page after the flapping mark.
    assert paging.count("incident.reopened") == 3
    kinds = [e["kind"] for e in incident["timeline"]]
    assert kinds.count("flapping") == 1


def test_flapping_settles_after_a_quiet_window(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    for _ in range(4):
        post(client, "firing")
        post(client, "resolved")
    worker.drain()
    assert client.get("/api/v1/incidents/INC-1").json()["flapping"] is True
    worker.advance(timedelta(minutes=29))
    assert client.get("/api/v1/incidents/INC-1").json()["state"] == "triggered"
    worker.advance(timedelta(minutes=2))
    incident = client.get("/api/v1/incidents/INC-1").json()
    assert (incident["state"], incident["flapping"]) == ("mitigated", False)
