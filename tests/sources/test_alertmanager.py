"""router.sources for integrations of kind `alertmanager` (FORMATS.md section 1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from router.alert import Alert, AlertStatus, Links, Source, fingerprint
from router.errors import PayloadError
from router.sources import SourceKind, alertmanager, parse
from router.sources._recent import RecentBodies
from router.sources._wire import load
from tests.sources.conftest import variants

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ZERO = "0001-01-01T00:00:00Z"
TEST_GROUP_KEY = "test-57c6d9296de2ad39-1704985443"


# A field given this value is left out of the body (None is written as null).
OMIT: Any = object()


def am_alert(**fields: Any) -> dict[str, Any]:
    """One wire alert, with `fields` replacing or (OMIT) removing the defaults."""
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "InstanceDown", "instance": "node-1:9100", "job": "node"},
        "annotations": {"summary": "node-1 down"},
        "startsAt": "2024-05-14T09:12:03.617Z",
        "endsAt": ZERO,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": "0123456789abcdef",
    }
    alert.update(fields)
    return {key: value for key, value in alert.items() if value is not OMIT}


def am_body(*alerts: dict[str, Any], **fields: Any) -> bytes:
    """A version-4 body with a trailing newline, as Alertmanager writes it; `fields` as above."""
    message: dict[str, Any] = {
        "receiver": "web\\.hook",
        "status": "firing",
        "alerts": list(alerts) if alerts else [am_alert()],
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {"alertname": "InstanceDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="InstanceDown"}',
        "truncatedAlerts": 0,
    }
    message.update(fields)
    return (json.dumps({k: v for k, v in message.items() if v is not OMIT}) + "\n").encode()


def parse_am(body: bytes) -> list[Alert]:
    return parse(SourceKind.ALERTMANAGER, body, integration="prom", now=NOW)


def parse_one(body: bytes) -> Alert:
    [alert] = parse_am(body)
    return alert


def payload_error(body: bytes) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse_am(body)
    return caught.value


# --- the captures in shared/payloads ------------------------------------------------------------

AM_CAPTURES = {
    # (statuses, startsAt, endsAt, upstream fingerprints) of every alert, in body order.
    "alertmanager_v4_firing.json": (
        ["firing", "firing"],
        [
            datetime(2024, 5, 14, 9, 12, 3, 617000, UTC),
            datetime(2024, 5, 14, 9, 12, 33, 617000, UTC),
        ],
        [None, None],
        ["796819f0843a14ba", "df03cee2d2093649"],
    ),
    "alertmanager_v4_resolved.json": (
        ["resolved", "resolved"],
        [
            datetime(2024, 5, 14, 9, 12, 3, 617000, UTC),
            datetime(2024, 5, 14, 9, 12, 33, 617000, UTC),
        ],
        [
            datetime(2024, 5, 14, 9, 31, 18, 617000, UTC),
            datetime(2024, 5, 14, 9, 31, 48, 617000, UTC),
        ],
        ["796819f0843a14ba", "df03cee2d2093649"],
    ),
    # v0.34 shape: notification_reason and routeLabels must simply be ignored.
    "alertmanager_v4_firing_v0.34.json": (
        ["firing"],
        [datetime(2024, 5, 14, 9, 12, 3, 617000, UTC)],
        [None],
        ["796819f0843a14ba"],
    ),
}


def test_every_alertmanager_capture_is_covered(payloads_dir: Path) -> None:
    # A capture added to shared/payloads must get expectations here, not be silently skipped.
    assert {path.name for path in payloads_dir.glob("alertmanager_*.json")} == set(AM_CAPTURES)


@pytest.mark.parametrize("name", sorted(AM_CAPTURES), ids=str)
def test_capture(name: str, payload: Callable[[str], bytes]) -> None:
    statuses, starts, ends, upstream = AM_CAPTURES[name]
    alerts = parse_am(payload(name))
    assert [alert.status for alert in alerts] == statuses
    assert [alert.starts_at for alert in alerts] == starts
    assert [alert.ends_at for alert in alerts] == ends
    assert [alert.upstream_fingerprint for alert in alerts] == upstream
    for alert in alerts:
        assert alert.source is Source.ALERTMANAGER
        assert alert.integration == "prom"
        assert alert.fingerprint == fingerprint(alert.labels)
        assert alert.is_test is False


def test_capture_first_alert_in_full(payload: Callable[[str], bytes]) -> None:
    # Every field of the normalized alert, including the \u0026 in generatorURL decoded to "&".
    first = parse_am(payload("alertmanager_v4_firing.json"))[0]
    labels = {
        "alertname": "InstanceDown",
        "instance": "node-1.example.com:9100",
        "job": "node",
        "severity": "critical",
    }
    assert first == Alert(
        source=Source.ALERTMANAGER,
        integration="prom",
        status=AlertStatus.FIRING,
        labels=labels,
        annotations={
            "description": "node-1.example.com:9100 of job node has been down for more than 5 "
            "minutes.",
            "runbook_url": "https://runbooks.example.com/InstanceDown",
            "summary": "Instance node-1.example.com:9100 down",
        },
        starts_at=datetime(2024, 5, 14, 9, 12, 3, 617000, UTC),
        ends_at=None,
        fingerprint=fingerprint(labels),
        upstream_fingerprint="796819f0843a14ba",
        links=Links(
            generator="http://prometheus.example.com:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        ),
    )


# --- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Go RFC3339Nano with 9 digits and a negative offset: converted to UTC, cut to µs.
        pytest.param(
            "2018-03-07T06:33:21.873077559-05:00",
            datetime(2018, 3, 7, 11, 33, 21, 873077, UTC),
            id="nanos-negative-offset",
        ),
        # No fractional part at all (Go trims trailing zeros, down to none).
        pytest.param(
            "2024-05-14T10:00:00Z", datetime(2024, 5, 14, 10, 0, tzinfo=UTC), id="0-digits"
        ),
        # One fractional digit: .3 is 300 ms, not 3 µs.
        pytest.param(
            "2024-05-14T10:00:00.3Z", datetime(2024, 5, 14, 10, 0, 0, 300000, UTC), id="1-digit"
        ),
        pytest.param(
            "2024-05-14T10:00:00.003157Z", datetime(2024, 5, 14, 10, 0, 0, 3157, UTC), id="6-digits"
        ),
        # A positive offset moves the instant back.
        pytest.param(
            "2021-10-12T09:51:03.157076+02:00",
            datetime(2021, 10, 12, 7, 51, 3, 157076, UTC),
            id="positive-offset",
        ),
        # RFC 3339 allows lowercase t and z.
        pytest.param(
            "2024-05-14t10:00:00z", datetime(2024, 5, 14, 10, 0, tzinfo=UTC), id="lowercase"
        ),
    ],
)
def test_starts_at_rfc3339(raw: str, expected: datetime) -> None:
    starts_at = parse_one(am_body(am_alert(startsAt=raw))).starts_at
    assert starts_at == expected
    # Aware and in UTC, not merely "equal instant in another zone".
    assert starts_at.utcoffset() == timedelta(0)
    assert starts_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # Date only: ISO 8601, not an RFC 3339 date-time.
        pytest.param("2024-13-01", "invalid RFC 3339 time '2024-13-01'", id="date-only"),
        # Right shape, impossible month.
        pytest.param(
            "2024-13-01T00:00:00Z", "invalid RFC 3339 time '2024-13-01T00:00:00Z'", id="month-13"
        ),
        # Go cannot represent a leap second, so no sender writes one.
        pytest.param(
            "2016-12-31T23:59:60Z", "invalid RFC 3339 time '2016-12-31T23:59:60Z'", id="second-60"
        ),
        # A Unix timestamp in a string (pydantic's datetime would take it).
        pytest.param("1700000000", "invalid RFC 3339 time '1700000000'", id="unix-seconds"),
        # No offset: the instant is unknown.
        pytest.param(
            "2024-05-14T10:00:00", "invalid RFC 3339 time '2024-05-14T10:00:00'", id="naive"
        ),
        pytest.param(
            "2024-05-14 10:00:00Z", "invalid RFC 3339 time '2024-05-14 10:00:00Z'", id="space"
        ),
        pytest.param(
            "2024-05-14T10:00Z", "invalid RFC 3339 time '2024-05-14T10:00Z'", id="no-secs"
        ),
        pytest.param(
            "2024-05-14T10:00:00+0500",
            "invalid RFC 3339 time '2024-05-14T10:00:00+0500'",
            id="offset-no-colon",
        ),
        # Go writes at most 9 fractional digits.
        pytest.param(
            "2024-05-14T10:00:00.1234567891Z",
            "invalid RFC 3339 time '2024-05-14T10:00:00.1234567891Z'",
            id="10-digits",
        ),
        # Non-ASCII digits are digits to `str.isdigit`, not to RFC 3339.
        pytest.param(
            "٢٠٢٤-05-14T10:00:00Z",
            "invalid RFC 3339 time '٢٠٢٤-05-14T10:00:00Z'",
            id="arabic-digits",
        ),
        pytest.param("", "invalid RFC 3339 time ''", id="empty"),
        pytest.param("garbage", "invalid RFC 3339 time 'garbage'", id="garbage"),
        # Valid, but UTC would be year 10000.
        pytest.param(
            "9999-12-31T23:00:00-05:00",
            "time out of range '9999-12-31T23:00:00-05:00'",
            id="overflow",
        ),
    ],
)
@pytest.mark.parametrize("key", ["startsAt", "endsAt"])
def test_bad_time_names_the_field(key: str, raw: str, message: str) -> None:
    error = payload_error(am_body(am_alert(**{key: raw})))
    assert (error.field, error.message) == (f"alerts.0.{key}", message)


def test_bad_time_message_is_short() -> None:
    # A 10k-char garbage time is quoted back cut short, not in full.
    error = payload_error(am_body(am_alert(startsAt="9" * 10_000)))
    assert error.message == f"invalid RFC 3339 time '{'9' * 64}...'"


# --- status, startsAt and endsAt -----------------------------------------------------------------

PAST = "2024-06-01T11:59:00Z"
PAST_DT = datetime(2024, 6, 1, 11, 59, tzinfo=UTC)
FUTURE = "2024-06-01T12:01:00Z"


@pytest.mark.parametrize(
    ("status", "ends", "expected_status", "expected_end"),
    [
        # Every firing alert from Alertmanager: year-1 endsAt means "not ended" -> None.
        pytest.param("firing", ZERO, "firing", None, id="firing-zero-end"),
        # Year 1 with an offset is the same "unset"; converting it would underflow.
        pytest.param("firing", "0001-01-01T00:00:00+01:00", "firing", None, id="year-1-offset"),
        # Resolved: endsAt is the resolution time.
        pytest.param("resolved", PAST, "resolved", PAST_DT, id="resolved"),
        # A resolved alert always ends; without a time from the sender, it ended when we heard.
        pytest.param("resolved", ZERO, "resolved", NOW, id="resolved-zero-end"),
        pytest.param("resolved", OMIT, "resolved", NOW, id="resolved-no-end"),
        # A firing alert never carries an end, even if a non-AM sender gave a future one.
        pytest.param("firing", FUTURE, "firing", None, id="firing-future-end"),
        # endsAt null is "absent", not an error (tolerated like a null map).
        pytest.param("firing", None, "firing", None, id="null-end"),
        # No status (pre-2017 senders): resolved iff endsAt is set and not in the future.
        pytest.param(OMIT, PAST, "resolved", PAST_DT, id="derived-past"),
        pytest.param(OMIT, "2024-06-01T12:00:00Z", "resolved", NOW, id="derived-now"),
        pytest.param(OMIT, FUTURE, "firing", None, id="derived-future"),
        pytest.param(OMIT, ZERO, "firing", None, id="derived-zero"),
        pytest.param(OMIT, OMIT, "firing", None, id="derived-no-end"),
        # A null status is "absent" too.
        pytest.param(None, PAST, "resolved", PAST_DT, id="null-status"),
    ],
)
def test_status_and_ends_at(
    status: Any, ends: Any, expected_status: str, expected_end: datetime | None
) -> None:
    alert = parse_one(am_body(am_alert(status=status, endsAt=ends)))
    assert (alert.status, alert.ends_at) == (expected_status, expected_end)


def test_zero_starts_at_is_now() -> None:
    # A year-1 startsAt means the sender did not know when: we say now.
    assert parse_one(am_body(am_alert(startsAt=ZERO))).starts_at == NOW


# --- optional and unknown fields -----------------------------------------------------------------


def test_missing_optional_alert_fields() -> None:
    # Pre-0.19 senders have no fingerprint; API-posted alerts no generatorURL.
    alert = parse_one(am_body(am_alert(fingerprint=OMIT, generatorURL=OMIT)))
    assert alert.upstream_fingerprint == ""
    assert alert.links == Links()
    # Our fingerprint does not depend on the sender's.
    assert alert.fingerprint == fingerprint(
        {"alertname": "InstanceDown", "instance": "node-1:9100", "job": "node"}
    )


@pytest.mark.parametrize(
    "fields",
    [
        # Pre-0.21 senders: no truncatedAlerts.
        pytest.param({"truncatedAlerts": OMIT}, id="no-truncatedAlerts"),
        # v0.32+/v0.34+ keys.
        pytest.param(
            {"notification_reason": "repeat interval elapsed", "routeLabels": {"owner": "infra"}},
            id="v0.34-keys",
        ),
        # Third-party senders write null for maps, or leave them out.
        pytest.param(
            {
                "groupLabels": None,
                "commonLabels": None,
                "commonAnnotations": None,
                "routeLabels": None,
            },
            id="null-maps",
        ),
        pytest.param({"groupLabels": OMIT, "commonLabels": OMIT}, id="absent-maps"),
        # OnCall's numFiring/numResolved, and any junk under an unknown key.
        pytest.param(
            {"numFiring": 1, "numResolved": 0, "x-future": {"a": [1, {"b": None}]}},
            id="unknown-keys",
        ),
        # Neither groupKey nor receiver is needed for an Alert.
        pytest.param({"groupKey": OMIT, "receiver": OMIT}, id="no-groupKey-receiver"),
    ],
)
def test_tolerated_top_level_fields(fields: dict[str, Any]) -> None:
    alert = parse_one(am_body(**fields))
    assert alert.labels == {"alertname": "InstanceDown", "instance": "node-1:9100", "job": "node"}
    assert alert.status is AlertStatus.FIRING


def test_null_annotations_and_unknown_alert_keys() -> None:
    # annotations: null is an empty map; per-alert keys we do not know are ignored.
    alert = parse_one(am_body(am_alert(annotations=None, orgId=1, extra=[1, {"x": None}])))
    assert alert.annotations == {}


def test_empty_alert_list_is_no_alerts() -> None:
    # Alertmanager never sends it, but it is a well-formed body meaning "nothing".
    assert parse_am(am_body(alerts=[])) == []


def test_escaped_receiver_does_not_matter() -> None:
    # receiver arrives QuoteMeta-escaped ("web\.hook"); it is not carried on Alert at all.
    plain = parse_one(am_body(receiver="web.hook"))
    escaped = parse_one(am_body(receiver="web\\.hook"))
    assert plain == escaped


# --- sanitizing ----------------------------------------------------------------------------------


def test_empty_values_are_dropped() -> None:
    # Alertmanager treats an empty label as an absent one, so the identity must not change.
    labels = {"alertname": "A", "team": "", "job": "node"}
    alert = parse_one(am_body(am_alert(labels=labels, annotations={"summary": "", "d": "x"})))
    assert alert.labels == {"alertname": "A", "job": "node"}
    assert alert.annotations == {"d": "x"}
    assert alert.fingerprint == fingerprint({"alertname": "A", "job": "node"})


def test_fingerprint_ignores_label_order() -> None:
    # Same label set, different key order on the wire: same identity.
    one = parse_one(am_body(am_alert(labels={"a": "1", "b": "2"})))
    two = parse_one(am_body(am_alert(labels={"b": "2", "a": "1"})))
    assert one.fingerprint == two.fingerprint == fingerprint({"a": "1", "b": "2"})


def test_fingerprint_is_stable_across_releases() -> None:
    # Stored incidents are keyed by it: blake2b-64 of "name 0xFF value 0xFF" per label, sorted by
    # name, joined by 0xFF. A change here would split every firing alert from its incident.
    labels = {"alertname": "DiskFull", "cluster": "eu-1", "ünïcode": "värde ✓", "b": "x\xffy"}
    assert fingerprint(labels) == "d8d2ca19c81abf83"


def test_long_and_utf8_labels_are_fine() -> None:
    # 10k characters is not a reason to reject; UTF-8 names are legal since Alertmanager v0.27.
    long = "x" * 10_000
    alert = parse_one(am_body(am_alert(labels={"alertname": long, "service.name": "ünïcødé"})))
    assert alert.labels == {"alertname": long, "service.name": "ünïcødé"}


def test_html_escapes_are_decoded() -> None:
    # Go escapes & < > as \u0026 \u003c \u003e; we see the characters.
    body = am_body().replace(b"g0.expr=up", b"g0.expr=up\\u0026a=\\u003cb\\u003e")
    assert parse_one(body).links.generator == "http://prometheus:9090/graph?g0.expr=up&a=<b>"


# --- test notifications --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group_key", "is_test"),
    [
        # Grafana's Alertmanager-compatible webhook "Test" button uses Grafana's test group key.
        pytest.param(TEST_GROUP_KEY, True, id="grafana-test-key"),
        # Real dispatcher keys: <route key>:<label set>.
        pytest.param('{}:{alertname="InstanceDown"}', False, id="dispatcher-key"),
        pytest.param('{}/{team="infra"}:{alertname="X", cluster="eu-1"}', False, id="nested-route"),
    ],
)
def test_is_test_follows_the_group_key(group_key: str, is_test: bool) -> None:
    alerts = parse_am(am_body(am_alert(), am_alert(labels={"alertname": "B"}), groupKey=group_key))
    assert [alert.is_test for alert in alerts] == [is_test, is_test]


# --- malformed bodies ----------------------------------------------------------------------------

DEEP = b'{"version":"4","alerts":[],"junk":' + b"[" * 5000 + b"]" * 5000 + b"}"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        # Not JSON at all, in several ways: the whole body is at fault.
        pytest.param(b"not json", "", "body is not JSON: ", id="not-json"),
        pytest.param(b"", "", "body is not JSON: ", id="empty-body"),
        pytest.param(am_body()[:-20], "", "body is not JSON: ", id="truncated"),
        pytest.param(b"\xef\xbb\xbf" + am_body(), "", "body is not JSON: ", id="utf8-bom"),
        pytest.param(
            am_body().replace(b"node-1", b"node-\xff"), "", "body is not JSON: ", id="bad-utf8"
        ),
        # A lone surrogate could not be encoded for hashing; the JSON reader refuses it.
        pytest.param(
            am_body().replace(b"node-1", b"node-\\ud800"), "", "body is not JSON: ", id="surrogate"
        ),
        pytest.param(am_body() + b"{}", "", "body is not JSON: ", id="trailing-junk"),
        # Deep nesting, even under a key we ignore, is refused rather than recursed into.
        pytest.param(DEEP, "", "body is not JSON: recursion limit exceeded", id="deep-junk"),
        # JSON, but not an object.
        pytest.param(b"[]", "", "expected an object, got a list", id="json-array"),
        pytest.param(b'"alerts"', "", "expected an object, got a string", id="json-string"),
        pytest.param(b"null", "", "expected an object, got null", id="json-null"),
        # The version decides the format; anything but "4" is a custom payload or another product.
        pytest.param(
            am_body(version="1"),
            "version",
            "unsupported version '1': expected '4' (custom payload templates are not supported)",
            id="version-1",
        ),
        pytest.param(
            am_body(version=4), "version", "expected a string, got a number", id="version-int"
        ),
        pytest.param(b'{"alerts": []}', "version", "field required", id="no-version"),
        # The version is reported before anything else is wrong.
        pytest.param(
            b'{"alerts": 5, "version": "5"}',
            "version",
            "unsupported version '5': expected '4' (custom payload templates are not supported)",
            id="version-first",
        ),
        # alerts must be a list of objects.
        pytest.param(b'{"version": "4"}', "alerts", "field required", id="no-alerts"),
        pytest.param(
            am_body(alerts={}), "alerts", "expected a list, got an object", id="alerts-object"
        ),
        pytest.param(
            am_body(alerts="x"), "alerts", "expected a list, got a string", id="alerts-string"
        ),
        pytest.param(am_body(alerts=None), "alerts", "expected a list, got null", id="alerts-null"),
        pytest.param(
            am_body(alerts=[1]), "alerts.0", "expected an object, got a number", id="alert-int"
        ),
        # Label values are strings; a number is a sender bug we name.
        pytest.param(
            am_body(am_alert(labels={"alertname": "A", "severity": 2})),
            "alerts.0.labels.severity",
            "expected a string, got a number",
            id="label-number",
        ),
        pytest.param(
            am_body(am_alert(labels={"alertname": "A", "x": None})),
            "alerts.0.labels.x",
            "expected a string, got null",
            id="label-null",
        ),
        pytest.param(
            am_body(am_alert(labels={"alertname": {"deep": "x"}})),
            "alerts.0.labels.alertname",
            "expected a string, got an object",
            id="label-object",
        ),
        pytest.param(
            am_body(am_alert(labels=["alertname"])),
            "alerts.0.labels",
            "expected an object, got a list",
            id="labels-list",
        ),
        pytest.param(
            am_body(am_alert(annotations={"summary": True})),
            "alerts.0.annotations.summary",
            "expected a string, got a boolean",
            id="annotation-bool",
        ),
        # Label names must be non-empty (checked before empty values are dropped).
        pytest.param(
            am_body(am_alert(labels={"alertname": "A", "": "x"})),
            "alerts.0.labels",
            "label name must not be empty",
            id="empty-label-name",
        ),
        pytest.param(
            am_body(am_alert(annotations={"": ""})),
            "alerts.0.annotations",
            "annotation name must not be empty",
            id="empty-annotation-name",
        ),
        # An alert without labels has no identity.
        pytest.param(
            am_body(am_alert(labels={})),
            "alerts.0.labels",
            "alert has no labels",
            id="labels-empty",
        ),
        pytest.param(
            am_body(am_alert(labels=OMIT)),
            "alerts.0.labels",
            "alert has no labels",
            id="labels-missing",
        ),
        pytest.param(
            am_body(am_alert(labels={"alertname": ""})),
            "alerts.0.labels",
            "alert has no labels",
            id="labels-all-empty",
        ),
        # startsAt is required and a string.
        pytest.param(
            am_body(am_alert(startsAt=OMIT)),
            "alerts.0.startsAt",
            "field required",
            id="no-startsAt",
        ),
        pytest.param(
            am_body(am_alert(startsAt=1715677923)),
            "alerts.0.startsAt",
            "expected a string, got a number",
            id="startsAt-number",
        ),
        # Status vocabulary is exact.
        pytest.param(
            am_body(am_alert(status="FIRING")),
            "alerts.0.status",
            "expected 'firing' or 'resolved', got 'FIRING'",
            id="status-case",
        ),
        pytest.param(
            am_body(am_alert(fingerprint=123)),
            "alerts.0.fingerprint",
            "expected a string, got a number",
            id="fingerprint-number",
        ),
        # The index in the path is the failing alert's.
        pytest.param(
            am_body(am_alert(), am_alert(), am_alert(startsAt="yesterday")),
            "alerts.2.startsAt",
            "invalid RFC 3339 time 'yesterday'",
            id="third-alert",
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


def test_moderate_nesting_under_unknown_key_is_ignored() -> None:
    # Depth 100 is legal JSON we must skip over, not a reason to reject.
    body = am_body(junk=json.loads("[" * 100 + "]" * 100))
    assert len(parse_am(body)) == 1


def test_hostile_variants_of_captures(
    payload: Callable[[str], bytes], assert_hostile_safe: Callable[[SourceKind, bytes], int]
) -> None:
    # Every truncation and every type substitution of real bodies: PayloadError or alerts only.
    for name in AM_CAPTURES:
        body = payload(name)
        assert assert_hostile_safe(SourceKind.ALERTMANAGER, body) > len(body)


# --- dispatch ------------------------------------------------------------------------------------


def test_kind_decides_not_the_body(payload: Callable[[str], bytes]) -> None:
    # A Grafana body at an Alertmanager integration is refused on its version, not sniffed.
    with pytest.raises(PayloadError) as caught:
        parse_am(payload("grafana_firing.json"))
    assert caught.value.field == "version"
    # A legacy Grafana body has no version at all.
    with pytest.raises(PayloadError) as caught:
        parse_am(payload("grafana_legacy_alerting.json"))
    assert (caught.value.field, caught.value.message) == ("version", "field required")


def test_now_must_be_aware() -> None:
    # A naive clock reading is a caller bug; it must not be mistaken for a payload problem.
    with pytest.raises(TypeError):
        parse(SourceKind.ALERTMANAGER, am_body(), integration="prom", now=datetime(2024, 6, 1))


def test_now_in_another_zone_is_converted() -> None:
    # starts_at stands in as `now` for a zero startsAt: it must come out in UTC too.
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    [alert] = parse(
        SourceKind.ALERTMANAGER, am_body(am_alert(startsAt=ZERO)), integration="p", now=tokyo
    )
    assert alert.starts_at == NOW
    assert alert.starts_at.tzinfo is UTC


def test_source_kind_values() -> None:
    # Rule files name kinds by these strings.
    assert [kind.value for kind in SourceKind] == ["alertmanager", "grafana"]


# --- the two readers (msgspec for every body, pydantic for the error) agree ----------------------
# A body msgspec accepts must read the same through pydantic; one it refuses is read by pydantic,
# whose answer (usually the error, rarely the alerts) is final, so refusing more is safe.

WIRE_FIELDS = ("starts_at", "status", "labels", "annotations", "ends_at", "generator_url")


def _read_both(body: bytes) -> tuple[object, object]:
    """What each reader makes of `body`: a comparable tuple, or "refused"."""
    try:
        fast = alertmanager._DECODER.decode(body)
        fast_seen: object = (
            "refused"
            if fast.version != "4"
            else (fast.group_key, [tuple(getattr(a, f) for f in WIRE_FIELDS) for a in fast.alerts])
        )
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        fast_seen = "refused"
    try:
        slow = load(alertmanager._Message, body)
        slow_seen: object = (
            slow.group_key,
            [tuple(getattr(a, f) for f in WIRE_FIELDS) for a in slow.alerts],
        )
    except PayloadError:
        slow_seen = "refused"
    return fast_seen, slow_seen


ODD_BODIES = [
    b'{"version":"4","alerts":[{"startsAt":"x","labels":{"a":"1","a":"2"}}]}',  # duplicate keys
    b'{"version":"4","version":"5","alerts":[]}',
    b'{"version":"5","version":"4","alerts":[]}',
    b'{"version":"4","alerts":[{"startsAt":"x","labels":{"a":"\\udcff"}}]}',  # lone surrogate
    b'{"version":"4","alerts":[{"startsAt":"x","labels":{"a":"\xff"}}]}',  # invalid UTF-8
    b'{"version":"4","alerts":[],"junk":NaN}',
    b'{"version":"4","alerts":[],"junk":1e999}',
    b'{"version":"4","alerts":[],"junk":123456789012345678901234567890}',
    b'{"version":"4","alerts":[{"startsAt":"x","status":null,"labels":null}]}',
    b'{"version":"4","alerts":[{"startsAt":"x","generatorURL":null}]}',
    b'{"version":"4","alerts":[]} ',
    b'\xef\xbb\xbf{"version":"4","alerts":[]}',  # UTF-8 byte order mark
    b'{"version":"4","alerts":[],"junk":' + b"[" * 2000 + b"]" * 2000 + b"}",
]


@pytest.mark.parametrize("body", ODD_BODIES, ids=range(len(ODD_BODIES)))
def test_readers_agree_on_odd_bodies(body: bytes) -> None:
    fast, slow = _read_both(body)
    assert fast in ("refused", slow)


def test_readers_agree_on_every_mangled_capture(payload: Callable[[str], bytes]) -> None:
    tried = accepted = 0
    for name in AM_CAPTURES:
        for variant, _ in variants(payload(name)):
            fast, slow = _read_both(variant)
            assert fast in ("refused", slow), variant
            tried += 1
            accepted += fast != "refused"
    # Both outcomes were exercised, many times.
    assert tried > 5000
    assert accepted > 500


# --- re-sent bodies ------------------------------------------------------------------------------
# Alertmanager re-sends unchanged notifications; a body parsed moments ago is served from memory,
# unless its result depended on the clock.

LATER = NOW + timedelta(hours=1)


def test_a_resent_body_is_served_from_memory() -> None:
    body = am_body(am_alert(), am_alert(labels={"alertname": "B"}), groupKey='{}:{a="resend"}')
    first = parse_am(body)
    # Kept from the second delivery on (a body that never comes again is not worth keeping).
    second = parse(SourceKind.ALERTMANAGER, body, integration="prom", now=LATER)
    assert second == first
    assert all(a is not b for a, b in zip(second, first, strict=True))
    third = parse(SourceKind.ALERTMANAGER, body, integration="prom", now=LATER)
    assert all(a is b for a, b in zip(third, second, strict=True))  # not parsed again
    # Another integration, same bytes: its own alerts (the integration is part of each alert).
    other = parse(SourceKind.ALERTMANAGER, body, integration="other", now=NOW)
    assert [a.integration for a in other] == ["other", "other"]


@pytest.mark.parametrize(
    "alert",
    [
        pytest.param(am_alert(startsAt=ZERO), id="zero-startsAt-means-now"),
        pytest.param(am_alert(status="resolved", endsAt=ZERO), id="resolved-without-end"),
        pytest.param(am_alert(status=OMIT, endsAt="2024-06-01T12:30:00Z"), id="no-status"),
    ],
)
def test_a_body_whose_alerts_read_the_clock_is_parsed_again(alert: dict[str, Any]) -> None:
    body = am_body(alert, groupKey='{}:{a="clock"}')
    first = parse_am(body)
    parse_am(body)  # a second delivery: it would be kept now, if it could be
    later = parse(SourceKind.ALERTMANAGER, body, integration="prom", now=LATER)
    assert later[0] is not first[0]
    assert later != first  # a time filled in, or a status derived, from the later clock


def test_recent_bodies_are_bounded_by_an_estimate_of_memory_held() -> None:
    alerts = parse_am(am_body())  # one alert: 3 labels and 1 annotation, about 1 KB parsed
    recent = RecentBodies(max_bytes=3500)
    for n in range(5):
        for _ in range(2):  # kept from the second delivery on
            recent.put("prom", b"x" * 30 + bytes([n]), alerts)
    # About 1,031 bytes each (body and parsed alert): the three newest fit in 3,500.
    assert len(recent) == 3
    assert recent.get("prom", b"x" * 30 + bytes([0])) is None
    assert recent.get("prom", b"x" * 30 + bytes([4])) == alerts
    big = b"y" * 2600  # with its alert, larger than the whole bound: never held
    for _ in range(2):
        recent.put("prom", big, alerts)
    assert recent.get("prom", big) is None
