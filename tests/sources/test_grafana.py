"""router.sources for `grafana` integrations: unified (FORMATS.md 2.2-2.3) and legacy (2.7)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from router.alert import Alert, AlertStatus, Links, Source, fingerprint
from router.errors import PayloadError
from router.sources import SourceKind, parse

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ZERO = "0001-01-01T00:00:00Z"
# A field given this value is left out of the body (None is written as null).
OMIT: Any = object()


def unified_alert(**fields: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "WebhookAlert", "grafana_folder": "default"},
        "annotations": {"summary": "it broke"},
        "startsAt": "2024-01-01T00:00:00Z",
        "endsAt": ZERO,
        "generatorURL": "http://grafana/alerting/grafana/UID/view?orgId=1",
        "fingerprint": "15c59b0a380bd9f1",
        "silenceURL": "http://grafana/alerting/silence/new?matcher=alertname%3DWebhookAlert",
        "dashboardURL": "http://grafana/d/abc?from=1&to=2",
        "panelURL": "http://grafana/d/abc?from=1&to=2&viewPanel=3",
        "values": {"A": 1, "B": 0.5},
        "valueString": "[ var='A' labels={} value=1 ]",
    }
    alert.update(fields)
    return {key: value for key, value in alert.items() if value is not OMIT}


def unified_body(*alerts: dict[str, Any], **fields: Any) -> bytes:
    message: dict[str, Any] = {
        "receiver": "webhook_recv",
        "status": "firing",
        "orgId": 1,
        "alerts": list(alerts) if alerts else [unified_alert()],
        "groupLabels": {"alertname": "WebhookAlert"},
        "commonLabels": {"alertname": "WebhookAlert"},
        "commonAnnotations": {},
        "externalURL": "http://grafana/",
        "version": "1",
        "groupKey": '{}/{alertname="WebhookAlert"}:{alertname="WebhookAlert"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] WebhookAlert (default)",
        "state": "alerting",
        "message": "**Firing**",
    }
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not OMIT}).encode()


def legacy_body(**fields: Any) -> bytes:
    message: dict[str, Any] = {
        "dashboardId": 1,
        "evalMatches": [{"value": 1, "metric": "Count", "tags": {}}],
        "message": "Notification Message",
        "orgId": 1,
        "panelId": 2,
        "ruleId": 7,
        "ruleName": "Panel Title alert",
        "ruleUrl": "http://grafana/d/x/dash?tab=alert&viewPanel=2",
        "state": "alerting",
        "tags": {"team": "blue"},
        "title": "[Alerting] Panel Title alert",
    }
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not OMIT}).encode()


def parse_grafana(body: bytes) -> list[Alert]:
    return parse(SourceKind.GRAFANA, body, integration="graf", now=NOW)


def parse_one(body: bytes) -> Alert:
    [alert] = parse_grafana(body)
    return alert


def payload_error(body: bytes) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse_grafana(body)
    return caught.value


# --- the captures in shared/payloads ------------------------------------------------------------

GRAFANA_CAPTURES: dict[str, list[dict[str, Any]]] = {
    # Grafana's docs example: +02:00 times, values without valueString, old URL formats.
    "grafana_firing.json": [
        {
            "source": Source.GRAFANA,
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            "starts_at": datetime(2021, 10, 12, 7, 51, 3, 157076, UTC),
            "ends_at": None,
            "upstream_fingerprint": "c6eadffa33fcdf37",
            "values": {"B": 44.23943737541908, "C": 1.0},
            "value_string": "",
            "links": Links(
                generator="https://play.grafana.org/alerting/1afz29v7z/edit",
                silence="https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
                "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
            ),
        },
        {
            "status": "firing",
            "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
            "starts_at": datetime(2021, 10, 12, 7, 56, 3, 157076, UTC),
            "upstream_fingerprint": "bc97ff14869b13e3",
        },
    ],
    # A real Grafana integration-test body: valueString present, empty annotations.
    "grafana_firing_integration_test.json": [
        {
            "source": Source.GRAFANA,
            "status": "firing",
            "labels": {"alertname": "WebhookAlert", "grafana_folder": "default"},
            "annotations": {},
            "starts_at": datetime(2024, 1, 1, tzinfo=UTC),
            "ends_at": None,
            "upstream_fingerprint": "15c59b0a380bd9f1",
            "values": {"A": 1.0},
            "value_string": "[ var='A' labels={} value=1 ]",
            "is_test": False,
        }
    ],
    "grafana_resolved.json": [
        {
            "status": "resolved",
            "ends_at": datetime(2024, 1, 1, 0, 5, tzinfo=UTC),
            "values": {"A": 0.0},
        }
    ],
    # Legacy: tags + alertname=ruleName, title/message as summary/description, no times.
    "grafana_legacy_alerting.json": [
        {
            "source": Source.GRAFANA_LEGACY,
            "status": "firing",
            "labels": {"tag name": "tag value", "alertname": "Panel Title alert"},
            "annotations": {
                "summary": "[Alerting] Panel Title alert",
                "description": "Notification Message",
            },
            "starts_at": NOW,
            "ends_at": None,
            "upstream_fingerprint": "",
            "values": {"Count": 1.0},
            "value_string": "[ metric='Count' labels={} value=1 ]",
            "links": Links(
                generator="http://localhost:3000/d/hZ7BuVbWz/test-dashboard"
                "?fullscreen&edit&tab=alert&panelId=2&orgId=1",
                image="https://grafana.com/assets/img/blog/mixed_styles.png",
            ),
            "is_test": False,
        }
    ],
    # no_data: firing, marked by a label; no message -> no description; tags {} -> only alertname.
    "grafana_legacy_no_data.json": [
        {
            "status": "firing",
            "labels": {"alertname": "Panel Title alert", "grafana_state": "no_data"},
            "annotations": {"summary": "[No Data] Panel Title alert"},
            "values": None,
            "value_string": "",
        }
    ],
    # ok: resolves the plain alert and its no_data twin, both ending now.
    "grafana_legacy_ok.json": [
        {
            "status": "resolved",
            "labels": {"tag name": "tag value", "alertname": "Panel Title alert"},
            "ends_at": NOW,
        },
        {
            "status": "resolved",
            "labels": {
                "tag name": "tag value",
                "alertname": "Panel Title alert",
                "grafana_state": "no_data",
            },
            "ends_at": NOW,
        },
    ],
}


def test_every_grafana_capture_is_covered(payloads_dir: Path) -> None:
    # Every inbound Grafana capture (not the HMAC vectors) must get expectations here.
    names = {path.name for path in payloads_dir.glob("grafana_*.json")}
    assert names - {"grafana_hmac_test_vectors.json"} == set(GRAFANA_CAPTURES)


@pytest.mark.parametrize("name", sorted(GRAFANA_CAPTURES), ids=str)
def test_capture(name: str, payload: Callable[[str], bytes]) -> None:
    alerts = parse_grafana(payload(name))
    expected = GRAFANA_CAPTURES[name]
    assert len(alerts) == len(expected)
    for alert, fields in zip(alerts, expected, strict=True):
        assert {key: getattr(alert, key) for key in fields} == fields
        assert alert.integration == "graf"
        # Our identity, never Grafana's (which hashes labels stripped from the body).
        assert alert.fingerprint == fingerprint(alert.labels)


# --- unified -------------------------------------------------------------------------------------


def test_unified_alert_in_full() -> None:
    # Every Grafana-specific field lands where it belongs.
    alert = parse_one(unified_body(unified_alert(imageURL="https://img/1.png", ruleUID="UID")))
    labels = {"alertname": "WebhookAlert", "grafana_folder": "default"}
    assert alert == Alert(
        source=Source.GRAFANA,
        integration="graf",
        status=AlertStatus.FIRING,
        labels=labels,
        annotations={"summary": "it broke"},
        starts_at=datetime(2024, 1, 1, tzinfo=UTC),
        ends_at=None,
        fingerprint=fingerprint(labels),
        upstream_fingerprint="15c59b0a380bd9f1",
        links=Links(
            generator="http://grafana/alerting/grafana/UID/view?orgId=1",
            dashboard="http://grafana/d/abc?from=1&to=2",
            panel="http://grafana/d/abc?from=1&to=2&viewPanel=3",
            silence="http://grafana/alerting/silence/new?matcher=alertname%3DWebhookAlert",
            image="https://img/1.png",
        ),
        values={"A": 1.0, "B": 0.5},
        value_string="[ var='A' labels={} value=1 ]",
    )


@pytest.mark.parametrize(
    ("fields", "values", "value_string"),
    [
        # Test notifications and some states carry values: null.
        pytest.param({"values": None}, None, "[ var='A' labels={} value=1 ]", id="values-null"),
        pytest.param({"values": OMIT}, None, "[ var='A' labels={} value=1 ]", id="values-absent"),
        # The docs example has no valueString.
        pytest.param({"valueString": OMIT}, {"A": 1.0, "B": 0.5}, "", id="no-valueString"),
        pytest.param({"values": {}}, {}, "[ var='A' labels={} value=1 ]", id="values-empty"),
    ],
)
def test_values(fields: dict[str, Any], values: dict[str, float] | None, value_string: str) -> None:
    alert = parse_one(unified_body(unified_alert(**fields)))
    assert (alert.values, alert.value_string) == (values, value_string)


def test_unified_tolerates_newer_and_null_fields() -> None:
    # 12.x keys (appVersion, per-alert orgId, enrichments, ruleUID) and null maps are fine.
    alert = unified_alert(orgId=1, enrichments={"x": [1, None]}, ruleUID="u", annotations=None)
    body = unified_body(alert, appVersion="12.4.3", commonLabels=None, groupLabels=None)
    parsed = parse_one(body)
    assert parsed.annotations == {}
    assert parsed.labels == {"alertname": "WebhookAlert", "grafana_folder": "default"}


def test_unified_sanitizes_like_alertmanager() -> None:
    # Same edge rules as Alertmanager: empty values dropped, identity from what is left.
    labels = {"alertname": "A", "empty": "", "team": "blue"}
    alert = parse_one(unified_body(unified_alert(labels=labels, annotations={"d": ""})))
    assert alert.labels == {"alertname": "A", "team": "blue"}
    assert alert.annotations == {}
    assert alert.fingerprint == fingerprint({"alertname": "A", "team": "blue"})


def test_unified_status_missing_is_derived() -> None:
    # Same rule as Alertmanager: no status + past endsAt -> resolved.
    alert = parse_one(unified_body(unified_alert(status=OMIT, endsAt="2024-06-01T11:00:00Z")))
    assert (alert.status, alert.ends_at) == ("resolved", datetime(2024, 6, 1, 11, tzinfo=UTC))


# --- test notifications --------------------------------------------------------------------------

DISPATCH_KEY = '{}/{alertname="WebhookAlert"}:{alertname="WebhookAlert"}'
TEST_LABELS = {"alertname": "TestAlert", "instance": "Grafana"}


@pytest.mark.parametrize(
    ("group_key", "labels", "is_test"),
    [
        # Grafana 10+ "Test" button: <integration name>-<labels fingerprint>-<unix seconds>.
        pytest.param("webhook-57c6d9296de2ad39-1704985443", TEST_LABELS, True, id="test-key"),
        # The integration name may itself contain dashes and spaces.
        pytest.param("my hook-v2-57c6d9296de2ad39-1704985443", TEST_LABELS, True, id="dashed-name"),
        # Custom test alerts replace the default labels; the key still says "test".
        pytest.param(
            "webhook-0123456789abcdef-1704985443", {"alertname": "Mine"}, True, id="custom-labels"
        ),
        # Older Grafana: label set followed by Go's time.Time.String().
        pytest.param(
            '{alertname="TestAlert", instance="Grafana"}2024-01-11 15:04:03.123456789 +0000 UTC'
            " m=+12.345",
            TEST_LABELS,
            True,
            id="old-test-key",
        ),
        # A real rule may be called TestAlert; with a dispatcher key it is real and pages.
        pytest.param(DISPATCH_KEY, TEST_LABELS, False, id="test-labels-real-key"),
        pytest.param("{}:{}", {"alertname": "A"}, False, id="no-grouping"),
        # A dispatcher key ends in "}" even if a label value looks like a test key.
        pytest.param(
            '{}:{alertname="x-57c6d9296de2ad39-1704985443"}',
            {"alertname": "A"},
            False,
            id="lookalike",
        ),
        pytest.param(OMIT, {"alertname": "A"}, False, id="no-group-key"),
    ],
)
def test_is_test_follows_the_group_key(
    group_key: Any, labels: dict[str, str], is_test: bool
) -> None:
    alert = parse_one(unified_body(unified_alert(labels=labels, values=None), groupKey=group_key))
    assert alert.is_test is is_test


# --- legacy --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "statuses", "state_labels"),
    [
        # alerting: firing, no marker.
        pytest.param("alerting", ["firing"], [None], id="alerting"),
        # no_data: firing, and a different alert from the same rule's `alerting` one.
        pytest.param("no_data", ["firing"], ["no_data"], id="no_data"),
        # ok: resolves both the plain alert and its no_data twin.
        pytest.param("ok", ["resolved", "resolved"], [None, "no_data"], id="ok"),
        # States Grafana lists but cannot send: firing (shown, not dropped), marked for rules.
        pytest.param("paused", ["firing"], ["paused"], id="paused"),
        pytest.param("pending", ["firing"], ["pending"], id="pending"),
        pytest.param("", ["firing"], ["unknown"], id="empty-state"),
    ],
)
def test_legacy_state(state: str, statuses: list[str], state_labels: list[str | None]) -> None:
    alerts = parse_grafana(legacy_body(state=state))
    assert [alert.status for alert in alerts] == statuses
    assert [alert.labels.get("grafana_state") for alert in alerts] == state_labels
    for alert in alerts:
        assert alert.labels["alertname"] == "Panel Title alert"
        assert alert.starts_at == NOW
        assert alert.ends_at == (NOW if alert.status is AlertStatus.RESOLVED else None)


def test_legacy_identity_survives_state_changes() -> None:
    # alerting and ok name the same alert, so the resolve reaches the incident the firing opened.
    firing = parse_one(legacy_body(state="alerting"))
    no_data = parse_one(legacy_body(state="no_data"))
    resolved = parse_grafana(legacy_body(state="ok"))
    assert [alert.fingerprint for alert in resolved] == [firing.fingerprint, no_data.fingerprint]
    assert firing.fingerprint != no_data.fingerprint


@pytest.mark.parametrize(
    ("fields", "labels"),
    [
        # ruleName is the identity: it wins over a tag called alertname.
        pytest.param(
            {"tags": {"alertname": "other", "team": "blue"}},
            {"alertname": "Panel Title alert", "team": "blue"},
            id="ruleName-wins",
        ),
        # Grafana 4.x had no tags; null is an empty map.
        pytest.param({"tags": OMIT}, {"alertname": "Panel Title alert"}, id="no-tags"),
        pytest.param({"tags": None}, {"alertname": "Panel Title alert"}, id="null-tags"),
        # Empty tag values are dropped like empty labels.
        pytest.param(
            {"tags": {"team": "", "env": "prod"}},
            {"alertname": "Panel Title alert", "env": "prod"},
            id="empty-tag",
        ),
    ],
)
def test_legacy_labels(fields: dict[str, Any], labels: dict[str, str]) -> None:
    alert = parse_one(legacy_body(**fields))
    assert alert.labels == labels
    assert alert.fingerprint == fingerprint(labels)


@pytest.mark.parametrize(
    ("fields", "links"),
    [
        # Later versions: camelCase.
        pytest.param(
            {"ruleUrl": "http://r", "imageUrl": "http://i"},
            Links(generator="http://r", image="http://i"),
            id="camelCase",
        ),
        # Grafana 4.x: snake_case.
        pytest.param(
            {"ruleUrl": OMIT, "rule_url": "http://r", "image_url": "http://i"},
            Links(generator="http://r", image="http://i"),
            id="snake_case",
        ),
        # Both present: camelCase (the newer) wins.
        pytest.param(
            {"ruleUrl": "http://new", "rule_url": "http://old"},
            Links(generator="http://new"),
            id="both",
        ),
        # ruleUrl is left out when Grafana cannot resolve it.
        pytest.param({"ruleUrl": OMIT}, Links(), id="none"),
    ],
)
def test_legacy_links(fields: dict[str, Any], links: Links) -> None:
    assert parse_one(legacy_body(**fields)).links == links


@pytest.mark.parametrize(
    ("matches", "values", "value_string"),
    [
        # No matches (ok/no_data): no values at all.
        pytest.param([], None, "", id="none"),
        pytest.param(OMIT, None, "", id="absent"),
        # Several series: metric -> value; tags rendered sorted, Go-style numbers.
        pytest.param(
            [
                {"value": 2.5, "metric": "cpu", "tags": {"host": "b", "dc": "x"}},
                {"value": 100, "metric": "mem", "tags": None},
            ],
            {"cpu": 2.5, "mem": 100.0},
            "[ metric='cpu' labels={dc=x, host=b} value=2.5 ], "
            "[ metric='mem' labels={} value=100 ]",
            id="two-series",
        ),
        # A null value (null.Float) is kept in the text, left out of the numbers.
        pytest.param(
            [{"value": None, "metric": "cpu"}],
            None,
            "[ metric='cpu' labels={} value=null ]",
            id="null-value",
        ),
    ],
)
def test_legacy_eval_matches(
    matches: Any, values: dict[str, float] | None, value_string: str
) -> None:
    alert = parse_one(legacy_body(evalMatches=matches))
    assert (alert.values, alert.value_string) == (values, value_string)


@pytest.mark.parametrize(
    ("fields", "is_test"),
    [
        # Grafana's legacy "Send Test" notification: ruleId 0, which no stored rule has.
        pytest.param(
            {
                "ruleId": 0,
                "ruleName": "Test notification",
                "message": "Someone is testing the alert notification within grafana.",
                "evalMatches": [
                    {"value": 100, "metric": "High value", "tags": None},
                    {"value": 200, "metric": "Higher Value", "tags": None},
                ],
            },
            True,
            id="test-notification",
        ),
        pytest.param({"ruleId": 1}, False, id="real-rule"),
        # Without a ruleId (earliest versions) we cannot tell: treat as real.
        pytest.param({"ruleId": OMIT}, False, id="no-ruleId"),
    ],
)
def test_legacy_is_test(fields: dict[str, Any], is_test: bool) -> None:
    assert parse_one(legacy_body(**fields)).is_test is is_test


def test_legacy_annotations() -> None:
    # title -> summary, message -> description; absent or empty ones are not invented.
    assert parse_one(legacy_body(message=OMIT)).annotations == {
        "summary": "[Alerting] Panel Title alert"
    }
    assert parse_one(legacy_body(title="", message="m")).annotations == {"description": "m"}


# --- malformed bodies ----------------------------------------------------------------------------

TEST_KEY_LIKE = "the Alertmanager format: declare the integration as alertmanager"
NEITHER = "field required (neither a unified body with `alerts` nor a legacy one with `ruleName`)"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        pytest.param(b"{", "", "body is not JSON: ", id="not-json"),
        pytest.param(b"[{}]", "", "expected an object, got a list", id="json-array"),
        # Neither generation's shape.
        pytest.param(
            b"{}",
            "alerts",
            NEITHER,
            id="empty-object",
        ),
        pytest.param(
            b'{"title": "x", "state": "alerting"}',
            "alerts",
            NEITHER,
            id="neither",
        ),
        # The integration's kind decides: version "4" is the Alertmanager format, not sniffed.
        pytest.param(
            unified_body(version="4"),
            "version",
            f"unsupported version '4': expected '1' ({TEST_KEY_LIKE})",
            id="version-4",
        ),
        # A custom payload template (12.0+) or a future version.
        pytest.param(
            unified_body(version="2"), "version", "unsupported version '2': expected '1'", id="v2"
        ),
        pytest.param(unified_body(version=OMIT), "version", "field required", id="no-version"),
        pytest.param(unified_body(version=None), "version", "field required", id="null-version"),
        pytest.param(
            unified_body(alerts=None), "alerts", "expected a list, got null", id="alerts-null"
        ),
        pytest.param(
            unified_body(alerts={"0": {}}),
            "alerts",
            "expected a list, got an object",
            id="alerts-map",
        ),
        pytest.param(
            unified_body(unified_alert(values={"A": "1"})),
            "alerts.0.values.A",
            "expected a number, got a string",
            id="value-string",
        ),
        # NaN is not JSON, but readers accept it; it must not reach downstream encoders.
        pytest.param(
            unified_body().replace(b'"A": 1,', b'"A": NaN,'),
            "alerts.0.values.A",
            "expected a finite number",
            id="value-nan",
        ),
        pytest.param(
            unified_body(unified_alert(values=[1])),
            "alerts.0.values",
            "expected an object, got a list",
            id="values-list",
        ),
        pytest.param(
            unified_body(unified_alert(), unified_alert(labels={"alertname": 1})),
            "alerts.1.labels.alertname",
            "expected a string, got a number",
            id="label-number",
        ),
        pytest.param(
            unified_body(unified_alert(startsAt="2021-10-12T09:51:03.157076+0200")),
            "alerts.0.startsAt",
            "invalid RFC 3339 time '2021-10-12T09:51:03.157076+0200'",
            id="startsAt-bad-offset",
        ),
        pytest.param(
            unified_body(unified_alert(labels=None)),
            "alerts.0.labels",
            "alert has no labels",
            id="labels-null",
        ),
        pytest.param(
            unified_body(unified_alert(status="alerting")),
            "alerts.0.status",
            "expected 'firing' or 'resolved', got 'alerting'",
            id="state-as-status",
        ),
        # Legacy: ruleName and state are required once the body is legacy-shaped.
        pytest.param(legacy_body(ruleName=OMIT), "ruleName", "field required", id="no-ruleName"),
        pytest.param(
            legacy_body(ruleName=""), "ruleName", "must not be empty", id="empty-ruleName"
        ),
        pytest.param(legacy_body(state=OMIT), "state", "field required", id="no-state"),
        pytest.param(
            legacy_body(state=1), "state", "expected a string, got a number", id="state-int"
        ),
        pytest.param(
            legacy_body(ruleId="7"), "ruleId", "expected an integer, got a string", id="ruleId-str"
        ),
        pytest.param(
            legacy_body(tags={"team": 5}),
            "tags.team",
            "expected a string, got a number",
            id="tag-int",
        ),
        pytest.param(
            legacy_body(tags={"": "x"}), "tags", "tag name must not be empty", id="empty-tag-name"
        ),
        pytest.param(
            legacy_body(evalMatches={"value": 1}),
            "evalMatches",
            "expected a list, got an object",
            id="evalMatches-object",
        ),
        pytest.param(
            legacy_body(evalMatches=[{"value": "high", "metric": "m"}]),
            "evalMatches.0.value",
            "expected a number, got a string",
            id="evalMatch-value-str",
        ),
        pytest.param(
            legacy_body(ruleUrl=OMIT, rule_url=[]),
            "rule_url",
            "expected a string, got a list",
            id="rule_url-list",
        ),
    ],
)
def test_malformed_body(body: bytes, field: str, message: str) -> None:
    error = payload_error(body)
    assert error.field == field
    if message.startswith("body is not JSON: "):
        # The rest is the JSON reader's wording (line/column), not ours to pin.
        assert error.message.startswith(message)
    else:
        assert error.message == message


def test_hostile_variants_of_captures(
    payload: Callable[[str], bytes], assert_hostile_safe: Callable[[SourceKind, bytes], int]
) -> None:
    # Every truncation and every type substitution of real bodies: PayloadError or alerts only.
    for name in GRAFANA_CAPTURES:
        body = payload(name)
        assert assert_hostile_safe(SourceKind.GRAFANA, body) > len(body)


def test_alertmanager_body_is_not_sniffed(payload: Callable[[str], bytes]) -> None:
    # An Alertmanager body posted to a Grafana integration is refused on its version.
    with pytest.raises(PayloadError) as caught:
        parse_grafana(payload("alertmanager_v4_firing.json"))
    assert (caught.value.field, caught.value.message) == (
        "version",
        f"unsupported version '4': expected '1' ({TEST_KEY_LIKE})",
    )
