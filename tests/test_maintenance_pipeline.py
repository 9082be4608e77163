"""Maintenance windows in the pipeline: alerts in a window are muted (recorded, never paged),
and channels hear when a window starts and ends, once however many workers run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from router.maintenance_notify import announce
from tests.support.http_receiver import Receiver, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.rules import TOKEN, write_rules
from tests.support.worker import TestWorker

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
NOW = datetime.now(UTC)


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = write_rules(tmp_path / "rules")
    windows = {
        "maintenance": [
            {
                "name": "db-upgrade",
                "match": 'cluster="eu-1"',
                "start": (NOW - timedelta(hours=1)).isoformat(),
                "end": (NOW + timedelta(hours=1)).isoformat(),
                "notify": ["pager"],
                "comment": "Postgres 17 upgrade",
            }
        ]
    }
    (path / "maintenance.yaml").write_text(yaml.safe_dump(windows))
    return path


def test_alert_in_a_window_is_muted(client: httpx.Client) -> None:
    body = alertmanager_body([{"alertname": "DbDown", "severity": "critical", "cluster": "eu-1"}])
    answer = client.post(AM, content=body, headers=HEADERS).json()
    assert answer["outcomes"] == {"muted": 1}
    assert answer["muted"] == {"maintenance:db-upgrade": 1}
    other = alertmanager_body([{"alertname": "DbDown", "severity": "critical", "cluster": "us-1"}])
    assert client.post(AM, content=other, headers=HEADERS).json()["outcomes"] == {"opened": 1}


def test_window_start_and_end_are_announced_once(worker: TestWorker, sink: Receiver) -> None:
    since, until = NOW - timedelta(hours=2), NOW + timedelta(hours=2)
    assert announce(worker.context, since, until) == 2
    assert announce(worker.context, since, until) == 0  # claimed: a second worker stays quiet
    titles = [r.headers["x-sevrouter-event"] for r in sink.requests]
    assert titles == ["incident.notify", "incident.notify"]
    keys = [r.headers["x-sevrouter-idempotency-key"] for r in sink.requests]
    assert [k.split(":")[2] for k in keys] == ["start", "end"]
