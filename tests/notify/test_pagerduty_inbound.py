"""PagerDuty v3 webhooks: signature verification and reading acknowledge/resolve events."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest

from router.errors import PayloadError
from router.notify.pagerduty_inbound import PagerDutyAction, parse_event, verify_signature
from router.secrets import Secret

SECRET = Secret("ChfxZNlEqLTNBZ2Vk4pzwqXtvjAk7iKt8cmpYsTXhOojbL4fQSaaZqRmnIkNmpz6")
OLD_SECRET = Secret("b2xkLXNlY3JldC1iZWluZy1yb3RhdGVkLW91dC0xMjM0NTY3ODkw")

# The shape of PagerDuty's documented v3 example (developer-docs webhooks/01-Overview.md),
# as an acknowledge of an incident our Events API trigger opened with dedup_key INC-42.
EVENT: dict[str, Any] = {
    "event": {
        "id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
        "event_type": "incident.acknowledged",
        "resource_type": "incident",
        "occurred_at": "2020-10-02T18:45:22.169Z",
        "agent": {
            "html_url": "https://acme.pagerduty.com/users/PLH1HKV",
            "id": "PLH1HKV",
            "self": "https://api.pagerduty.com/users/PLH1HKV",
            "summary": "Tenex Engineer",
            "type": "user_reference",
        },
        "client": {"name": "PagerDuty"},
        "data": {
            "id": "PGR0VU2",
            "type": "incident",
            "self": "https://api.pagerduty.com/incidents/PGR0VU2",
            "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
            "number": 2,
            "status": "acknowledged",
            "incident_key": "INC-42",
            "created_at": "2020-04-09T15:16:27Z",
            "title": "SEV2 INC-42: checkout 5xx above 2% [team payments]",
            "service": {
                "html_url": "https://acme.pagerduty.com/services/PF9KMXH",
                "id": "PF9KMXH",
                "self": "https://api.pagerduty.com/services/PF9KMXH",
                "summary": "API Service",
                "type": "service_reference",
            },
            "urgency": "high",
            "resolve_reason": None,
        },
    }
}


_DELETE = object()


def body_of(**changes: Any) -> bytes:
    """EVENT with `changes` applied under `event`; `data__status` reaches into `data`, and
    the value `_DELETE` removes the key."""
    document = copy.deepcopy(EVENT)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = document["event"]
        for name in parents:
            target = target[name]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return json.dumps(document).encode()


BODY = json.dumps(EVENT).encode()


def sign(secret: Secret, body: bytes) -> str:
    # Computed independently of the code under test, as PagerDuty's docs describe it.
    return "v1=" + hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "secrets", "valid"),
    [
        # One signature made with the subscription's secret.
        pytest.param(sign(SECRET, BODY), [SECRET], True, id="valid"),
        # During rotation PagerDuty signs with both secrets, comma-separated; either of ours
        # may be the one that matches, in either position.
        pytest.param(
            f"{sign(OLD_SECRET, BODY)},{sign(SECRET, BODY)}", [SECRET], True, id="rotated-new"
        ),
        pytest.param(
            f"{sign(OLD_SECRET, BODY)},{sign(SECRET, BODY)}", [OLD_SECRET], True, id="rotated-old"
        ),
        # We may hold both secrets while PagerDuty already signs with only the new one.
        pytest.param(sign(SECRET, BODY), [OLD_SECRET, SECRET], True, id="we-hold-two"),
        # Whitespace around the entries is not part of them; hex is case-insensitive.
        pytest.param(
            f" {sign(OLD_SECRET, BODY)} , v1={sign(SECRET, BODY)[3:].upper()} ",
            [SECRET],
            True,
            id="spaces-upper",
        ),
        # Signed with a secret we do not hold.
        pytest.param(sign(OLD_SECRET, BODY), [SECRET], False, id="wrong-secret"),
        # A signature of another body.
        pytest.param(sign(SECRET, BODY + b" "), [SECRET], False, id="other-body"),
        # Only v1 signatures count: the right digest under another version is ignored.
        pytest.param("v0=" + sign(SECRET, BODY)[3:], [SECRET], False, id="other-version"),
        # No header at all, or an empty one.
        pytest.param(None, [SECRET], False, id="missing"),
        pytest.param("", [SECRET], False, id="empty"),
        # "v1=" with nothing after it is not a signature of anything.
        pytest.param("v1=", [SECRET], False, id="empty-signature"),
        # Non-ASCII junk is a mismatch, not a crash.
        pytest.param("v1=" + "\u00e9" * 64, [SECRET], False, id="non-ascii"),
        # No secrets configured: nothing can verify.
        pytest.param(sign(SECRET, BODY), [], False, id="no-secrets"),
        # An empty secret (an unset variable) must not turn into a key anyone can use.
        pytest.param(sign(Secret(""), BODY), [Secret("")], False, id="empty-secret"),
    ],
)
def test_verify_signature(header: str | None, secrets: list[Secret], valid: bool) -> None:
    assert verify_signature(BODY, header, secrets) is valid


def test_signature_covers_the_raw_bytes_not_the_json() -> None:
    # Re-serialising the parsed body changes the bytes: verify before parsing.
    reformatted = json.dumps(json.loads(BODY), indent=2).encode()
    assert not verify_signature(reformatted, sign(SECRET, BODY), [SECRET])


# --- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Acknowledged in PagerDuty: acknowledge our incident, crediting the person.
        pytest.param(
            BODY, PagerDutyAction("INC-42", "acknowledge", "Tenex Engineer"), id="acknowledged"
        ),
        # Resolved in PagerDuty: resolve ours.
        pytest.param(
            body_of(event_type="incident.resolved", data__status="resolved"),
            PagerDutyAction("INC-42", "resolve", "Tenex Engineer"),
            id="resolved",
        ),
        # No agent (PagerDuty itself acted, e.g. an auto-resolve timeout).
        pytest.param(
            body_of(agent=None),
            PagerDutyAction("INC-42", "acknowledge", "PagerDuty"),
            id="no-agent",
        ),
        pytest.param(
            body_of(agent__summary=_DELETE),
            PagerDutyAction("INC-42", "acknowledge", "PagerDuty"),
            id="agent-without-summary",
        ),
        # The actor reaches logs and the timeline: control characters become spaces.
        pytest.param(
            body_of(agent__summary="Mallory\r\nlevel=info evil=1"),
            PagerDutyAction("INC-42", "acknowledge", "Mallory level=info evil=1"),
            id="actor-sanitised",
        ),
        # ... and it stays short.
        pytest.param(
            body_of(agent__summary="a" * 500),
            PagerDutyAction("INC-42", "acknowledge", "a" * 99 + "\u2026"),
            id="actor-capped",
        ),
        # Other incident changes are not ours to mirror.
        pytest.param(body_of(event_type="incident.triggered"), None, id="triggered"),
        pytest.param(body_of(event_type="incident.unacknowledged"), None, id="unacknowledged"),
        pytest.param(body_of(event_type="incident.annotated"), None, id="annotated"),
        # The test event PagerDuty sends when a subscription is created or tested.
        pytest.param(
            json.dumps({"event": {"event_type": "pagey.ping", "data": None}}).encode(),
            None,
            id="ping",
        ),
        # No incident key (PagerDuty keeps none for some incidents): nothing to match.
        pytest.param(body_of(data__incident_key=None), None, id="null-key"),
        pytest.param(body_of(data__incident_key=_DELETE), None, id="absent-key"),
        pytest.param(body_of(data__incident_key=""), None, id="empty-key"),
    ],
)
def test_parse_event(body: bytes, expected: PagerDutyAction | None) -> None:
    assert parse_event(body) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # Not JSON, or not the UTF-8 PagerDuty sends.
        pytest.param(b"{not json", "", id="not-json"),
        pytest.param(b"\xff\xfe", "", id="not-utf8"),
        # JSON, but not an object.
        pytest.param(b"[]", "", id="array"),
        # Not a v3 event: v2 webhooks carried a "messages" list instead.
        pytest.param(b'{"messages": []}', "event", id="v2-webhook"),
        pytest.param(body_of(event_type=_DELETE), "event.event_type", id="no-event-type"),
        pytest.param(body_of(event_type=7), "event.event_type", id="event-type-number"),
        # An acknowledge without incident data cannot be applied.
        pytest.param(body_of(data=None), "event.data", id="no-data"),
        pytest.param(body_of(data__incident_key=42), "event.data.incident_key", id="key-number"),
        pytest.param(
            body_of(data__incident_key="k" * 256), "event.data.incident_key", id="key-too-long"
        ),
        pytest.param(body_of(agent="Tenex"), "event.agent", id="agent-string"),
        pytest.param(body_of(agent__summary=["x"]), "event.agent.summary", id="summary-list"),
    ],
)
def test_malformed_bodies_raise_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_event(body)
    assert info.value.field == field
