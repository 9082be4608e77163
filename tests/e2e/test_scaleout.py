"""Several processes behave like one: a reload asked of one receiver reaches every receiver, and
escalation deadlines fire once however many workers are running."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.helpers import poll, processes, serving, working
from tests.support.http_receiver import Receiver
from tests.support.payloads import alertmanager_body
from tests.support.rules import ALICE_TOKEN, TOKEN

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def post(base_url: str, **labels: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}{AM}", content=alertmanager_body([labels]), headers=HEADERS, timeout=10
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_reload_on_one_receiver_reaches_all(
    stack_env: dict[str, str], rules_path: Path, logs: Path
) -> None:
    # No file watcher: only the reload published through Redis can make the others follow.
    env = stack_env | {"SEVROUTER_RULES_WATCH_INTERVAL": "0"}
    with processes(3, lambda i: serving(env, logs / f"serve-{i}.log")) as receivers:
        routing = yaml.safe_load((rules_path / "routing.yaml").read_text())
        routing["rules"].insert(
            0, {"name": "drop-noise", "match": 'alertname="Noise"', "drop": True}
        )
        (rules_path / "routing.yaml").write_text(yaml.safe_dump(routing, sort_keys=False))
        assert all(post(r.url, alertname="Noise")["dropped"] == 0 for r in receivers)
        answer = httpx.post(
            f"{receivers[0].url}/-/reload", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
        )
        assert answer.status_code == 200
        for receiver in receivers:

            def follows(url: str = receiver.url) -> bool | None:
                return post(url, alertname="Noise")["dropped"] == 1 or None

            poll(follows, timeout=10, what=f"{receiver.url} to follow the reload")


def fast_escalation(rules_path: Path) -> None:
    """SEV2's response time down to 2 s, so step 2 comes within the test."""
    path = rules_path / "severities.yaml"
    document = yaml.safe_load(path.read_text())
    document["severities"]["SEV2"]["response_time"] = "2s"
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_escalations_fire_once_with_three_workers(
    stack_env: dict[str, str], rules_path: Path, logs: Path, sink: Receiver
) -> None:
    fast_escalation(rules_path)
    with (
        serving(stack_env, logs / "serve.log") as receiver,
        processes(3, lambda i: working(stack_env, logs / f"worker-{i}.log")),
    ):
        for n in range(5):
            post(receiver.url, alertname=f"Down{n}", severity="critical", cluster="eu-1")

        def step_two_pages() -> list[str] | None:
            keys = [
                r.headers["x-sevrouter-idempotency-key"]
                for r in list(sink.requests)
                if r.path.endswith("/backup")
            ]
            return keys if len(keys) >= 5 else None

        poll(step_two_pages, timeout=20, what="step 2 of five incidents")
        # Give a duplicate (another worker firing the same deadline) time to arrive.
        time.sleep(2)
        keys = [
            r.headers["x-sevrouter-idempotency-key"]
            for r in sink.requests
            if r.path.endswith("/backup")
        ]
        assert len(keys) == 5, keys
        assert len(set(keys)) == 5
        assert all(":2:person:alice:backup:escalate-2-r0" in key for key in keys)
        bodies = [json.loads(r.body) for r in sink.requests if r.path.endswith("/backup")]
        assert sorted(b["incident"]["id"] for b in bodies) == [f"INC-{n}" for n in range(1, 6)]


def test_worker_stops_at_once_on_sigterm(stack_env: dict[str, str], logs: Path) -> None:
    # An idle worker told to stop leaves: it must not mistake the stop for rq giving up on Redis
    # and start over (which would hold every rollout until the kill timeout).
    log = logs / "worker.log"
    with working(stack_env, log) as worker:
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=10) == 0
    text = log.read_text()
    assert "worker_stopped" in text
    assert "worker_restarting" not in text
