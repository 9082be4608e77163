"""The Opsgenie Alert API channel against a real local HTTP receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import router
from router.channelschema import OpsgenieChannelConfig
from router.errors import ConfigError
from router.notify.base import EVENTS, Channel, Delivery, Message, Outcome
from router.notify.opsgenie import (
    MAX_DESCRIPTION_CHARS,
    MAX_MESSAGE_CHARS,
    OpsgenieChannel,
)
from router.notify.render import Renderer
from router.secrets import Secret
from router.severity import Severity
from tests.support.payloads import shared

from .conftest import Receiver, Reply

NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
API_KEY = Secret("eb243592-faa2-4ba2-a551q-1afdf565c889")

ALERTS = [
    {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "pod": "checkout-1"},
        "fingerprint": "a1",
    },
    {
        "status": "resolved",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "pod": "checkout-2"},
        "fingerprint": "a2",
    },
]
# The incident document as router.messages.build_message puts it in Message.payload.
INCIDENT: dict[str, Any] = {
    "id": "INC-42",
    "title": "checkout 5xx above 2%",
    "severity": "SEV2",
    "state": "triggered",
    "team": "payments",
    "rule": "checkout-errors",
    "opened_at": "2024-12-31T23:58:00+00:00",
    "alerts_firing": 1,
    "summary": "",
    "runbook": "https://runbooks.example.com/checkout",
    "alerts": ALERTS,
}
LINKS = {
    "incident": "https://sevrouter.example.com/incidents/INC-42",
    "ack": "https://sevrouter.example.com/a/INC-42?sig=ack-signature",
    "resolve": "https://sevrouter.example.com/r/INC-42?sig=resolve-signature",
}
TEXT = "SEV2 incident INC-42 for team payments: triggered\nOpened 2024-12-31 23:58:00 UTC"
RESPONDERS = [
    {"type": "team", "name": "payments-oncall"},
    {"type": "user", "name": "trinity@example.com"},
    {"type": "escalation", "name": "Payments Escalation"},
    {"type": "schedule", "name": "Payments Primary"},
]


def message(event: str = "incident.opened", **changes: Any) -> Message:
    fields: dict[str, Any] = {
        "idempotency_key": f"INC-42:1:payments:opsgenie:{event}",
        "event": event,
        "title": "[SEV2] INC-42 checkout 5xx above 2% (triggered)",
        "text": TEXT,
        "payload": INCIDENT,
        "incident": "INC-42",
        "severity": "SEV2",
        "links": LINKS,
    }
    return Message(**(fields | changes))


def config(url: str, **settings: Any) -> OpsgenieChannelConfig:
    return OpsgenieChannelConfig.model_validate(
        {
            "type": "opsgenie",
            "name": "og-payments",
            "api_key": {"env": "OPSGENIE_KEY"},
            "url": url,
            "responders": RESPONDERS,
        }
        | settings
    )


def channel(
    url: str,
    client: httpx.Client,
    *,
    api_key: Secret = API_KEY,
    renderer: Renderer | None = None,
    **settings: Any,
) -> OpsgenieChannel:
    return OpsgenieChannel(
        config(url, **settings), api_key=api_key, client=client, renderer=renderer or Renderer()
    )


def sent(receiver: Receiver) -> dict[str, Any]:
    [request] = receiver.requests
    body: dict[str, Any] = json.loads(request.body)
    return body


# Written out by hand: this is what Opsgenie receives for INC-42 opening.
EXPECTED_CREATE: dict[str, Any] = {
    "message": "SEV2 INC-42: checkout 5xx above 2%",
    "alias": "INC-42",
    "description": (
        TEXT + "\n\n"
        "Alerts (1 firing):\n"
        '- [firing] alertname="HighErrorRate", pod="checkout-1", service="checkout"\n'
        '- [resolved] alertname="HighErrorRate", pod="checkout-2", service="checkout"\n'
        "\n"
        f"Incident: {LINKS['incident']}\n"
        f"Acknowledge: {LINKS['ack']}\n"
        f"Resolve: {LINKS['resolve']}"
    ),
    "responders": [
        {"name": "payments-oncall", "type": "team"},
        # Opsgenie addresses users by username, everything else by name.
        {"username": "trinity@example.com", "type": "user"},
        {"name": "Payments Escalation", "type": "escalation"},
        {"name": "Payments Primary", "type": "schedule"},
    ],
    "tags": ["SEV2", "payments"],
    "details": {
        "incident": "INC-42",
        "severity": "SEV2",
        "state": "triggered",
        "team": "payments",
        "rule": "checkout-errors",
        "alerts_firing": "1",
        "opened_at": "2024-12-31T23:58:00+00:00",
        "runbook": "https://runbooks.example.com/checkout",
        "incident_url": LINKS["incident"],
    },
    "entity": "checkout",
    "source": "sevrouter",
    "priority": "P2",
}
ACCEPTED = Reply(202, shared("opsgenie_response_202.json"), (("Content-Type", "application/json"),))


# --- what goes on the wire -------------------------------------------------------------------


def test_create_exact_body_and_headers(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(ACCEPTED)

    delivery = channel(receiver.url, client).send(message(), now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "HTTP 202", status_code=202)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/v2/alerts")
    assert json.loads(request.body) == EXPECTED_CREATE
    assert request.headers["authorization"] == f"GenieKey {API_KEY.reveal()}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"sevrouter/{router.__version__}"


def test_create_uses_only_documented_fields() -> None:
    # Field names checked against Opsgenie's sample create request (shared/payloads).
    documented = json.loads(shared("opsgenie_create_alert.json"))
    assert set(EXPECTED_CREATE) - {"source"} <= set(documented)  # source: FORMATS.md 3.2
    documented_responders = [set(r) for r in documented["responders"]]
    for responder in EXPECTED_CREATE["responders"]:
        assert set(responder) in documented_responders
    assert all(isinstance(value, str) for value in EXPECTED_CREATE["details"].values())


@pytest.mark.parametrize(
    ("event", "path"),
    [
        # Everything that (re)opens or worsens the incident creates the alert; Opsgenie
        # de-duplicates on the alias while it is open.
        pytest.param("incident.opened", "/v2/alerts", id="opened"),
        pytest.param("incident.severity_raised", "/v2/alerts", id="severity-raised"),
        pytest.param("incident.reopened", "/v2/alerts", id="reopened"),
        pytest.param("incident.escalated", "/v2/alerts", id="escalated"),
        # Acknowledge, close and note address the alert by its alias.
        pytest.param(
            "incident.acknowledged",
            "/v2/alerts/INC-42/acknowledge?identifierType=alias",
            id="acknowledged",
        ),
        pytest.param(
            "incident.mitigated", "/v2/alerts/INC-42/close?identifierType=alias", id="mitigated"
        ),
        pytest.param(
            "incident.resolved", "/v2/alerts/INC-42/close?identifierType=alias", id="resolved"
        ),
        pytest.param(
            "incident.notify", "/v2/alerts/INC-42/notes?identifierType=alias", id="notify"
        ),
        pytest.param(
            "incident.reminder", "/v2/alerts/INC-42/notes?identifierType=alias", id="reminder"
        ),
    ],
)
def test_event_endpoints(receiver: Receiver, client: httpx.Client, event: str, path: str) -> None:
    receiver.script(ACCEPTED)

    delivery = channel(receiver.url, client).send(message(event), now=NOW)

    assert delivery.outcome is Outcome.DELIVERED
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", path)
    assert request.headers["authorization"] == f"GenieKey {API_KEY.reveal()}"
    if path != "/v2/alerts":
        # The documented action body (shared/payloads/opsgenie_close_alert.json).
        assert set(json.loads(request.body)) == set(json.loads(shared("opsgenie_close_alert.json")))
        assert json.loads(request.body) == {
            "user": "sevrouter",
            "source": "sevrouter",
            "note": TEXT,
        }


def test_every_event_is_handled(receiver: Receiver, client: httpx.Client) -> None:
    # A new entry in EVENTS must be given an Opsgenie meaning, not fall to "no action".
    og = channel(receiver.url, client)
    for event in EVENTS:
        assert og.send(message(event), now=NOW).outcome is Outcome.DELIVERED
    assert len(receiver.requests) == len(EVENTS)


def test_unknown_event_is_permanent(receiver: Receiver, client: httpx.Client) -> None:
    delivery = channel(receiver.url, client).send(message("incident.renamed"), now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, "Opsgenie has no action for incident.renamed")
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("alias", "path"),
    [
        # "/" would address another resource and "?" start the query: both are encoded.
        pytest.param("INC/42?x", "/v2/alerts/INC%2F42%3Fx/close", id="slash-question"),
        # So are spaces, "%" and non-ASCII.
        pytest.param("INC 42%", "/v2/alerts/INC%2042%25/close", id="space-percent"),
        pytest.param("INC-\u00e9", "/v2/alerts/INC-%C3%A9/close", id="non-ascii"),
    ],
)
def test_alias_is_url_encoded_in_the_path(
    receiver: Receiver, client: httpx.Client, alias: str, path: str
) -> None:
    channel(receiver.url, client).send(message("incident.resolved", incident=alias), now=NOW)

    [request] = receiver.requests
    assert request.path == path + "?identifierType=alias"


def test_base_url_with_trailing_slash(receiver: Receiver, client: httpx.Client) -> None:
    channel(receiver.url + "/", client).send(message(), now=NOW)

    assert receiver.requests[0].path == "/v2/alerts"


def test_alias_falls_back_to_the_payload_id(receiver: Receiver, client: httpx.Client) -> None:
    channel(receiver.url, client).send(message(incident=""), now=NOW)

    assert sent(receiver)["alias"] == "INC-42"


def test_no_incident_id_is_permanent(receiver: Receiver, client: httpx.Client) -> None:
    # Without an alias the alert could never be acknowledged or closed from here.
    delivery = channel(receiver.url, client).send(
        message(incident="", payload={"title": "?"}), now=NOW
    )

    assert delivery.outcome is Outcome.PERMANENT
    assert receiver.requests == []


# --- payload contents ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority_map", "severity", "expected"),
    [
        # The default map: SEV1..SEV4 are P1..P4.
        pytest.param(None, "SEV1", "P1", id="default-sev1"),
        pytest.param(None, "SEV2", "P2", id="default-sev2"),
        pytest.param(None, "SEV3", "P3", id="default-sev3"),
        pytest.param(None, "SEV4", "P4", id="default-sev4"),
        # A configured map wins.
        pytest.param({"SEV4": "P5"}, "SEV4", "P5", id="configured"),
        # A severity the map leaves out gets Opsgenie's own default, P3.
        pytest.param({"SEV1": "P1"}, "SEV2", "P3", id="unmapped"),
        pytest.param(None, "critical", "P3", id="unknown"),
    ],
)
def test_priority_mapping(
    receiver: Receiver,
    client: httpx.Client,
    priority_map: dict[str, str] | None,
    severity: str,
    expected: str,
) -> None:
    settings: dict[str, Any] = {} if priority_map is None else {"priority_map": priority_map}

    channel(receiver.url, client, **settings).send(message(severity=severity), now=NOW)

    assert sent(receiver)["priority"] == expected


def test_default_priority_map_covers_every_severity() -> None:
    assert set(config("https://api.opsgenie.com").priority_map) == set(Severity)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # At 130 characters nothing is cut.
        pytest.param("x" * (130 - len("SEV2 INC-42: ")), None, id="at-limit"),
        # Beyond, the message is cut to 130 characters, an ellipsis marking the cut.
        pytest.param("y" * 500, "SEV2 INC-42: " + "y" * 116 + "\u2026", id="too-long"),
        # One line: newlines and runs of spaces become one space.
        pytest.param("disk\nfull  on db-1", "SEV2 INC-42: disk full on db-1", id="one-line"),
    ],
)
def test_message_truncation(
    receiver: Receiver, client: httpx.Client, title: str, expected: str | None
) -> None:
    channel(receiver.url, client).send(message(payload=INCIDENT | {"title": title}), now=NOW)

    text = sent(receiver)["message"]
    assert len(text) <= MAX_MESSAGE_CHARS
    assert text == (expected or f"SEV2 INC-42: {title}")


def test_description_truncation(receiver: Receiver, client: httpx.Client) -> None:
    channel(receiver.url, client).send(message(text="z" * 40_000), now=NOW)

    description = sent(receiver)["description"]
    assert len(description) == MAX_DESCRIPTION_CHARS
    assert description.endswith("z\u2026")


def test_note_truncation(receiver: Receiver, client: httpx.Client) -> None:
    channel(receiver.url, client).send(message("incident.notify", text="n" * 30_000), now=NOW)

    note = sent(receiver)["note"]
    assert len(note) == 25_000
    assert note.endswith("\u2026")


@pytest.mark.parametrize(
    ("recipient", "expected_extra"),
    [
        # Nobody in particular: the configured responders only.
        pytest.param(None, [], id="no-recipient"),
        # A paged person is added as a user responder ...
        pytest.param(
            "neo@example.com", [{"username": "neo@example.com", "type": "user"}], id="person"
        ),
        # ... once, even when already configured.
        pytest.param("trinity@example.com", [], id="already-a-responder"),
    ],
)
def test_recipient_joins_the_responders(
    receiver: Receiver,
    client: httpx.Client,
    recipient: str | None,
    expected_extra: list[dict[str, str]],
) -> None:
    channel(receiver.url, client).send(message(recipient=recipient), now=NOW)

    assert sent(receiver)["responders"] == EXPECTED_CREATE["responders"] + expected_extra


def test_minimal_incident(receiver: Receiver, client: httpx.Client) -> None:
    # No team, labels or links: no empty tags, details or entity are sent.
    bare = message(payload={"id": "INC-7", "title": "db down"}, incident="INC-7", links={})

    channel(receiver.url, client, responders=[]).send(bare, now=NOW)

    assert sent(receiver) == {
        "message": "SEV2 INC-7: db down",
        "alias": "INC-7",
        "description": TEXT,
        "responders": [],
        "tags": ["SEV2"],
        "details": {"incident": "INC-7", "severity": "SEV2", "alerts_firing": "0"},
        "source": "sevrouter",
        "priority": "P2",
    }


def test_entity_falls_back_to_the_team(receiver: Receiver, client: httpx.Client) -> None:
    # The alerts name different services: none of them is the incident's domain.
    alerts = [{"labels": {"service": "a"}}, {"labels": {"service": "b"}}]

    channel(receiver.url, client).send(message(payload=INCIDENT | {"alerts": alerts}), now=NOW)

    assert sent(receiver)["entity"] == "payments"


def test_long_tags_are_cut_to_50_characters(receiver: Receiver, client: httpx.Client) -> None:
    channel(receiver.url, client).send(message(payload=INCIDENT | {"team": "t" * 80}), now=NOW)

    assert sent(receiver)["tags"] == ["SEV2", "t" * 49 + "\u2026"]


def test_templates_can_be_overridden(
    receiver: Receiver, client: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "opsgenie.message.j2").write_text("{{ incident.team }}: {{ incident.title }}")
    (tmp_path / "opsgenie.description.j2").write_text("See {{ links.incident }}")

    channel(receiver.url, client, renderer=Renderer(tmp_path)).send(message(), now=NOW)

    body = sent(receiver)
    assert (body["message"], body["description"]) == (
        "payments: checkout 5xx above 2%",
        f"See {LINKS['incident']}",
    )


def test_broken_templates_fall_back_to_title_and_text(
    receiver: Receiver, client: httpx.Client, tmp_path: Path
) -> None:
    # A team's typo must not stop the page.
    (tmp_path / "opsgenie.message.j2").write_text("{{ incident.no_such_field }}")
    (tmp_path / "opsgenie.description.j2").write_text("{% if %}")

    delivery = channel(receiver.url, client, renderer=Renderer(tmp_path)).send(message(), now=NOW)

    assert delivery.outcome is Outcome.DELIVERED
    body = sent(receiver)
    assert (body["message"], body["description"]) == (
        "[SEV2] INC-42 checkout 5xx above 2% (triggered)",
        TEXT,
    )


# --- replayed answers ------------------------------------------------------------------------

JSON = (("Content-Type", "application/json"),)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # 202: accepted for asynchronous processing, which is all the API ever says.
        pytest.param(ACCEPTED, Delivery(Outcome.DELIVERED, "HTTP 202", status_code=202), id="202"),
        # 422 (semantic errors): permanent, Opsgenie's message and per-field errors quoted.
        pytest.param(
            Reply(
                422,
                b'{"message":"Request body is not processable. Please check the errors.",'
                b'"errors":{"message":"Message can not be empty."},"took":0.001,'
                b'"requestId":"9b8c8f5e-6f44-4c8f-b2c6-0f4b9b4f6d1e"}',
                JSON,
            ),
            Delivery(
                Outcome.PERMANENT,
                "HTTP 422: Request body is not processable. Please check the errors. "
                "(message: Message can not be empty.)",
                status_code=422,
            ),
            id="422",
        ),
        # 401: the key is invalid or its integration disabled.
        pytest.param(
            Reply(
                401,
                b'{"message":"Could not authenticate","took":0.0,'
                b'"requestId":"2b6b2a2a-3c9d-4d1c-9f7e-8f1c6a1b5e7d"}',
                JSON,
            ),
            Delivery(Outcome.PERMANENT, "HTTP 401: Could not authenticate", status_code=401),
            id="401",
        ),
        # 403 with the internal code: a key that is not an API integration's (as captured in
        # louislam/uptime-kuma#3613).
        pytest.param(
            Reply(
                403,
                b'{"code":40301,"message":"To perform this action, use an API key from an API '
                b'integration.","took":0.001,"requestId":"230e4db1-7212-4331-a853-0852d9451476"}',
                JSON,
            ),
            Delivery(
                Outcome.PERMANENT,
                "HTTP 403: To perform this action, use an API key from an API integration.",
                status_code=403,
            ),
            id="403-not-an-api-integration",
        ),
        # 429: throttled, retried; Retry-After honoured when sent ...
        pytest.param(
            Reply(429, b"", (("Retry-After", "12"),)),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429, retry_after=12.0),
            id="429-retry-after",
        ),
        # ... our own backoff otherwise.
        pytest.param(
            Reply(429, b'{"message":"Too many requests","took":0.0}', JSON),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429),
            id="429",
        ),
        # 5xx: Opsgenie's trouble, retried.
        pytest.param(
            Reply(500, b'{"message":"Internal Server Error","took":0.0}', JSON),
            Delivery(Outcome.RETRY, "HTTP 500", status_code=500),
            id="500",
        ),
        pytest.param(
            Reply(503, b"<html>Service Unavailable</html>"),
            Delivery(Outcome.RETRY, "HTTP 503", status_code=503),
            id="503",
        ),
        # A body that is not Opsgenie's JSON is quoted as it is.
        pytest.param(
            Reply(404, b"<html>Not Found</html>"),
            Delivery(Outcome.PERMANENT, "HTTP 404: <html>Not Found</html>", status_code=404),
            id="404-html",
        ),
        # A redirect is not followed: the endpoint moved, which is a configuration change.
        pytest.param(
            Reply(302, b"", (("Location", "/elsewhere"),)),
            Delivery(Outcome.PERMANENT, "HTTP 302", status_code=302),
            id="302-not-followed",
        ),
    ],
)
def test_classifies_real_answers(
    receiver: Receiver, client: httpx.Client, reply: Reply, expected: Delivery
) -> None:
    receiver.script(reply)

    assert channel(receiver.url, client).send(message(), now=NOW) == expected
    assert len(receiver.requests) == 1


def test_api_key_echoed_in_an_error_is_masked(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(
        Reply(401, f'{{"message":"Key {API_KEY.reveal()} is disabled","took":0.0}}'.encode(), JSON)
    )

    delivery = channel(receiver.url, client).send(message(), now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, "HTTP 401: Key ********** is disabled", 401)


def test_connection_refused_is_retried(closed_port_url: str, client: httpx.Client) -> None:
    delivery = channel(closed_port_url, client).send(message("incident.resolved"), now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "connection refused")


# --- configuration and secrecy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "api_key", "timeout", "problem"),
    [
        # Only http(s) can be posted to.
        pytest.param("ftp://api.opsgenie.com", API_KEY, 10.0, "url", id="ftp"),
        # The base URL: paths are appended, a query would end up in the middle.
        pytest.param("https://api.opsgenie.com?x=1", API_KEY, 10.0, "url", id="query"),
        # A zero timeout would fail every send.
        pytest.param("https://api.opsgenie.com", API_KEY, 0.0, "timeout", id="zero-timeout"),
        # The key goes into a header: empty, CR/LF or non-ASCII are refused up front.
        pytest.param("https://api.opsgenie.com", Secret(""), 10.0, "api_key", id="empty-key"),
        pytest.param(
            "https://api.opsgenie.com", Secret("k\r\nX-Evil: 1"), 10.0, "api_key", id="crlf-key"
        ),
        pytest.param("https://api.opsgenie.com", Secret("cl\u00e9"), 10.0, "api_key", id="utf8"),
    ],
)
def test_unusable_settings_fail_at_construction(
    client: httpx.Client, url: str, api_key: Secret, timeout: float, problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"og-payments.*{problem}") as info:
        channel(url, client, api_key=api_key, timeout=timeout)
    # The message names the problem, never the key.
    assert all(
        api_key.reveal() not in problem for problem in info.value.problems if api_key.reveal()
    )


def test_repr_hides_the_api_key(client: httpx.Client) -> None:
    og = channel("https://api.eu.opsgenie.com", client)

    assert repr(og) == "OpsgenieChannel(name='og-payments', url='https://api.eu.opsgenie.com')"


def test_satisfies_channel_protocol(client: httpx.Client) -> None:
    # The annotation is the check (mypy --strict); the assert pins the runtime values.
    og: Channel = channel("https://api.opsgenie.com", client)
    assert (og.name, og.kind) == ("og-payments", "opsgenie")
