"""The same webhook delivered concurrently by several clients to several receiver processes opens
exactly one incident and sends exactly one page; and a Redis outage costs a retry, not an alert.

Everything runs as in production: `sevrouter serve` and `sevrouter worker` child processes, a
real Redis, and a recording HTTP sink as the paging endpoint. Bodies are Alertmanager 0.25's
(`webhook_body` is checked against a real capture in test_alertmanager.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from router.webhook import RETRY_AFTER_SECONDS
from tests.e2e.helpers import (
    alert_history,
    check_page,
    go_json,
    incident,
    incidents,
    pages,
    pages_sent,
    poll,
    processes,
    redis_on_port,
    serving,
    wait_drained,
    webhook_alert,
    webhook_body,
    working,
)
from tests.support.http_receiver import Receiver
from tests.support.processes import free_port, stop
from tests.support.rules import TOKEN

RECEIVERS = 3
WORKERS = 2
CLIENTS = 12
ROUNDS = 4
ALERTS = 20
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/json",
    "User-Agent": "Alertmanager/0.25.0",
}
WEBHOOK = "/api/v1/webhooks/alertmanager"


def group(alertname: str, starts_at: datetime, ends_at: datetime | None = None) -> bytes:
    """One Alertmanager notification: `ALERTS` critical alerts of one alertname, one group."""
    alerts = [
        webhook_alert(
            {
                "alertname": alertname,
                "instance": f"node-{index:02d}.e2e.test:9100",
                "job": "node",
                "severity": "critical",
            },
            starts_at=starts_at,
            ends_at=ends_at,
            annotations={"summary": f"node-{index:02d} is down"},
        )
        for index in range(ALERTS)
    ]
    return go_json(webhook_body(alerts, ["alertname"]))


@dataclass(frozen=True)
class Answer:
    receiver: str
    status: int
    receipt: dict[str, Any]
    retry_after: str | None
    span: tuple[float, float]  # monotonic times the request was sent and answered


def answer(receiver: str, response: httpx.Response, span: tuple[float, float]) -> Answer:
    return Answer(
        receiver,
        response.status_code,
        response.json(),
        response.headers.get("retry-after"),
        span,
    )


def most_in_flight(answers: list[Answer]) -> int:
    """The largest number of requests that were in flight at the same moment."""
    marks = sorted([(a.span[0], 1) for a in answers] + [(a.span[1], -1) for a in answers])
    level = peak = 0
    for _, step in marks:
        level += step
        peak = max(peak, level)
    return peak


def race(receivers: list[str], body: bytes) -> list[Answer]:
    """`CLIENTS` clients post `body` at once, spread over the receivers. Each opens its
    connection first, then all wait at a barrier, so the requests really overlap."""
    barrier = threading.Barrier(CLIENTS, timeout=15)

    def deliver(index: int) -> Answer:
        receiver = receivers[index % len(receivers)]
        with httpx.Client(base_url=receiver, timeout=15) as http:
            assert http.get("/healthz").status_code == 200  # the connection is now open
            barrier.wait()
            sent_at = time.monotonic()
            response = http.post(WEBHOOK, content=body, headers=HEADERS)
            return answer(receiver, response, (sent_at, time.monotonic()))

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(deliver, range(CLIENTS)))


def outcomes(answers: list[Answer]) -> Counter[str]:
    total: Counter[str] = Counter()
    for item in answers:
        total.update(item.receipt["outcomes"])
    return total


def opened_by(answers: list[Answer]) -> list[str]:
    return [incident_id for a in answers for incident_id in a.receipt["incidents"]["opened"]]


@pytest.fixture
def receivers(stack_env: dict[str, str], logs: Path) -> Iterator[list[str]]:
    """`RECEIVERS` receiver processes and `WORKERS` worker processes on one Redis."""
    with (
        processes(RECEIVERS, lambda i: serving(stack_env, logs / f"serve-{i}.log")) as served,
        processes(WORKERS, lambda i: working(stack_env, logs / f"worker-{i}.log")),
    ):
        yield [service.url for service in served]


def test_concurrent_deliveries_open_one_incident_and_send_one_page(
    receivers: list[str], sink: Receiver, redis: Redis
) -> None:
    starts_at = datetime.now(UTC) - timedelta(minutes=5)
    opened: dict[str, str] = {}  # alertname -> incident id
    for round_ in range(ROUNDS):
        alertname = f"RaceRound{round_}"
        answers = race(receivers, group(alertname, starts_at))
        assert [a.status for a in answers] == [202] * CLIENTS, answers
        # The barrier did its job: the deliveries overlapped (typically all 12 at once).
        assert most_in_flight(answers) >= CLIENTS // 2
        assert Counter(a.receiver for a in answers) == dict.fromkeys(
            receivers, CLIENTS // RECEIVERS
        )
        assert all(a.receipt["alerts"] == ALERTS for a in answers)
        # The first to run the ingest script opened the incident with all 20 alerts; every
        # other delivery, on whichever receiver, saw only duplicates.
        assert outcomes(answers) == {
            "opened": 1,
            "added": ALERTS - 1,
            "duplicate": ALERTS * (CLIENTS - 1),
        }
        (incident_id,) = opened_by(answers)
        assert sum(a.receipt["duplicates"] for a in answers) == ALERTS * (CLIENTS - 1)
        assert all(a.receipt["incidents"]["touched"] == [] for a in answers)
        assert incident_id not in opened.values()
        opened[alertname] = incident_id

    listed = incidents(receivers[0])
    assert sorted(i["id"] for i in listed) == sorted(opened.values())
    for summary in listed:
        assert summary["state"] == "triggered"
        assert summary["severity"] == "SEV2"
        assert summary["alerts_firing"] == ALERTS
    for alertname, incident_id in opened.items():
        detail = incident(receivers[1], incident_id)
        assert len(detail["alerts"]) == ALERTS
        assert {a["labels"]["alertname"] for a in detail["alerts"]} == {alertname}
        assert len({a["fingerprint"] for a in detail["alerts"]}) == ALERTS

    wait_for_pages(sink, redis, receivers[2], opened.values(), 1)
    sent = pages(sink)
    assert sorted(p.document["incident"]["id"] for p in sent) == sorted(opened.values())
    for page in sent:
        check_page(page, page.document["incident"]["id"], "incident.opened", "trigger", "pager")

    # The resolved notification, raced the same way: one mitigation per incident, one message.
    ends_at = datetime.now(UTC) - timedelta(seconds=1)
    for alertname, incident_id in opened.items():
        answers = race(receivers, group(alertname, starts_at, ends_at))
        assert [a.status for a in answers] == [202] * CLIENTS, answers
        assert outcomes(answers) == {
            "resolved": ALERTS - 1,
            "all_resolved": 1,
            "duplicate": ALERTS * (CLIENTS - 1),
        }
        touched = [i for a in answers for i in a.receipt["incidents"]["touched"]]
        assert touched == [incident_id]
        assert opened_by(answers) == []

    wait_for_pages(sink, redis, receivers[0], opened.values(), 2)
    sent = pages(sink)
    mitigations = sent[ROUNDS:]
    assert sorted(p.document["incident"]["id"] for p in mitigations) == sorted(opened.values())
    for page in mitigations:
        incident_id = page.document["incident"]["id"]
        check_page(page, incident_id, "incident.mitigated", "mitigated-0", "pager")
        assert page.document["incident"]["state"] == "mitigated"
    for incident_id in opened.values():
        detail = incident(receivers[0], incident_id)
        assert detail["state"] == "mitigated"
        assert Counter(alert_history(detail)) == {
            "opened": 1,
            "added": ALERTS - 1,
            "resolved": ALERTS,
            "all_resolved": 1,
        }
        assert pages_sent(detail, "pager") == ["trigger", "mitigated-0"]


def wait_for_pages(
    sink: Receiver, redis: Redis, receiver: str, incident_ids: Iterable[str], count: int
) -> None:
    """Until each incident's timeline shows `count` pages delivered to the `pager` channel and
    no work is left; then the sink must have exactly those pages, none more."""
    ids = list(incident_ids)

    def done() -> bool | None:
        for incident_id in ids:
            if len(pages_sent(incident(receiver, incident_id), "pager")) < count:
                return None
        return True

    poll(done, timeout=20, what=f"{count} page(s) on each of {ids}", every=0.1)
    wait_drained(redis)
    with sink.lock:
        assert len(sink.requests) == count * len(ids)


# --- Redis outage ------------------------------------------------------------------------------


def post(receiver: str, body: bytes) -> Answer:
    sent_at = time.monotonic()
    response = httpx.post(receiver + WEBHOOK, content=body, headers=HEADERS, timeout=30)
    return answer(receiver, response, (sent_at, time.monotonic()))


def deliver_like_alertmanager(receiver: str, body: bytes, timeout: float) -> list[Answer]:
    """Retry 5xx with Alertmanager's backoff (0.5 s, x1.5, no jitter here) until accepted."""
    answers = []
    delay = 0.5
    deadline = time.monotonic() + timeout
    while True:
        answers.append(post(receiver, body))
        if answers[-1].status < 500 or time.monotonic() > deadline:
            return answers
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def test_redis_outage_is_a_503_and_the_retried_delivery_is_not_lost(
    tmp_path: Path, rules_path: Path, environ: dict[str, str], sink: Receiver, logs: Path
) -> None:
    port = free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "SEVROUTER_RULES": str(rules_path),
        **environ,
    }
    starts_at = datetime.now(UTC) - timedelta(minutes=5)
    # Redis outlives the processes using it: its stack is closed after theirs.
    with contextlib.ExitStack() as redis_stack, contextlib.ExitStack() as stack:
        first_redis = redis_stack.enter_context(redis_on_port(data, port))
        redis = stack.enter_context(Redis.from_url(env["REDIS_URL"]))
        receiver = stack.enter_context(serving(env, logs / "serve.log")).url
        stack.enter_context(working(env, logs / "worker.log"))

        before = post(receiver, group("BeforeOutage", starts_at))
        assert before.status == 202
        (first_id,) = before.receipt["incidents"]["opened"]
        poll(lambda: pages(sink) or None, timeout=10, what="the first incident's page")
        wait_drained(redis)  # the outage hits an idle worker, not one finishing a job

        stop(first_redis)
        assert first_redis.returncode == 0
        started = time.monotonic()
        during = post(receiver, group("DuringOutage", starts_at))
        answered_in = time.monotonic() - started
        assert during.status == 503
        assert during.retry_after == RETRY_AFTER_SECONDS
        assert RETRY_AFTER_SECONDS.isdigit()
        assert during.receipt == {"error": "storage unavailable, retry later"}
        assert answered_in < 5, f"the 503 took {answered_in:.1f}s"
        assert httpx.get(f"{receiver}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"{receiver}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"
        assert httpx.get(f"{receiver}/api/v1/incidents", timeout=10).status_code == 503
        # The sender keeps retrying through an outage of a few seconds; every try is a 503.
        retries = deliver_like_alertmanager(receiver, group("DuringOutage", starts_at), 1.5)
        assert len(retries) >= 3
        assert {(a.status, a.retry_after) for a in retries} == {(503, RETRY_AFTER_SECONDS)}

        # Redis comes back on the same port with its data; the sender's retry is accepted.
        redis_stack.enter_context(redis_on_port(data, port))
        retried = deliver_like_alertmanager(receiver, group("DuringOutage", starts_at), 20)
        assert retried[-1].status == 202, retried
        assert {a.status for a in retried[:-1]} <= {503}
        (second_id,) = retried[-1].receipt["incidents"]["opened"]
        assert second_id != first_id
        assert retried[-1].receipt["outcomes"] == {"opened": 1, "added": ALERTS - 1}

        # Nothing from before the outage was lost, and the worker pages the new incident.
        assert sorted(i["id"] for i in incidents(receiver)) == sorted([first_id, second_id])
        assert incident(receiver, first_id)["alerts_firing"] == ALERTS
        poll(
            lambda: True if len(pages(sink)) >= 2 else None,
            timeout=20,
            what="the page for the incident opened after the outage",
        )
        wait_drained(redis)
        sent = pages(sink)
        assert [p.document["incident"]["id"] for p in sent] == [first_id, second_id]
        for page in sent:
            check_page(page, page.document["incident"]["id"], "incident.opened", "trigger", "pager")
        repeat = post(receiver, group("BeforeOutage", starts_at))
        assert repeat.status == 202
        assert repeat.receipt["outcomes"] == {"duplicate": ALERTS}
