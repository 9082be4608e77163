"""The real Prometheus Alertmanager delivering to `sevrouter serve`, with `sevrouter worker`
paging a recording sink: one incident and one page for a group, however often Alertmanager
re-sends it, and a mitigation message when the alerts resolve.

Alertmanager posts every notification to a second webhook too, a capture sink, so the test also
sees the exact bytes this Alertmanager version sends and checks them against the captures kept
in tests/fixtures/captured/ (`SEVROUTER_RECAPTURE=1` rewrites those; see the README there).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from router.alert import AlertStatus, Source
from router.ruleset import Decision, Ruleset
from router.sources import SourceKind, parse
from tests.conftest import PAYLOADS
from tests.e2e.helpers import (
    ALERTMANAGER,
    CAPTURED,
    EXTERNAL_URL,
    GO_ZERO_TIME,
    alert_history,
    alertmanager,
    alertmanager_config,
    check_page,
    go_json,
    go_time,
    incident,
    incidents,
    metric,
    pages,
    pages_sent,
    poll,
    post_alerts,
    pretty_go_json,
    prometheus_fingerprint,
    serving,
    shape,
    wait_drained,
    webhook_alert,
    webhook_body,
    working,
)
from tests.support.http_receiver import Receiver, Recorded, serve_receiver
from tests.support.rules import TOKEN

ALERTNAME = "E2EInstanceDown"
INSTANCES = ("node-1.e2e.test:9100", "node-2.e2e.test:9100")
# `&` in a label-free string field shows Go's HTML-safe escaping (`\u0026`) on the wire.
GENERATOR_URL = "http://prometheus.e2e.test:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
RUNBOOK = "https://runbooks.example.com/InstanceDown"
FIRING_CAPTURE = CAPTURED / "alertmanager_0.25_firing.json"
RESOLVED_CAPTURE = CAPTURED / "alertmanager_0.25_resolved.json"
RECAPTURE = os.environ.get("SEVROUTER_RECAPTURE") == "1"
# Key order of Alertmanager's webhook body and of each alert in it (Go struct field order).
BODY_KEYS = [
    "receiver",
    "status",
    "alerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "version",
    "groupKey",
    "truncatedAlerts",
]
ALERT_KEYS = [
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
]


def labels_of(instance: str) -> dict[str, str]:
    return {"alertname": ALERTNAME, "instance": instance, "job": "node", "severity": "critical"}


def annotations_of(instance: str) -> dict[str, str]:
    return {
        "summary": f"Instance {instance} down",
        "description": f"{instance} of job node has been down for more than 5 minutes.",
        "runbook_url": RUNBOOK,
    }


def postable_alerts(starts_at: datetime, ends_at: datetime | None = None) -> list[dict[str, Any]]:
    """Both instances' alerts as Prometheus posts them to `/api/v2/alerts`; an `endsAt` in the
    past resolves them (without one, Alertmanager keeps them firing for resolve_timeout)."""
    alerts = []
    for instance in INSTANCES:
        alert: dict[str, Any] = {
            "labels": labels_of(instance),
            "annotations": annotations_of(instance),
            "startsAt": go_time(starts_at),
            "generatorURL": GENERATOR_URL,
        }
        if ends_at is not None:
            alert["endsAt"] = go_time(ends_at)
        alerts.append(alert)
    return alerts


@dataclass(frozen=True)
class Stack:
    receiver: str  # our receiver's base URL
    alertmanager: str  # Alertmanager's base URL
    captures: Receiver  # every notification Alertmanager sent, as sent


@pytest.fixture
def start_stack(
    stack_env: dict[str, str], logs: Path, sink: Receiver, tmp_path: Path
) -> Iterator[Callable[[], Stack]]:
    """Starts receiver, worker, capture sink and Alertmanager when the test calls it (so that a
    missing Alertmanager fails the test itself); the fixture stops them all afterwards."""
    with contextlib.ExitStack() as running:

        def start() -> Stack:
            if not ALERTMANAGER.is_file():
                pytest.fail(
                    f"{ALERTMANAGER} not found: this test runs the real Prometheus Alertmanager; "
                    "`make test` installs it (Debian package prometheus-alertmanager)"
                )
            captures = running.enter_context(serve_receiver())
            receiver = running.enter_context(serving(stack_env, logs / "serve.log"))
            running.enter_context(working(stack_env, logs / "worker.log"))
            config = alertmanager_config(
                f"{receiver.url}/api/v1/webhooks/alertmanager", TOKEN, f"{captures.url}/capture"
            )
            url = running.enter_context(
                alertmanager(
                    config,
                    tmp_path / "alertmanager",
                    logs / "alertmanager.log",
                    external_url=EXTERNAL_URL,
                )
            )
            return Stack(receiver.url, url, captures)

        yield start


def expected_texts(ruleset: Ruleset, starts_at: datetime) -> tuple[Decision, str, str, str]:
    """Rule decision, title, summary and runbook the test rules give the group's first alert
    (the rules are the unit tests' business; this test checks they reach the page)."""
    first = webhook_alert(
        labels_of(INSTANCES[0]), starts_at=starts_at, annotations=annotations_of(INSTANCES[0])
    )
    (alert,) = parse(
        SourceKind.ALERTMANAGER,
        go_json(webhook_body([first], ["alertname"])),
        integration="alertmanager",
        now=datetime.now(UTC),
    )
    (decision,) = ruleset.evaluate(alert).decisions
    return (
        decision,
        ruleset.render_title(decision, alert),
        ruleset.render_summary(decision, alert),
        ruleset.render_runbook(decision, alert),
    )


@pytest.mark.e2e
def test_alertmanager_group_opens_one_incident_pages_once_and_mitigates(
    start_stack: Callable[[], Stack], sink: Receiver, redis: Redis, ruleset: Ruleset
) -> None:
    stack = start_stack()
    # Recent enough that Alertmanager waits group_wait before the first notification (an alert
    # older than that is flushed at once, possibly before its sibling from the same POST).
    # Whole centiseconds, so the capture shows Go trimming trailing zeros (`...:47.76Z`).
    now = datetime.now(UTC)
    starts_at = now.replace(microsecond=now.microsecond // 10_000 * 10_000)
    decision, title, summary_text, runbook = expected_texts(ruleset, starts_at)
    assert decision.severity.value == "SEV2"
    assert summary_text == f"Instance {INSTANCES[0]} down"
    post_alerts(stack.alertmanager, postable_alerts(starts_at))

    # First notification (after group_wait): one SEV2 incident with both alerts, one page.
    opened = poll(lambda: pages(sink) or None, timeout=10, what="the incident.opened page")
    (summary,) = incidents(stack.receiver)
    incident_id = summary["id"]
    assert summary["severity"] == "SEV2"
    assert summary["state"] == "triggered"
    assert summary["team"] == "platform"
    assert summary["rule"] == decision.rule
    assert summary["title"] == title
    assert summary["alerts_firing"] == 2
    detail = incident(stack.receiver, incident_id)
    assert detail["group_key"] == decision.group_key
    assert detail["summary"] == summary_text
    assert detail["runbook"] == runbook
    members = sorted(detail["alerts"], key=lambda a: a["labels"]["instance"])
    assert [m["labels"] for m in members] == [labels_of(i) for i in INSTANCES]
    for member, instance in zip(members, INSTANCES, strict=True):
        assert member["status"] == "firing"
        assert member["annotations"] == annotations_of(instance)
        assert member["starts_at"] == starts_at.isoformat()
        assert member["ends_at"] is None
        assert member["upstream_fingerprint"] == prometheus_fingerprint(labels_of(instance))
        assert member["links"] == {"generator": GENERATOR_URL}
        assert (member["source"], member["integration"]) == ("alertmanager", "alertmanager")

    (page,) = opened
    check_page(page, incident_id, "incident.opened", "trigger", "pager")
    assert page.headers["content-type"] == "application/json"
    document = page.document
    assert document["version"] == "1"
    assert document["title"] == f"[SEV2] {incident_id} {title} (triggered)"
    lines = document["text"].split("\n")
    assert lines[0] == f"SEV2 incident {incident_id} for team platform: triggered"
    assert lines[1].endswith(" UTC; 2 alert(s) firing")
    assert lines[2] == summary_text
    if runbook:
        assert lines[3] == f"Runbook: {runbook}"
    paged = document["incident"]
    assert {k: paged[k] for k in ("id", "severity", "state", "team", "rule", "alerts_firing")} == {
        "id": incident_id,
        "severity": "SEV2",
        "state": "triggered",
        "team": "platform",
        "rule": decision.rule,
        "alerts_firing": 2,
    }
    assert sorted(a["labels"]["instance"] for a in paged["alerts"]) == list(INSTANCES)
    assert "timeline" not in paged

    # Alertmanager re-sends the unchanged group every repeat_interval: duplicates, no new work.
    poll(
        lambda: (
            True
            if metric(stack.receiver, "sevrouter_dedupe_outcomes_total", {"outcome": "duplicate"})
            >= 2
            else None
        ),
        timeout=10,
        what="Alertmanager to re-send the group after repeat_interval",
    )
    accepted = metric(
        stack.receiver,
        "sevrouter_webhook_requests_total",
        {"integration": "alertmanager", "code": "202"},
    )
    assert accepted >= 2
    wait_drained(redis)
    assert [i["id"] for i in incidents(stack.receiver)] == [incident_id]
    assert [p.idempotency_key for p in pages(sink)] == [page.idempotency_key]

    # Resolving both alerts at Alertmanager mitigates the incident and says so, once.
    ends_at = datetime.now(UTC) - timedelta(seconds=1)
    post_alerts(stack.alertmanager, postable_alerts(starts_at, ends_at))
    mitigated = poll(
        lambda: (
            current
            if (current := incident(stack.receiver, incident_id))["state"] == "mitigated"
            else None
        ),
        timeout=10,
        what="the incident to be mitigated",
    )
    assert mitigated["alerts_firing"] == 0
    assert mitigated["mitigated_at"] is not None
    assert [a["status"] for a in mitigated["alerts"]] == ["resolved", "resolved"]
    assert {a["ends_at"] for a in mitigated["alerts"]} == {ends_at.isoformat()}
    poll(lambda: True if len(pages(sink)) >= 2 else None, timeout=10, what="a second page")
    wait_drained(redis)
    first, second = pages(sink)
    assert first.idempotency_key == page.idempotency_key
    check_page(second, incident_id, "incident.mitigated", "mitigated-0", "pager")
    assert second.document["title"] == f"[SEV2] {incident_id} {title} (mitigated)"
    assert second.document["incident"]["state"] == "mitigated"
    assert second.document["incident"]["alerts_firing"] == 0
    final = incident(stack.receiver, incident_id)
    assert alert_history(final) == ["opened", "added", "resolved", "resolved", "all_resolved"]
    assert pages_sent(final, "pager") == ["trigger", "mitigated-0"]
    assert [i["id"] for i in incidents(stack.receiver)] == [incident_id]

    check_captures(stack.captures, starts_at, ends_at)


def check_captures(captures: Receiver, starts_at: datetime, ends_at: datetime) -> None:
    """What this Alertmanager put on the wire, checked field by field, then against (or, with
    SEVROUTER_RECAPTURE=1, saved as) the fixtures in tests/fixtures/captured/."""

    def by_status() -> tuple[list[Recorded], list[Recorded]] | None:
        with captures.lock:
            sent = [(json.loads(r.body)["status"], r) for r in captures.requests]
        firing = [r for status, r in sent if status == "firing"]
        resolved = [r for status, r in sent if status == "resolved"]
        return (firing, resolved) if resolved else None

    # The second webhook of the receiver may post a moment after the first.
    firing, resolved = poll(by_status, timeout=5, what="the resolved notification's capture")
    # The first notification, at least one repeat of it, and exactly one resolved notification.
    assert len(firing) >= 2
    assert len(resolved) == 1
    assert firing[1].body == firing[0].body, "a repeat is the same body"
    for request in (firing[0], resolved[0]):
        check_wire(request, starts_at, ends_at if request is resolved[0] else None)
    for request, path in ((firing[0], FIRING_CAPTURE), (resolved[0], RESOLVED_CAPTURE)):
        live = json.loads(request.body)
        if RECAPTURE:
            path.write_text(pretty_go_json(live))
        assert path.is_file(), f"{path} missing: run with SEVROUTER_RECAPTURE=1 to capture it"
        kept = json.loads(path.read_bytes())
        assert shape(live) == shape(kept)
        assert list(live) == list(kept)
        assert list(live["alerts"][0]) == list(kept["alerts"][0])


def check_wire(request: Recorded, starts_at: datetime, ends_at: datetime | None) -> None:
    assert request.method == "POST"
    assert request.path == "/capture"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Alertmanager/0.25.0"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    # Go's json.Encoder: one compact line, a trailing newline, `&` escaped.
    assert request.body.endswith(b"}\n")
    assert request.body.count(b"\n") == 1
    assert b"\\u0026g0.tab=1" in request.body
    body = json.loads(request.body)
    assert list(body) == BODY_KEYS
    status = "resolved" if ends_at is not None else "firing"
    assert body["status"] == status
    assert body["receiver"] == "sevrouter\\.e2e"  # regexp.QuoteMeta of the receiver name
    assert body["version"] == "4"
    assert body["groupKey"] == f'{{}}:{{alertname="{ALERTNAME}"}}'
    assert body["groupLabels"] == {"alertname": ALERTNAME}
    assert body["commonLabels"] == {"alertname": ALERTNAME, "job": "node", "severity": "critical"}
    assert body["commonAnnotations"] == {"runbook_url": RUNBOOK}
    assert body["externalURL"] == EXTERNAL_URL
    assert body["truncatedAlerts"] == 0
    assert [a["labels"]["instance"] for a in body["alerts"]] == list(INSTANCES)
    for alert, instance in zip(body["alerts"], INSTANCES, strict=True):
        assert list(alert) == ALERT_KEYS
        assert alert["status"] == status
        assert alert["labels"] == labels_of(instance)
        assert alert["annotations"] == annotations_of(instance)
        assert alert["startsAt"] == go_time(starts_at)
        assert alert["endsAt"] == (go_time(ends_at) if ends_at is not None else GO_ZERO_TIME)
        assert alert["generatorURL"] == GENERATOR_URL
        assert alert["fingerprint"] == prometheus_fingerprint(labels_of(instance))


# --- the kept captures, without Alertmanager ---------------------------------------------------


def captured(path: Path) -> bytes:
    assert path.is_file(), f"{path} missing: run the e2e test with SEVROUTER_RECAPTURE=1"
    return path.read_bytes()


@pytest.mark.parametrize(
    ("path", "status"),
    [(FIRING_CAPTURE, AlertStatus.FIRING), (RESOLVED_CAPTURE, AlertStatus.RESOLVED)],
    ids=["firing", "resolved"],
)
def test_normalizer_parses_captured_alertmanager_0_25_bodies(
    path: Path, status: AlertStatus
) -> None:
    body = captured(path)
    wire = json.loads(body)
    # Later than any time in the captures, so nothing depends on when the test runs.
    now = datetime(2100, 1, 1, tzinfo=UTC)
    alerts = parse(SourceKind.ALERTMANAGER, body, integration="alertmanager", now=now)
    assert len(alerts) == len(wire["alerts"]) == 2
    for alert, sent in zip(alerts, wire["alerts"], strict=True):
        assert alert.source is Source.ALERTMANAGER
        assert alert.integration == "alertmanager"
        assert alert.status is status
        assert dict(alert.labels) == sent["labels"]
        assert dict(alert.annotations) == sent["annotations"]
        assert alert.starts_at == datetime.fromisoformat(sent["startsAt"])
        if status is AlertStatus.FIRING:
            assert sent["endsAt"] == GO_ZERO_TIME
            assert alert.ends_at is None
        else:
            assert alert.ends_at == datetime.fromisoformat(sent["endsAt"])
            assert alert.ends_at > alert.starts_at
        assert alert.upstream_fingerprint == sent["fingerprint"]
        assert alert.links.generator == GENERATOR_URL
        assert alert.is_test is False
    assert alerts[0].fingerprint != alerts[1].fingerprint


def test_captured_fingerprints_are_prometheus_label_set_fingerprints() -> None:
    """The helper that builds webhook bodies for the other e2e tests computes the same alert
    fingerprints as the real Alertmanager."""
    for path in (FIRING_CAPTURE, RESOLVED_CAPTURE):
        for alert in json.loads(captured(path))["alerts"]:
            assert prometheus_fingerprint(alert["labels"]) == alert["fingerprint"]


def test_built_webhook_bodies_have_the_captured_shape() -> None:
    """`webhook_body` (used by test_concurrency) builds what Alertmanager 0.25 sends."""
    kept = json.loads(captured(FIRING_CAPTURE))
    alerts = [
        webhook_alert(
            a["labels"],
            starts_at=datetime.fromisoformat(a["startsAt"]),
            annotations=a["annotations"],
            generator_url=a["generatorURL"],
        )
        for a in kept["alerts"]
    ]
    built = webhook_body(alerts, ["alertname"])
    # Same bytes as Alertmanager's encoder would write: same values, key order, escaping.
    assert go_json(built) == go_json(kept)


def test_reconstructed_shared_payload_has_the_captured_shape() -> None:
    """shared/payloads/alertmanager_v4_firing.json was written from Alertmanager's source; the
    real 0.25 body has the same fields, in the same order, with the same JSON types."""
    reconstructed = json.loads((PAYLOADS / "alertmanager_v4_firing.json").read_bytes())
    kept = json.loads(captured(FIRING_CAPTURE))
    assert list(reconstructed) == list(kept)
    assert shape(reconstructed) == shape(kept)
    assert list(reconstructed["alerts"][0]) == list(kept["alerts"][0])
