"""Webhook -> atomic dedupe -> event stream -> rq jobs -> pages, with real Redis and a real rq
worker, and a local HTTP server standing in for the paged endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from redis import Redis

from router.jobs import process_events
from router.keys import Keys
from router.notify.webhook import verify
from router.secrets import Secret
from tests.support.http_receiver import Receiver, Recorded, Reply, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.rules import HMAC_SECRET, TOKEN
from tests.support.worker import TestWorker

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
DISK_FULL = {"alertname": "DiskFull", "cluster": "eu-1", "instance": "db-1"}


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


def post(client: httpx.Client, *alerts: dict[str, str], status: str = "firing") -> dict[str, Any]:
    ends = "2026-11-26T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    response = client.post(
        AM, content=alertmanager_body(alerts, status=status, ends_at=ends), headers=HEADERS
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def pages(sink: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in sink.requests]


def page_jobs(worker: TestWorker) -> list[str]:
    """Scheduled page retries (escalation deadlines are scheduled too)."""
    return [job for job in worker.scheduled() if job.startswith("page-")]


def timeline(client: httpx.Client, incident: str) -> list[tuple[str, str]]:
    entries = client.get(f"/api/v1/incidents/{incident}").json()["timeline"]
    return [(e["kind"], e["text"]) for e in entries]


def test_critical_alert_pages_once_with_signed_body(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    post(
        client,
        DISK_FULL | {"severity": "critical"},
        DISK_FULL | {"severity": "critical", "instance": "db-2"},
    )
    worker.drain()
    assert len(sink.requests) == 1
    request: Recorded = sink.requests[0]
    assert request.path == "/page"
    assert request.headers["x-sevrouter-event"] == "incident.opened"
    assert request.headers["x-sevrouter-idempotency-key"] == "INC-1:1:channel:pager:pager:trigger"
    assert verify(
        Secret(HMAC_SECRET),
        timestamp=request.headers["x-sevrouter-timestamp"],
        body=request.body,
        signature=request.headers["x-sevrouter-signature"],
        now=worker.clock(),
    )
    page = json.loads(request.body)
    assert page["event"] == "incident.opened"
    assert page["title"] == "[SEV2] INC-1 DiskFull on db-1 (triggered)"
    incident = page["incident"]
    assert (incident["id"], incident["severity"], incident["team"]) == ("INC-1", "SEV2", "platform")
    assert incident["alerts_firing"] == 2
    assert sorted(a["labels"]["instance"] for a in incident["alerts"]) == ["db-1", "db-2"]
    kinds = [kind for kind, _ in timeline(client, "INC-1")]
    # The pager is paged (step 1) and the team's log channel is told.
    assert kinds == ["opened", "escalation", "added", "page_sent", "page_sent"]


def test_repeats_page_no_one(client: httpx.Client, worker: TestWorker, sink: Receiver) -> None:
    alert = DISK_FULL | {"severity": "critical"}
    post(client, alert)
    worker.drain()
    for _ in range(5):  # Alertmanager's repeat_interval re-sends, and an HA peer's copies
        assert post(client, alert)["duplicates"] == 1
    worker.drain()
    assert len(sink.requests) == 1
    kinds = [k for k, _ in timeline(client, "INC-1")]
    assert kinds == ["opened", "escalation", "page_sent", "page_sent"]


def test_warning_notifies_team_channel_without_paging(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    # SEV3 notifies the team channel (a log channel here) and pages no one at once.
    post(client, DISK_FULL | {"severity": "warning"})
    worker.drain()
    assert sink.requests == []
    assert ("page_sent", "notify page to team-log delivered (attempt 1)") in timeline(
        client, "INC-1"
    )


def test_higher_severity_joining_raises_and_pages_now(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    post(client, DISK_FULL | {"severity": "warning"})
    worker.drain()
    answer = post(client, DISK_FULL | {"severity": "critical", "instance": "db-2"})
    assert answer["incidents"] == {"opened": [], "touched": ["INC-1"]}
    worker.drain()
    incident = client.get("/api/v1/incidents/INC-1").json()
    assert incident["severity"] == "SEV2"
    assert (
        "severity_raised",
        "Severity raised from SEV3 to SEV2 by alert DiskFull "
        "{cluster=eu-1, instance=db-2, severity=critical}",
    ) in timeline(client, "INC-1")
    assert [p["event"] for p in pages(sink)] == ["incident.severity_raised"]
    assert (
        sink.requests[0].headers["x-sevrouter-idempotency-key"]
        == "INC-1:1:channel:pager:pager:trigger"
    )


def test_all_resolved_mitigates_and_tells_the_paged(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    alert = DISK_FULL | {"severity": "critical"}
    post(client, alert)
    worker.drain()
    answer = post(client, alert, status="resolved")
    assert answer["outcomes"] == {"all_resolved": 1}
    worker.drain()
    assert [p["event"] for p in pages(sink)] == ["incident.opened", "incident.mitigated"]
    assert pages(sink)[1]["incident"]["state"] == "mitigated"


def test_refire_within_flap_window_reopens(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    alert = DISK_FULL | {"severity": "critical"}
    post(client, alert)
    worker.drain()
    post(client, alert, status="resolved")
    worker.drain()
    answer = post(client, alert)
    assert answer["outcomes"] == {"reopened": 1}
    assert answer["incidents"]["touched"] == ["INC-1"]
    worker.drain()
    incident = client.get("/api/v1/incidents/INC-1").json()
    assert (incident["state"], incident["reopen_count"]) == ("triggered", 1)
    keys = [r.headers["x-sevrouter-idempotency-key"] for r in sink.requests]
    assert keys == [
        "INC-1:1:channel:pager:pager:trigger",
        "INC-1:1:channel:pager:pager:mitigated-0",
        "INC-1:1:channel:pager:pager:trigger-reopen-1",
    ]


def test_refire_after_flap_window_opens_new_incident(client: httpx.Client, redis: Redis) -> None:
    alert = DISK_FULL | {"severity": "critical"}
    post(client, alert)
    post(client, alert, status="resolved")
    # Mitigated 31 minutes ago: past the 30-minute flap window.
    mitigated = int(redis.hget(Keys("sevrouter").incident("INC-1"), "mitigated_at") or 0)
    redis.hset(Keys("sevrouter").incident("INC-1"), "mitigated_at", mitigated - 31 * 60 * 1000)
    answer = post(client, alert)
    assert answer["incidents"]["opened"] == ["INC-2"]
    assert client.get("/api/v1/incidents/INC-1").json()["state"] == "mitigated"


def test_resolve_never_seen_firing_is_ignored(client: httpx.Client) -> None:
    answer = post(client, DISK_FULL, status="resolved")
    assert answer["outcomes"] == {"ignored": 1}
    assert client.get("/api/v1/incidents").json()["incidents"] == []


def test_storm_of_alerts_is_one_incident(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    storm = [DISK_FULL | {"severity": "critical", "instance": f"db-{n}"} for n in range(200)]
    answer = post(client, *storm)
    assert answer["outcomes"] == {"opened": 1, "added": 199}
    worker.drain()
    assert len(sink.requests) == 1
    assert pages(sink)[0]["incident"]["alerts_firing"] == 200


def test_transient_failure_is_retried_with_backoff(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    sink.script(Reply(503), Reply(429, headers=(("Retry-After", "7"),)), Reply(200))
    post(client, DISK_FULL | {"severity": "critical"})
    worker.drain()
    assert len(sink.requests) == 1
    assert len(page_jobs(worker)) == 1
    # First backoff: 1 s +/- 20 %, scheduled on whole seconds (rounded up, never early).
    worker.advance(timedelta(seconds=3))
    assert len(sink.requests) == 2
    worker.advance(timedelta(seconds=5))  # Retry-After 7 s has not passed yet
    assert len(sink.requests) == 2
    worker.advance(timedelta(seconds=3))  # 7 s, rounded up to the next whole second
    assert len(sink.requests) == 3
    attempts = [(k, t) for k, t in timeline(client, "INC-1") if "to pager" in t]
    assert [k for k, _ in attempts] == ["page_retry", "page_retry", "page_sent"]
    texts = [text for kind, text in timeline(client, "INC-1") if kind == "page_retry"]
    assert "attempt 1 failed: HTTP 503" in texts[0]
    assert "attempt 2 failed: HTTP 429; retrying in 7s" in texts[1]
    # Every attempt carried the same idempotency key, so the receiver can dedupe them.
    assert len({r.headers["x-sevrouter-idempotency-key"] for r in sink.requests}) == 1


def test_permanent_failure_is_recorded_and_not_retried(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    sink.script(Reply(400, body=b'{"status":"invalid event","message":"Event object is invalid"}'))
    post(client, DISK_FULL | {"severity": "critical"})
    worker.drain()
    assert page_jobs(worker) == []
    failed = [text for kind, text in timeline(client, "INC-1") if kind == "page_failed"]
    assert len(failed) == 1
    assert "failed permanently after 1 attempt(s): HTTP 400" in failed[0]


def test_replayed_events_change_nothing(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    # A job run twice (a worker died after the work but before rq recorded it) must not page
    # twice or write the timeline twice.
    redis, keys = worker.redis, worker.context.keys
    post(client, DISK_FULL | {"severity": "critical"})
    entries: Any = redis.xrange(keys.events)
    entry_id, fields = entries[0]
    worker.drain()
    process_events(
        fields[b"incident"].decode(),
        entry_id.decode(),
        int(fields[b"at"]),
        fields[b"events"].decode(),
    )
    worker.drain()
    assert len(sink.requests) == 1
    kinds = [k for k, _ in timeline(client, "INC-1")]
    assert kinds == ["opened", "escalation", "page_sent", "page_sent"]
