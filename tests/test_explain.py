"""Tests for router.explain (the report, the escalation timeline, the text) and
`POST /api/v1/explain`.

The test rules (tests/support/rules.py): team platform announces on `team-log`, pages `pager`
(wait 5m), then schedule `primary` (wait 10m); SEV1/SEV2 page at once (response 0s/15m), SEV3
notifies then pages after 1h, SEV4 notifies during business hours (the default, Mon-Fri 09-17
UTC). `primary` rotates weekly between alice and bob from 2026-01-05; alice has the week of
2026-11-23 and is reached through the `backup` channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis import Redis

from router.alert import AlertStatus
from router.app import create_app
from router.explain import alert_from_labels, explain, parse_at, render_text, severity_reason
from router.ruleset import Ruleset
from router.settings import Settings
from tests.support.payloads import alertmanager_body
from tests.support.server import serve_app

THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
BEFORE_ROTATION = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)  # a Thursday; nobody on call yet
EXHAUSTED = "escalation exhausted: every step paged, unacknowledged"


def report_for(
    ruleset: Ruleset,
    labels: dict[str, str],
    at: datetime = THURSDAY_10,
    status: AlertStatus = AlertStatus.FIRING,
) -> dict[str, Any]:
    (alert,) = explain(ruleset, [alert_from_labels(labels, at, status=status)], at)["alerts"]
    return alert  # type: ignore[no-any-return]


def escalation(decision: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each checkpoint as (minute, [(step, recipients, problems)]), or (minute, note) when it
    tells nobody."""
    rows: list[tuple[Any, ...]] = []
    for checkpoint in decision["escalation"]:
        told = [
            (n["step"], [r["target"] for r in n["recipients"]], n["problems"])
            for n in checkpoint["notify"]
        ]
        rows.append(
            (checkpoint["minute"], told) if told else (checkpoint["minute"], checkpoint["note"])
        )
    return rows


Told = tuple[int, list[str], list[str]]  # (step, recipients, problems)
TEAM_LOG: Told = (0, ["channel:team-log"], [])
PAGER: Told = (1, ["channel:pager"], [])
ALICE: Told = (2, ["person:alice"], [])


@pytest.mark.parametrize(
    ("labels", "at", "decision", "expected"),
    [
        # SEV1 pages step 1 at once with the announcement; response_time 0s means step 1's own
        # wait (5m) is the first deadline, then step 2 waits its 10m and the policy is done.
        pytest.param(
            {"alertname": "CPUHigh", "severity": "page"},
            THURSDAY_10,
            ("alerts", "SEV1", "platform"),
            [(0, [TEAM_LOG, PAGER]), (5, [ALICE]), (15, EXHAUSTED)],
            id="sev1-page",
        ),
        # SEV2: the first deadline is the 15m response time.
        pytest.param(
            {"alertname": "DiskFull", "severity": "critical"},
            THURSDAY_10,
            ("alerts", "SEV2", "platform"),
            [(0, [TEAM_LOG, PAGER]), (15, [ALICE]), (25, EXHAUSTED)],
            id="sev2-page",
        ),
        # SEV3: the team channel now, step 1 when the hour passes unacknowledged.
        pytest.param(
            {"alertname": "Latency", "severity": "warning"},
            THURSDAY_10,
            ("alerts", "SEV3", "platform"),
            [(0, [TEAM_LOG]), (60, [PAGER]), (120, [ALICE]), (130, EXHAUSTED)],
            id="sev3-notify-then-page",
        ),
        # SEV4 on a Saturday: nothing now, the team channel at Monday 09:00 (47h later).
        pytest.param(
            {"alertname": "CertExpiry", "severity": "info"},
            SATURDAY_10,
            ("alerts", "SEV4", "platform"),
            [(0, "team channel at Mon 09:00 UTC"), (2820, [TEAM_LOG])],
            id="sev4-deferred-to-business-hours",
        ),
        # A schedule with nobody on call reaches nobody, and says so.
        pytest.param(
            {"alertname": "DiskFull", "severity": "critical"},
            BEFORE_ROTATION,
            ("alerts", "SEV2", "platform"),
            [
                (0, [TEAM_LOG, PAGER]),
                (15, [(2, [], ["schedule primary has nobody on call"])]),
                (25, EXHAUSTED),
            ],
            id="nobody-on-call",
        ),
        # The database rule sends to team db, whose one step is the pager.
        pytest.param(
            {"alertname": "ReplicationLag", "team": "db", "severity": "warning"},
            THURSDAY_10,
            ("database", "SEV2", "db"),
            [(0, [TEAM_LOG, PAGER]), (15, EXHAUSTED)],
            id="other-team",
        ),
    ],
)
def test_escalation_timeline(
    ruleset: Ruleset,
    labels: dict[str, str],
    at: datetime,
    decision: tuple[str, str, str],
    expected: list[tuple[Any, ...]],
) -> None:
    (only,) = report_for(ruleset, labels, at)["decisions"]
    assert (only["rule"], only["severity"], only["team"]) == decision
    assert escalation(only) == expected


def test_dropped_alert_report(ruleset: Ruleset) -> None:
    # The whole report: every rule after the dropping one is "not reached", nobody is told.
    assert report_for(ruleset, {"alertname": "Watchdog", "severity": "none"}) == {
        "labels": {"alertname": "Watchdog", "severity": "none"},
        "status": "firing",
        "test": False,
        "rules": [
            {
                "rule": "heartbeat",
                "file": str(ruleset.rules[0].file),
                "matched": True,
                "outcome": "dropped",
                "reasons": ['alertname="Watchdog" matched (alertname is "Watchdog")'],
            },
            {
                "rule": "database",
                "file": str(ruleset.rules[1].file),
                "matched": False,
                "outcome": "not reached",
                "reasons": [],
            },
            {
                "rule": "alerts",
                "file": str(ruleset.rules[2].file),
                "matched": False,
                "outcome": "not reached",
                "reasons": [],
            },
        ],
        "dropped_by": "heartbeat",
        "decisions": [],
        "group_keys": [],
        "silences": [],
        "inhibitions": [],
        "maintenance": [],
    }


def test_routed_alert_decision(ruleset: Ruleset) -> None:
    alert = report_for(ruleset, {"alertname": "DiskFull", "severity": "critical", "cluster": "x"})
    assert [(r["rule"], r["outcome"]) for r in alert["rules"]] == [
        ("heartbeat", "no match"),
        ("database", "no match"),
        ("alerts", "routed"),
    ]
    assert alert["rules"][1]["reasons"] == ['team="db" did not match (label team is absent)']
    (decision,) = alert["decisions"]
    assert {k: v for k, v in decision.items() if k != "escalation"} == {
        "rule": "alerts",
        "severity": "SEV2",
        "severity_reason": 'severity="critical"',
        "team": "platform",
        "group_key": 'alerts:{alertname="DiskFull",cluster="x"}',
        "paging": "page",
        "response_time": 900.0,
    }
    assert alert["group_keys"] == [decision["group_key"]]
    # Checkpoints carry the time, the plan's note, and the configured targets of each step.
    step_2 = decision["escalation"][1]
    assert step_2["at"] == "2026-11-26T10:15:00+00:00"
    assert step_2["note"].startswith("paging step 2: schedule primary;")
    assert step_2["notify"] == [
        {
            "step": 2,
            "targets": ["schedule:primary"],
            "recipients": [
                {"target": "person:alice", "channel": "backup", "address": "alice@example.com"}
            ],
            "problems": [],
        }
    ]


def test_resolved_alert_opens_nothing(ruleset: Ruleset) -> None:
    alert = report_for(
        ruleset, {"alertname": "DiskFull", "severity": "critical"}, status=AlertStatus.RESOLVED
    )
    (decision,) = alert["decisions"]
    assert (alert["status"], decision["severity"], decision["escalation"]) == (
        "resolved",
        "SEV2",
        [],
    )


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # A listed value, compared case-insensitively, quoted as written.
        pytest.param({"severity": "Critical"}, 'severity="Critical"', id="listed"),
        # An unlisted value falls back to the rule's severity.
        pytest.param(
            {"severity": "bogus"}, 'severity="bogus" is not listed; the rule\'s severity', id="x"
        ),
        # No label at all: the rule's severity.
        pytest.param({}, "no severity label; the rule's severity", id="absent"),
        # A rule with a fixed severity (database).
        pytest.param({"team": "db"}, "the rule's severity", id="fixed"),
    ],
)
def test_severity_reason(ruleset: Ruleset, labels: dict[str, str], expected: str) -> None:
    (decision,) = ruleset.explain({"alertname": "A", **labels}).decisions
    assert severity_reason(ruleset.rule(decision.rule), {"alertname": "A", **labels}) == expected


def test_default_rule_severity_reason(ruleset: Ruleset) -> None:
    assert severity_reason(ruleset.default_rule, {}) == "defaults.severity"


def test_empty_label_values_are_absent_labels() -> None:
    # As Alertmanager treats them, so `cluster=` on the command line is no cluster at all.
    alert = alert_from_labels({"alertname": "A", "cluster": ""}, THURSDAY_10)
    assert dict(alert.labels) == {"alertname": "A"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An offset is kept; none means UTC; `Z` is UTC.
        pytest.param("2026-11-26T11:00+01:00", "2026-11-26T11:00:00+01:00", id="offset"),
        pytest.param("2026-11-26T10:00", "2026-11-26T10:00:00+00:00", id="naive-utc"),
        pytest.param("2026-11-26T10:00:00Z", "2026-11-26T10:00:00+00:00", id="zulu"),
    ],
)
def test_parse_at(text: str, expected: str) -> None:
    assert parse_at(text).isoformat() == expected


def test_parse_at_names_the_text() -> None:
    with pytest.raises(ValueError, match="'soon' is not an ISO time"):
        parse_at("soon")


def test_render_text(ruleset: Ruleset) -> None:
    labels = {"alertname": "DiskFull", "severity": "critical", "cluster": "eu-1"}
    dropped = {"alertname": "Watchdog"}
    report = explain(
        ruleset,
        [alert_from_labels(labels, THURSDAY_10), alert_from_labels(dropped, THURSDAY_10)],
        THURSDAY_10,
    )
    routing = ruleset.rules[0].file
    assert render_text(report) == (
        'alert {alertname="DiskFull", cluster="eu-1", severity="critical"} (firing) at '
        "2026-11-26 10:00 UTC\n"
        "  rules, in order:\n"
        f"    heartbeat  no match          {routing}\n"
        '      alertname="Watchdog" did not match (alertname is "DiskFull")\n'
        f"    database   no match          {routing}\n"
        '      team="db" did not match (label team is absent)\n'
        f"    alerts     routed            {routing}\n"
        "      matches every alert\n"
        '  decision: rule alerts -> SEV2 (severity="critical"), team platform\n'
        '    group key: alerts:{alertname="DiskFull",cluster="eu-1"}\n'
        "    paging: page, response time 15m\n"
        "    if nobody acknowledges:\n"
        "      now     team channel: channel:team-log\n"
        "      now     step 1: channel:pager\n"
        "      +15m    step 2: schedule:primary -> person:alice via backup (alice@example.com)\n"
        f"      +25m    {EXHAUSTED}\n"
        "\n"
        'alert {alertname="Watchdog"} (firing) at 2026-11-26 10:00 UTC\n'
        "  rules, in order:\n"
        f"    heartbeat  dropped           {routing}\n"
        '      alertname="Watchdog" matched (alertname is "Watchdog")\n'
        f"    database   not reached       {routing}\n"
        f"    alerts     not reached       {routing}\n"
        "  dropped by rule heartbeat: no incident, nobody is told\n"
    )


def test_render_text_of_a_live_incident_says_what_was_recorded(ruleset: Ruleset) -> None:
    report = explain(ruleset, [alert_from_labels({"alertname": "A"}, THURSDAY_10)], THURSDAY_10)
    report["live"] = {"incident": "INC-7", "rule": "alerts", "severity": "SEV1", "team": "db"}
    assert render_text(report).splitlines()[0] == (
        "INC-7 was recorded as rule alerts, SEV1, team db; explained below with the local rules"
    )


# --- POST /api/v1/explain ------------------------------------------------------------------------


@pytest.fixture
def api(settings: Settings, ruleset: Ruleset, redis: Redis) -> Iterator[httpx.Client]:
    """The receiver with a small body limit, as the explain route reads it."""
    app = create_app(replace(settings, max_body_bytes=4096), ruleset, queue_depth=lambda: {})
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_api_explains_labels(api: httpx.Client, ruleset: Ruleset) -> None:
    labels = {"alertname": "DiskFull", "severity": "critical"}
    response = api.post("/api/v1/explain", json={"labels": labels, "at": "2026-11-26T10:00:00Z"})
    assert response.status_code == 200, response.text
    assert response.json() == explain(
        ruleset, [alert_from_labels(labels, THURSDAY_10)], THURSDAY_10
    )


def test_api_explains_a_payload(api: httpx.Client) -> None:
    body = alertmanager_body([{"alertname": "A", "severity": "page"}, {"alertname": "Watchdog"}])
    response = api.post(
        "/api/v1/explain",
        content=b'{"integration": "alertmanager", "payload": ' + body + b"}",
    )
    assert response.status_code == 200, response.text
    alerts = response.json()["alerts"]
    assert [(a["labels"]["alertname"], a["dropped_by"]) for a in alerts] == [
        ("A", None),
        ("Watchdog", "heartbeat"),
    ]
    assert alerts[0]["decisions"][0]["severity"] == "SEV1"


def test_api_without_at_uses_now(api: httpx.Client) -> None:
    before = datetime.now(UTC)
    report = api.post("/api/v1/explain", json={"labels": {"alertname": "A"}}).json()
    assert before <= datetime.fromisoformat(report["at"]) <= before + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        # Not JSON, or not an object.
        pytest.param(b"{", 400, {"error": "body is not JSON", "field": ""}, id="not-json"),
        pytest.param(
            b"[]",
            400,
            {"error": 'body must be a JSON object: {"labels": {...}} or {"payload": ...}'},
            id="not-object",
        ),
        # Unknown fields are named, not ignored.
        pytest.param(
            b'{"labels": {"a": "b"}, "label": 1}',
            400,
            {
                "error": "unknown field 'label'; fields: labels, payload, integration, at",
                "field": "label",
            },
            id="unknown-field",
        ),
        # Exactly one of labels and payload.
        pytest.param(
            b"{}", 400, {"error": "give either labels or payload", "field": "labels"}, id="neither"
        ),
        pytest.param(
            b'{"labels": {"a": "b"}, "payload": {}}',
            400,
            {"error": "give either labels or payload", "field": "labels"},
            id="both",
        ),
        # Labels are an object of strings; the bad one is named.
        pytest.param(
            b'{"labels": {}}',
            400,
            {"error": "labels must be an object of label names to values", "field": "labels"},
            id="labels-empty",
        ),
        pytest.param(
            b'{"labels": {"code": 500}}',
            400,
            {"error": "label 'code' must be a string", "field": "labels.code"},
            id="label-not-string",
        ),
        pytest.param(
            b'{"labels": {"a": "b"}, "integration": "grafana"}',
            400,
            {"error": "integration goes with payload", "field": "integration"},
            id="integration-without-payload",
        ),
        # A bad time.
        pytest.param(
            b'{"labels": {"a": "b"}, "at": "soon"}',
            400,
            {"error": "'soon' is not an ISO time (e.g. 2026-11-26T10:00:00Z)", "field": "at"},
            id="bad-at",
        ),
        # An integration neither the rules define nor a format.
        pytest.param(
            b'{"payload": {}, "integration": "zabbix"}',
            400,
            {
                "error": "integration must be one of alertmanager, basic, grafana, open",
                "field": "integration",
            },
            id="unknown-integration",
        ),
        # The source's own error, its field under `payload`.
        pytest.param(
            b'{"payload": {"version": "4", "alerts": [{"labels": {"a": "b"}, "startsAt": "x"}]}}',
            400,
            {
                "error": "not a valid alertmanager payload: invalid RFC 3339 time 'x'",
                "field": "payload.alerts.0.startsAt",
            },
            id="bad-payload",
        ),
        # The receiver's body limit applies.
        pytest.param(
            b'{"labels": {"a": "' + b"x" * 5000 + b'"}}',
            413,
            {"error": "body larger than the 4096-byte limit (SEVROUTER_MAX_BODY_BYTES)"},
            id="too-large",
        ),
    ],
)
def test_api_bad_input(api: httpx.Client, body: bytes, status: int, error: dict[str, str]) -> None:
    response = api.post("/api/v1/explain", content=body)
    assert (response.status_code, response.json()) == (status, error)


def test_api_is_served_by_the_receiver(client: httpx.Client) -> None:
    response = client.post("/api/v1/explain", json={"labels": {"alertname": "Watchdog"}})
    assert response.status_code == 200, response.text
    assert response.json()["alerts"][0]["dropped_by"] == "heartbeat"
