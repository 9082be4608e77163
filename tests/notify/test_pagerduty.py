"""The PagerDuty Events API v2 channel against a real local HTTP receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import router
from router.channelschema import PagerDutyChannelConfig
from router.errors import ConfigError
from router.notify.base import EVENTS, Channel, Delivery, Message, Outcome
from router.notify.pagerduty import MAX_EVENT_BYTES, MAX_SUMMARY_CHARS, PagerDutyChannel
from router.notify.render import Renderer
from router.secrets import Secret
from router.severity import Severity
from tests.support.payloads import shared

from .conftest import Receiver, Reply

NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
ROUTING_KEY = Secret("R0uT1nGkEy0123456789abcdefABCDEF")  # 32 characters, as PagerDuty's are
PATH = "/v2/enqueue"

ALERTS = [
    {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "pod": "checkout-1"},
        "annotations": {"summary": "5xx above 2%"},
        "starts_at": "2025-01-01T00:00:00+00:00",
        "ends_at": None,
        "fingerprint": "a1",
        "source": "alertmanager",
        "integration": "prod",
    },
    {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "pod": "checkout-2"},
        "annotations": {"summary": "5xx above 2%"},
        "starts_at": "2025-01-01T00:00:10+00:00",
        "ends_at": None,
        "fingerprint": "a2",
        "source": "alertmanager",
        "integration": "prod",
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
    "updated_at": "2024-12-31T23:59:00+00:00",
    "mitigated_at": None,
    "alerts_firing": 2,
    "reopen_count": 0,
    "summary": "Checkout is failing",
    "runbook": "https://runbooks.example.com/checkout",
    "group_key": '{}:{alertname="HighErrorRate"}',
    "alerts": ALERTS,
    "page": {"kind": "trigger", "step": 1, "channel": "pd-payments", "target": "payments"},
}
LINKS = {
    "incident": "https://sevrouter.example.com/incidents/INC-42",
    "ack": "https://sevrouter.example.com/a/INC-42?sig=ack-signature",
    "resolve": "https://sevrouter.example.com/r/INC-42?sig=resolve-signature",
}


def message(event: str = "incident.opened", **changes: Any) -> Message:
    fields: dict[str, Any] = {
        "idempotency_key": f"INC-42:1:payments:pd-payments:{event}",
        "event": event,
        "title": "[SEV2] INC-42 checkout 5xx above 2% (triggered)",
        "text": "SEV2 incident INC-42 for team payments: triggered",
        "payload": INCIDENT,
        "incident": "INC-42",
        "severity": "SEV2",
        "links": LINKS,
    }
    return Message(**(fields | changes))


def config(url: str, **settings: Any) -> PagerDutyChannelConfig:
    return PagerDutyChannelConfig.model_validate(
        {"type": "pagerduty", "name": "pd-payments", "routing_key": {"env": "PD_KEY"}, "url": url}
        | settings
    )


def channel(
    url: str,
    client: httpx.Client,
    *,
    routing_key: Secret = ROUTING_KEY,
    renderer: Renderer | None = None,
    **settings: Any,
) -> PagerDutyChannel:
    return PagerDutyChannel(
        config(url, **settings),
        routing_key=routing_key,
        client=client,
        renderer=renderer or Renderer(),
    )


def sent(receiver: Receiver) -> dict[str, Any]:
    [request] = receiver.requests
    body: dict[str, Any] = json.loads(request.body)
    return body


# Written out by hand: this is what PagerDuty receives for INC-42 opening.
EXPECTED_TRIGGER: dict[str, Any] = {
    "routing_key": ROUTING_KEY.reveal(),
    "dedup_key": "INC-42",
    "event_action": "trigger",
    "payload": {
        "summary": "SEV2 INC-42: checkout 5xx above 2% [team payments]",
        "source": "payments",
        "severity": "critical",
        "timestamp": "2024-12-31T23:58:00+00:00",
        "component": "checkout",
        "class": "HighErrorRate",
        "custom_details": {
            "incident": "INC-42",
            "state": "triggered",
            "team": "payments",
            "rule": "checkout-errors",
            "alerts_firing": 2,
            "alerts": [ALERTS[0]["labels"], ALERTS[1]["labels"]],
        },
    },
    "client": "sevrouter",
    "client_url": "https://sevrouter.example.com/incidents/INC-42",
    "links": [
        {"href": LINKS["incident"], "text": "INC-42 in sevrouter"},
        {"href": LINKS["ack"], "text": "Acknowledge INC-42"},
        {"href": LINKS["resolve"], "text": "Resolve INC-42"},
        {"href": "https://runbooks.example.com/checkout", "text": "Runbook"},
    ],
}


# --- what goes on the wire -------------------------------------------------------------------


def test_trigger_exact_body_and_headers(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(202, shared("pagerduty_events_v2_response_202.json")))

    delivery = channel(receiver.url + PATH, client).send(message(), now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "HTTP 202", status_code=202)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", PATH)
    assert json.loads(request.body) == EXPECTED_TRIGGER
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"sevrouter/{router.__version__}"
    # The routing key in the body is the only credential: no auth header, nothing else added.
    assert set(request.headers) == {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "content-type",
        "content-length",
        "user-agent",
    }


def test_trigger_uses_only_fields_of_the_documented_event() -> None:
    # Field names checked against PagerDuty's own examples (shared/payloads, FORMATS.md 3.1);
    # a typo would be silently dropped by PagerDuty rather than rejected.
    documented = json.loads(shared("pagerduty_events_v2_trigger.json"))
    assert set(EXPECTED_TRIGGER) <= set(documented)
    assert set(EXPECTED_TRIGGER["payload"]) <= set(documented["payload"])
    for link in EXPECTED_TRIGGER["links"]:
        assert set(link) == set(documented["links"][0])


@pytest.mark.parametrize(
    ("event", "action"),
    [
        # Everything that (re)opens or worsens the incident (re)triggers the one alert ...
        pytest.param("incident.opened", "trigger", id="opened"),
        pytest.param("incident.severity_raised", "trigger", id="severity-raised"),
        pytest.param("incident.reopened", "trigger", id="reopened"),
        pytest.param("incident.escalated", "trigger", id="escalated"),
        # ... an acknowledge here acknowledges it there ...
        pytest.param("incident.acknowledged", "acknowledge", id="acknowledged"),
        # ... and both ways of ending the incident resolve it.
        pytest.param("incident.mitigated", "resolve", id="mitigated"),
        pytest.param("incident.resolved", "resolve", id="resolved"),
    ],
)
def test_event_actions(receiver: Receiver, client: httpx.Client, event: str, action: str) -> None:
    channel(receiver.url + PATH, client).send(message(event), now=NOW)

    body = sent(receiver)
    assert (body["dedup_key"], body["event_action"]) == ("INC-42", action)
    if action != "trigger":
        # Exactly the documented acknowledge/resolve envelope (shared/payloads).
        documented = json.loads(shared(f"pagerduty_events_v2_{action}.json"))
        assert set(body) == set(documented)
        assert body == {
            "routing_key": ROUTING_KEY.reveal(),
            "dedup_key": "INC-42",
            "event_action": action,
        }


@pytest.mark.parametrize(
    "event",
    [
        # Events v2 has no notes: these are informational only and must not re-trigger.
        pytest.param("incident.notify", id="notify"),
        pytest.param("incident.reminder", id="reminder"),
    ],
)
def test_informational_events_send_nothing(
    receiver: Receiver, client: httpx.Client, event: str
) -> None:
    delivery = channel(receiver.url + PATH, client).send(message(event), now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, f"nothing to send to PagerDuty for {event}")
    assert receiver.requests == []


def test_every_event_is_handled(receiver: Receiver, client: httpx.Client) -> None:
    # A new entry in EVENTS must be given a PagerDuty meaning, not fall to "no action".
    pd = channel(receiver.url + PATH, client)
    for event in EVENTS:
        assert "no action" not in pd.send(message(event), now=NOW).detail


def test_unknown_event_is_permanent(receiver: Receiver, client: httpx.Client) -> None:
    delivery = channel(receiver.url + PATH, client).send(message("incident.renamed"), now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, "PagerDuty has no action for incident.renamed")
    assert receiver.requests == []


def test_dedup_key_falls_back_to_the_payload_id(receiver: Receiver, client: httpx.Client) -> None:
    # Message.incident is optional; the incident document always has its id.
    channel(receiver.url + PATH, client).send(message(incident=""), now=NOW)

    assert sent(receiver)["dedup_key"] == "INC-42"


def test_no_incident_id_is_permanent(receiver: Receiver, client: httpx.Client) -> None:
    # Without a dedup_key PagerDuty would make one up, and we could never resolve that alert.
    anonymous = message(incident="", payload={"title": "?"})

    delivery = channel(receiver.url + PATH, client).send(anonymous, now=NOW)

    assert delivery.outcome is Outcome.PERMANENT
    assert receiver.requests == []


def test_naive_now_is_refused(receiver: Receiver, client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        channel(receiver.url + PATH, client).send(message(), now=datetime(2025, 1, 1))
    assert receiver.requests == []


# --- payload contents ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity_map", "severity", "expected"),
    [
        # The default map: SEV1 and SEV2 page as critical, SEV3 warns, SEV4 informs.
        pytest.param(None, "SEV1", "critical", id="default-sev1"),
        pytest.param(None, "SEV2", "critical", id="default-sev2"),
        pytest.param(None, "SEV3", "warning", id="default-sev3"),
        pytest.param(None, "SEV4", "info", id="default-sev4"),
        # A configured map wins.
        pytest.param({"SEV2": "error"}, "SEV2", "error", id="configured"),
        # A severity the configured map leaves out still pages, as PagerDuty's middle value.
        pytest.param({"SEV1": "critical"}, "SEV3", "error", id="unmapped"),
        # So does a message whose severity is not ours at all.
        pytest.param(None, "P1", "error", id="unknown"),
    ],
)
def test_severity_mapping(
    receiver: Receiver,
    client: httpx.Client,
    severity_map: dict[str, str] | None,
    severity: str,
    expected: str,
) -> None:
    settings: dict[str, Any] = {} if severity_map is None else {"severity_map": severity_map}

    channel(receiver.url + PATH, client, **settings).send(message(severity=severity), now=NOW)

    assert sent(receiver)["payload"]["severity"] == expected


def test_default_severity_map_covers_every_severity() -> None:
    assert set(config("https://events.pagerduty.com/v2/enqueue").severity_map) == set(Severity)


def test_severity_falls_back_to_the_incident_document(
    receiver: Receiver, client: httpx.Client
) -> None:
    channel(receiver.url + PATH, client).send(message(severity=""), now=NOW)

    assert sent(receiver)["payload"]["severity"] == "critical"  # the payload's SEV2


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # At the limit nothing is cut.
        pytest.param(
            "x" * (MAX_SUMMARY_CHARS - len("SEV2 INC-42: ") - len(" [team payments]")),
            None,
            id="at-limit",
        ),
        # Beyond it the summary is cut to 1024 characters, an ellipsis marking the cut.
        pytest.param("y" * 5000, "SEV2 INC-42: " + "y" * 1010 + "\u2026", id="too-long"),
        # Characters, not bytes: a multi-byte title is cut at the same length.
        pytest.param("\u00e9" * 5000, "SEV2 INC-42: " + "\u00e9" * 1010 + "\u2026", id="utf8"),
        # Phone calls and SMS read one line: newlines and runs of spaces become one space.
        pytest.param(
            "disk\nfull  on\tdb-1", "SEV2 INC-42: disk full on db-1 [team payments]", id="one-line"
        ),
    ],
)
def test_summary_truncation(
    receiver: Receiver, client: httpx.Client, title: str, expected: str | None
) -> None:
    channel(receiver.url + PATH, client).send(message(payload=INCIDENT | {"title": title}), now=NOW)

    summary = sent(receiver)["payload"]["summary"]
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert summary == (expected or f"SEV2 INC-42: {title} [team payments]")


def test_custom_details_are_cut_to_keep_the_event_under_512_kb(
    receiver: Receiver, client: httpx.Client
) -> None:
    # An incident grouping 20,000 alerts: their labels alone are about 2 MB.
    alerts = [
        {"status": "firing", "labels": {"alertname": "Disk", "instance": f"host-{n:05}" + "x" * 60}}
        for n in range(20_000)
    ]

    channel(receiver.url + PATH, client).send(
        message(payload=INCIDENT | {"alerts": alerts, "alerts_firing": 20_000}), now=NOW
    )

    [request] = receiver.requests
    assert MAX_EVENT_BYTES - 2_000 < len(request.body) < MAX_EVENT_BYTES
    details = json.loads(request.body)["payload"]["custom_details"]
    kept = details["alerts"]
    assert kept == [alert["labels"] for alert in alerts[: len(kept)]]  # in order, from the start
    assert len(kept) + details["alerts_omitted"] == 20_000
    assert details["alerts_firing"] == 20_000


def test_small_incident_has_no_omitted_count(receiver: Receiver, client: httpx.Client) -> None:
    channel(receiver.url + PATH, client).send(message(), now=NOW)

    assert "alerts_omitted" not in sent(receiver)["payload"]["custom_details"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # From labels every member alert shares: service names the component, alertname the
        # class; no shared cluster label, so no group.
        pytest.param({}, {"component": "checkout", "class": "HighErrorRate"}, id="shared-labels"),
        # A label only some alerts carry does not describe the incident: left out.
        pytest.param(
            {
                "alerts": [
                    {"labels": {"alertname": "A", "service": "checkout", "cluster": "eu-1"}},
                    {"labels": {"alertname": "B", "service": "checkout", "cluster": "eu-2"}},
                ]
            },
            {"component": "checkout"},
            id="differing-labels",
        ),
        # Fields the incident document sets itself win over labels.
        pytest.param(
            {"component": "payments-api", "group": "prod", "class": "errors"},
            {"component": "payments-api", "group": "prod", "class": "errors"},
            id="from-incident",
        ),
        # No alerts, no guesses.
        pytest.param({"alerts": []}, {}, id="no-alerts"),
    ],
)
def test_cef_fields(
    receiver: Receiver, client: httpx.Client, changes: dict[str, Any], expected: dict[str, str]
) -> None:
    channel(receiver.url + PATH, client).send(message(payload=INCIDENT | changes), now=NOW)

    payload = sent(receiver)["payload"]
    assert {k: payload[k] for k in ("component", "group", "class") if k in payload} == expected


def test_minimal_incident(receiver: Receiver, client: httpx.Client) -> None:
    # No team, no links, no opened_at: source and timestamp fall back, no empty links list.
    bare = message(payload={"id": "INC-7", "title": "db down"}, incident="INC-7", links={})

    channel(receiver.url + PATH, client).send(bare, now=NOW)

    body = sent(receiver)
    assert "links" not in body
    assert "client_url" not in body
    assert body["payload"]["source"] == "sevrouter"
    assert body["payload"]["timestamp"] == "2025-01-01T00:00:00+00:00"
    assert body["payload"]["summary"] == "SEV2 INC-7: db down"


def test_runbook_that_is_not_a_url_is_not_a_link(receiver: Receiver, client: httpx.Client) -> None:
    channel(receiver.url + PATH, client).send(
        message(payload=INCIDENT | {"runbook": "restart the pods"}), now=NOW
    )

    assert "Runbook" not in [link["text"] for link in sent(receiver)["links"]]


def test_summary_template_can_be_overridden(
    receiver: Receiver, client: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "pagerduty.summary.j2").write_text("{{ incident.team }} paged: {{ title }}")

    channel(receiver.url + PATH, client, renderer=Renderer(tmp_path)).send(message(), now=NOW)

    assert sent(receiver)["payload"]["summary"] == (
        "payments paged: [SEV2] INC-42 checkout 5xx above 2% (triggered)"
    )


def test_broken_template_falls_back_to_the_title(
    receiver: Receiver, client: httpx.Client, tmp_path: Path
) -> None:
    # A team's typo must not stop the page.
    (tmp_path / "pagerduty.summary.j2").write_text("{{ incident.no_such_field }}")

    delivery = channel(receiver.url + PATH, client, renderer=Renderer(tmp_path)).send(
        message(), now=NOW
    )

    assert delivery.outcome is Outcome.DELIVERED
    assert sent(receiver)["payload"]["summary"] == "[SEV2] INC-42 checkout 5xx above 2% (triggered)"


# --- replayed answers ------------------------------------------------------------------------

JSON = (("Content-Type", "application/json"),)
# PagerDuty's answer to a routing key of the wrong length.
INVALID_EVENT = (
    b'{"status":"invalid event","message":"Event object is invalid",'
    b'"errors":["Length of \'routing_key\' is incorrect (should be 32 characters)"]}'
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # 202 with PagerDuty's documented success body.
        pytest.param(
            Reply(202, shared("pagerduty_events_v2_response_202.json"), JSON),
            Delivery(Outcome.DELIVERED, "HTTP 202", status_code=202),
            id="202",
        ),
        # 400: the event will never be accepted; PagerDuty's message and errors say why.
        pytest.param(
            Reply(400, INVALID_EVENT, JSON),
            Delivery(
                Outcome.PERMANENT,
                "HTTP 400: Event object is invalid: Length of 'routing_key' is incorrect "
                "(should be 32 characters)",
                status_code=400,
            ),
            id="400-invalid-event",
        ),
        # The documented error body (pretty-printed, several fields) reads the same way.
        pytest.param(
            Reply(400, shared("pagerduty_events_v2_response_error.json"), JSON),
            Delivery(
                Outcome.PERMANENT,
                "HTTP 400: Event object format is unrecognized: JSON parse error",
                status_code=400,
            ),
            id="400-unrecognized",
        ),
        # An error body that is not PagerDuty's JSON is quoted as it is.
        pytest.param(
            Reply(400, b"<html>Bad Request</html>"),
            Delivery(Outcome.PERMANENT, "HTTP 400: <html>Bad Request</html>", status_code=400),
            id="400-not-json",
        ),
        # A wrong URL: permanent.
        pytest.param(
            Reply(404, b"Not Found"),
            Delivery(Outcome.PERMANENT, "HTTP 404: Not Found", status_code=404),
            id="404",
        ),
        # 429 without Retry-After: PagerDuty asks for 30 s between retries.
        pytest.param(
            Reply(
                429,
                b'{"status":"throttle exceeded","message":"Requests for this service are '
                b'arriving too quickly.  Please retry later."}',
                JSON,
            ),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429, retry_after=30.0),
            id="429-default-30s",
        ),
        # 429 with Retry-After: the server's word wins.
        pytest.param(
            Reply(429, b"", (("Retry-After", "5"),)),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429, retry_after=5.0),
            id="429-retry-after",
        ),
        # 5xx is PagerDuty's trouble: retried, with our own backoff.
        pytest.param(
            Reply(500, b"Internal Server Error"),
            Delivery(Outcome.RETRY, "HTTP 500", status_code=500),
            id="500",
        ),
        pytest.param(
            Reply(503, b"", (("Retry-After", "120"),)),
            Delivery(Outcome.RETRY, "HTTP 503", status_code=503, retry_after=120.0),
            id="503-retry-after",
        ),
        # A redirect is not followed: the endpoint moved, which is a configuration change.
        pytest.param(
            Reply(301, b"", (("Location", "/elsewhere"),)),
            Delivery(Outcome.PERMANENT, "HTTP 301", status_code=301),
            id="301-not-followed",
        ),
    ],
)
def test_classifies_real_answers(
    receiver: Receiver, client: httpx.Client, reply: Reply, expected: Delivery
) -> None:
    receiver.script(reply)

    assert channel(receiver.url + PATH, client).send(message(), now=NOW) == expected
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        # In PagerDuty's message ...
        pytest.param(
            b'{"message":"Unknown routing key R0uT1nGkEy0123456789abcdefABCDEF","errors":[]}',
            id="in-message",
        ),
        # ... in its errors ...
        pytest.param(
            b'{"message":"Event object is invalid",'
            b'"errors":["routing_key R0uT1nGkEy0123456789abcdefABCDEF is disabled"]}',
            id="in-errors",
        ),
        # ... or in a body that is not PagerDuty's JSON at all.
        pytest.param(b"bad key R0uT1nGkEy0123456789abcdefABCDEF", id="plain-text"),
    ],
)
def test_routing_key_echoed_in_an_error_is_masked(
    receiver: Receiver, client: httpx.Client, body: bytes
) -> None:
    receiver.script(Reply(400, body, JSON))

    delivery = channel(receiver.url + PATH, client).send(message(), now=NOW)

    assert delivery.outcome is Outcome.PERMANENT
    assert ROUTING_KEY.reveal() not in delivery.detail
    assert "**********" in delivery.detail


def test_connection_refused_is_retried(closed_port_url: str, client: httpx.Client) -> None:
    delivery = channel(closed_port_url, client).send(message(), now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "connection refused")


def test_receiver_slower_than_timeout_is_retried(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(202, delay=5.0))

    delivery = channel(receiver.url + PATH, client, timeout=0.2).send(message(), now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "read timeout")


# --- configuration and secrecy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "routing_key", "problem"),
    [
        # Only http(s) can be posted to.
        pytest.param({"url": "ftp://events.example.com/v2/enqueue"}, ROUTING_KEY, "url", id="ftp"),
        # A relative URL has no host to connect to.
        pytest.param({"url": "/v2/enqueue"}, ROUTING_KEY, "url", id="relative"),
        # A zero timeout would fail every send.
        pytest.param({"timeout": 0}, ROUTING_KEY, "timeout", id="zero-timeout"),
        # An empty key (an unset environment variable) could never authenticate.
        pytest.param({}, Secret(" "), "routing_key", id="empty-key"),
    ],
)
def test_unusable_settings_fail_at_construction(
    client: httpx.Client, settings: dict[str, Any], routing_key: Secret, problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"pd-payments.*{problem}"):
        channel(
            settings.get("url", "https://events.pagerduty.com/v2/enqueue"),
            client,
            routing_key=routing_key,
            timeout=settings.get("timeout", 10.0),
        )


def test_repr_hides_the_routing_key(client: httpx.Client) -> None:
    pd = channel("https://events.pagerduty.com/v2/enqueue", client)

    assert repr(pd) == (
        "PagerDutyChannel(name='pd-payments', url='https://events.pagerduty.com/v2/enqueue')"
    )
    assert ROUTING_KEY.reveal() not in repr(pd)


def test_satisfies_channel_protocol(client: httpx.Client) -> None:
    # The annotation is the check (mypy --strict); the assert pins the runtime values.
    pd: Channel = channel("https://events.pagerduty.com/v2/enqueue", client)
    assert (pd.name, pd.kind) == ("pd-payments", "pagerduty")
