"""Several receivers and workers against one Redis behave exactly like one, also while Redis
Sentinel moves the primary to a replica mid-run: one incident and one page per group under
concurrent deliveries, nothing accepted is lost and nothing is paged twice.

Everything runs as in production: a Redis primary with two replicas (AOF, `appendfsync always`)
under three sentinels, three `sevrouter serve` and three `sevrouter worker` processes with
`REDIS_URL=redis+sentinel://...`, and a recording HTTP sink as the paging endpoint. Load: a
hundred alert groups, each delivered twice at the same moment (an Alertmanager HA pair) to two
receivers, over about ten seconds; each delivery is retried like Alertmanager does on 503 and
connection errors. A third of the way in, the primary either dies (SIGKILL) or is switched
over the way docs/deploy.md describes for planned maintenance (writes paused, then
`SENTINEL FAILOVER`).

Why acknowledged alerts survive: the receivers run with SEVROUTER_REDIS_WAIT_REPLICAS=1, so a
webhook is acknowledged only once a replica holds its writes, and the servers run with
`min-replicas-to-write 1`, so a deposed primary refuses writes instead of taking them to the
grave. Two replicas, because after a failover the new primary needs a replica of its own
before anything is acknowledged again.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from router.redisconn import connect
from tests.e2e.helpers import (
    QUEUE_NAME,
    Service,
    check_page,
    drained,
    go_json,
    incident,
    incidents,
    pages,
    pages_sent,
    poll,
    processes,
    serving,
    tail,
    webhook_alert,
    webhook_body,
)
from tests.support.http_receiver import Receiver
from tests.support.processes import sevrouter, stop
from tests.support.rules import TOKEN
from tests.test_redisconn import SERVICE, SentinelCluster, sentinel_cluster

RECEIVERS = 3
WORKERS = 3
GROUPS = 100
COPIES = 2  # deliveries of each group, at the same moment, to different receivers
ALERTS = 2  # alerts per group
LOAD_SECONDS = 10.0
FAILOVER_AFTER = GROUPS // 3  # groups sent before the primary goes
GIVE_UP_AFTER = 30.0  # a delivery still refused after this long counts as never accepted
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/json",
    "User-Agent": "Alertmanager/0.25.0",
}
WEBHOOK = "/api/v1/webhooks/alertmanager"


def group_body(alertname: str, starts_at: datetime) -> bytes:
    alerts = [
        webhook_alert(
            {
                "alertname": alertname,
                "instance": f"node-{index}.e2e.test:9100",
                "job": "node",
                "severity": "critical",
            },
            starts_at=starts_at,
        )
        for index in range(ALERTS)
    ]
    return go_json(webhook_body(alerts, ["alertname"]))


@dataclass
class Delivery:
    """One sender's delivery of one group: every try and how it ended."""

    group: str
    copy: int
    answers: list[str] = field(default_factory=list)  # "202", "503", "ConnectError", ...
    sent_at: float = 0.0
    accepted_at: float | None = None


def deliver(receivers: list[str], group: str, copy: int, body: bytes) -> Delivery:
    """Like Alertmanager: retry 5xx and connection errors with backoff (0.25 s, x1.5, at most
    2 s), here also moving to the next receiver, as a Service would; give up after a while."""
    delivery = Delivery(group, copy, sent_at=time.monotonic())
    delay = 0.25
    turn = int(group[-3:]) + copy
    with httpx.Client(timeout=10) as http:
        while time.monotonic() - delivery.sent_at < GIVE_UP_AFTER:
            receiver = receivers[turn % len(receivers)]
            turn += 1
            try:
                status = http.post(receiver + WEBHOOK, content=body, headers=HEADERS).status_code
            except httpx.TransportError as exc:
                delivery.answers.append(type(exc).__name__)
            else:
                delivery.answers.append(str(status))
                if status == 202:
                    delivery.accepted_at = time.monotonic()
                    return delivery
                assert status == 503, f"{group}: unexpected answer {status}"
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
    return delivery


@contextlib.contextmanager
def working(env: Mapping[str, str], log: Path) -> Iterator[Service]:
    """`sevrouter worker`, registered with rq (so consuming) when yielded."""
    with connect(env["REDIS_URL"]) as client:
        before = client.smembers(WORKERS_BY_QUEUE_KEY % QUEUE_NAME)
        process = sevrouter(["worker"], env, log)
        try:

            def registered() -> bool | None:
                if process.poll() is not None:
                    raise RuntimeError(f"sevrouter worker exited early:\n{tail(log)}")
                names = client.smembers(WORKERS_BY_QUEUE_KEY % QUEUE_NAME)
                return True if names - before else None

            poll(registered, timeout=20, what="the worker to register with rq")
            yield Service("", process, log)
        finally:
            stop(process)


def fail_over(cluster: SentinelCluster, how: str) -> None:
    old = cluster.primary
    if how == "kill":
        cluster.kill(old)
        return
    # A planned switchover: writes on the primary wait (clients time out and reconnect) while
    # the sentinels promote a replica and point the other one at it; without the pause, the
    # old primary would keep acknowledging writes that its second replica then throws away.
    with cluster.server(old) as primary:
        primary.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
    with redis.Redis(port=cluster.sentinels[0], socket_timeout=5) as sentinel:
        sentinel.sentinel_failover(SERVICE)


@pytest.mark.parametrize("how", ["kill", "switchover"])
def test_a_failover_mid_run_loses_nothing_accepted_and_pages_nothing_twice(
    how: str,
    rules_path: Path,
    environ: dict[str, str],
    sink: Receiver,
    logs: Path,
) -> None:
    started = time.monotonic()
    server_options = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")
    with sentinel_cluster(logs, replicas=2, aof=True, primary_options=server_options) as cluster:
        env = {
            "REDIS_URL": cluster.url(),
            "SEVROUTER_RULES": str(rules_path),
            "SEVROUTER_REDIS_WAIT_REPLICAS": "1",
            **environ,
        }
        with (
            processes(RECEIVERS, lambda i: serving(env, logs / f"serve-{i}.log")) as served,
            processes(WORKERS, lambda i: working(env, logs / f"worker-{i}.log")),
            connect(cluster.url(), retry_for=30) as client,
        ):
            receivers = [service.url for service in served]
            ready_at = time.monotonic()
            old = cluster.primary
            deliveries, failed_over_at, promoted_at = run_load(receivers, cluster, how)
            new = cluster.primary
            promoted_in = promoted_at - failed_over_at
            load_done_at = time.monotonic()

            # Every group was accepted (its senders retried through the failover).
            accepted = {d.group for d in deliveries if d.accepted_at is not None}
            groups = {d.group for d in deliveries}
            assert accepted == groups, f"never accepted: {sorted(groups - accepted)}"
            if how == "kill":  # the failover happened under load: some tries were refused
                assert any(d.answers[0] != "202" for d in deliveries)

            # Once the work has drained, each group has one incident and one trigger page.
            def all_paged() -> bool | None:
                with sink.lock:
                    if len(sink.requests) < len(groups):
                        return None
                return drained(client)

            poll(all_paged, timeout=40, what="a page per group and no work left", every=0.2)
            time.sleep(1.0)  # anything still on its way (a duplicate) would arrive now
            drained_at = time.monotonic()
            check_incidents_and_pages(receivers, groups, sink)

    answers = Counter(answer for d in deliveries for answer in d.answers)
    # Why the receivers answered 503 (their log lines name the Redis error).
    causes = Counter(
        line.split('"error": "', 1)[1].split('"', 1)[0]
        for log in logs.glob("serve-*.log")
        for line in log.read_text(errors="replace").splitlines()
        if '"redis_unavailable"' in line and '"error": "' in line
    )
    slowest = max(d.accepted_at - d.sent_at for d in deliveries if d.accepted_at is not None)
    refused = [d.sent_at for d in deliveries if d.answers[0] != "202"]
    print(
        f"\n{how}: primary {old} -> {new}, sentinels agreed after {promoted_in:.1f}s; "
        f"answers {dict(answers)}; first tries refused from "
        f"{min(refused, default=failed_over_at) - failed_over_at:+.1f}s to "
        f"{max(refused, default=failed_over_at) - failed_over_at:+.1f}s; "
        f"slowest acceptance {slowest:.1f}s; 503 causes {dict(causes)}; "
        f"setup {ready_at - started:.1f}s, load {load_done_at - ready_at:.1f}s, "
        f"drain {drained_at - load_done_at:.1f}s, total {time.monotonic() - started:.1f}s"
    )


def run_load(
    receivers: list[str], cluster: SentinelCluster, how: str
) -> tuple[list[Delivery], float, float]:
    """Start a group every LOAD_SECONDS / GROUPS seconds, each delivered COPIES times at once;
    fail the primary over after FAILOVER_AFTER groups. Returns when every delivery ended, with
    when the failover began and when the sentinels agreed on the new primary."""
    starts_at = datetime.now(UTC) - timedelta(minutes=1)
    futures: list[Future[Delivery]] = []
    failed_over_at = 0.0
    old = cluster.primary
    with ThreadPoolExecutor(max_workers=48) as pool:
        begin = time.monotonic()
        for index in range(GROUPS):
            time.sleep(max(0.0, begin + index * LOAD_SECONDS / GROUPS - time.monotonic()))
            if index == FAILOVER_AFTER:
                failed_over_at = time.monotonic()
                fail_over(cluster, how)
                promoted = pool.submit(
                    lambda: (cluster.wait_for_primary(other_than=old), time.monotonic())[1]
                )
            group = f"Failover{index:03d}"
            body = group_body(group, starts_at)
            barrier = threading.Barrier(COPIES)

            def one(
                copy: int, group: str = group, body: bytes = body, barrier: Any = barrier
            ) -> Delivery:
                barrier.wait(timeout=10)
                return deliver(receivers, group, copy, body)

            futures += [pool.submit(one, copy) for copy in range(COPIES)]
        deliveries = [future.result() for future in futures]
        return deliveries, failed_over_at, promoted.result()


def check_incidents_and_pages(receivers: list[str], groups: set[str], sink: Receiver) -> None:
    by_group: dict[str, list[str]] = {}
    details: dict[str, dict[str, Any]] = {}
    for summary in incidents(receivers[0]):
        detail = incident(receivers[1], summary["id"])
        details[summary["id"]] = detail
        (name,) = {alert["labels"]["alertname"] for alert in detail["alerts"]}
        assert len(detail["alerts"]) == ALERTS, detail["alerts"]
        by_group.setdefault(name, []).append(summary["id"])
    # No incident without an accepted group, no group with two incidents, none missing.
    assert set(by_group) == groups
    assert {name: len(ids) for name, ids in by_group.items() if len(ids) != 1} == {}

    sent = pages(sink)  # every one signed
    per_key = Counter(page.idempotency_key for page in sent)
    assert [key for key, count in per_key.items() if count > 1] == []
    per_incident = Counter(page.document["incident"]["id"] for page in sent)
    assert per_incident == dict.fromkeys(details, 1)
    for page in sent:
        check_page(page, page.document["incident"]["id"], "incident.opened", "trigger", "pager")
    for detail in details.values():
        assert pages_sent(detail, "pager") == ["trigger"], detail["id"]


def test_a_webhook_no_replica_confirmed_is_refused_and_its_retry_accepted(
    rules_path: Path, environ: dict[str, str], logs: Path
) -> None:
    """SEVROUTER_REDIS_WAIT_REPLICAS=1 and the only replica stalls: the webhook's writes reach
    the primary, but it is answered 503, as its alert could still be lost; the sender's retry
    after the replica is back is accepted (its alerts already stored: duplicates)."""
    with sentinel_cluster(logs, replicas=1) as cluster:
        env = {
            "REDIS_URL": cluster.url(),
            "SEVROUTER_RULES": str(rules_path),
            "SEVROUTER_REDIS_WAIT_REPLICAS": "1",
            **environ,
        }
        with serving(env, logs / "serve.log") as served, httpx.Client(timeout=10) as http:
            starts_at = datetime.now(UTC) - timedelta(minutes=1)

            def post(group: str) -> tuple[int, dict[str, Any], float]:
                sent = time.monotonic()
                response = http.post(
                    served.url + WEBHOOK, content=group_body(group, starts_at), headers=HEADERS
                )
                return response.status_code, response.json(), time.monotonic() - sent

            assert post("Replicated")[0] == 202
            replica = cluster.servers[cluster.replicas[0]]
            replica.send_signal(signal.SIGSTOP)
            try:
                status, body, took = post("Unconfirmed")
            finally:
                replica.send_signal(signal.SIGCONT)
            assert (status, body) == (503, {"error": "storage unavailable, retry later"})
            assert took < 3, f"the 503 took {took:.1f}s"
            assert '"error": "NotReplicatedError"' in (logs / "serve.log").read_text()

            def accepted() -> dict[str, Any] | None:
                status, body, _ = post("Unconfirmed")
                return body if status == 202 else None

            body = poll(accepted, timeout=10, what="the retried webhook's 202", every=0.2)
            assert body["outcomes"] == {"duplicate": ALERTS}
            names = {
                alert["labels"]["alertname"]
                for summary in incidents(served.url)
                for alert in incident(served.url, summary["id"])["alerts"]
            }
            assert names == {"Replicated", "Unconfirmed"}
