"""The Teams Workflows channel against a real local HTTP receiver, and the card it renders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import router
from router.channelschema import TeamsChannelConfig
from router.errors import ConfigError
from router.notify import Channel, Delivery, Message, Outcome
from router.notify.msteams import MAX_BODY_BYTES, TeamsChannel, card_color, opened_at
from router.notify.render import Renderer
from router.secrets import Secret

from .conftest import Receiver, Reply

NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
# Workflows URLs carry their credential in the sig= query parameter.
FLOW_PATH = (
    "/workflows/0f1e2d3c/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s3cr3tS1GNATURE"
)

MESSAGE = Message(
    idempotency_key="INC-42:1:sre-teams:msteams:trigger",
    event="incident.opened",
    title="[SEV2] INC-42 Checkout 5xx above 2% (triggered)",
    text="SEV2 incident INC-42 for team payments: triggered\n"
    "Opened 2025-01-01 00:00:00 UTC; 2 alert(s) firing",
    payload={
        "id": "INC-42",
        "title": "Checkout 5xx above 2%",
        "severity": "SEV2",
        "state": "triggered",
        "team": "payments",
        "alerts_firing": 2,
        "opened_at": "2025-01-01T09:30:00+00:00",
        "summary": "Error rate on checkout is 3.1%\nSince the 09:25 deploy",
        "runbook": "https://runbooks.example.com/checkout",
    },
    incident="INC-42",
    severity="SEV2",
    links={
        "ack": "https://sevrouter.example.com/a/INC-42?op=ack&sig=abc",
        "resolve": "https://sevrouter.example.com/a/INC-42?op=resolve&sig=def",
        "incident": "https://sevrouter.example.com/incidents/INC-42",
    },
)

# Written out by hand, not by the code under test: the Workflows envelope Teams receives.
EXPECTED_CARD: dict[str, Any] = {
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "type": "AdaptiveCard",
    "version": "1.4",
    "body": [
        {
            "type": "TextBlock",
            "text": "SEV2 INC-42 Checkout 5xx above 2%",
            "weight": "Bolder",
            "size": "Large",
            "color": "attention",
            "wrap": True,
        },
        # Teams joins single newlines: paragraphs need two.
        {
            "type": "TextBlock",
            "text": "Error rate on checkout is 3.1%\n\nSince the 09:25 deploy",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": "Runbook: https://runbooks.example.com/checkout",
            "wrap": True,
        },
        {
            "type": "FactSet",
            # Keys come out sorted: the template renders the facts with `tojson`.
            "facts": [
                {"title": "State", "value": "triggered"},
                {"title": "Team", "value": "payments"},
                {"title": "Alerts firing", "value": "2"},
                {"title": "Opened at", "value": "2025-01-01 09:30 UTC"},
            ],
        },
        {
            "type": "TextBlock",
            "text": "Event: incident.opened",
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        },
    ],
    "actions": [
        {
            "title": "Acknowledge",
            "type": "Action.OpenUrl",
            "url": "https://sevrouter.example.com/a/INC-42?op=ack&sig=abc",
        },
        {
            "title": "Resolve",
            "type": "Action.OpenUrl",
            "url": "https://sevrouter.example.com/a/INC-42?op=resolve&sig=def",
        },
        {
            "title": "Open incident",
            "type": "Action.OpenUrl",
            "url": "https://sevrouter.example.com/incidents/INC-42",
        },
    ],
    "msteams": {"width": "full"},
}


def envelope(card: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def teams(
    url: str, client: httpx.Client, *, renderer: Renderer | None = None, timeout: float = 10.0
) -> TeamsChannel:
    config = TeamsChannelConfig.model_validate(
        {"type": "msteams", "name": "sre-teams", "url": {"env": "TEAMS_URL"}, "timeout": timeout}
    )
    return TeamsChannel(config, url=Secret(url), client=client, renderer=renderer or Renderer())


def posted_card(receiver: Receiver) -> dict[str, Any]:
    document = json.loads(receiver.requests[-1].body)
    card: dict[str, Any] = document["attachments"][0]["content"]
    return card


# --- what goes on the wire -------------------------------------------------------------------


def test_posts_exact_envelope_and_headers(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(202))

    delivery = teams(receiver.url + FLOW_PATH, client).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "HTTP 202", status_code=202)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", FLOW_PATH)
    expected = json.dumps(envelope(EXPECTED_CARD), separators=(",", ":"), ensure_ascii=False)
    assert request.body == expected.encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"sevrouter/{router.__version__}"
    # The URL's signature is the credential: no Authorization header, nothing else of ours.
    assert set(request.headers) == {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "content-type",
        "content-length",
        "user-agent",
    }


def test_paged_person_is_mentioned(receiver: Receiver, client: httpx.Client) -> None:
    # Only a mention entity notifies the person; the text alone would not.
    receiver.script(Reply(202))

    teams(receiver.url, client).send(replace(MESSAGE, recipient="alice@example.com"), now=NOW)

    card = posted_card(receiver)
    assert card["body"][1] == {
        "type": "TextBlock",
        "text": "<at>alice@example.com</at>",
        "wrap": True,
    }
    assert card["msteams"] == {
        "entities": [
            {
                "type": "mention",
                "text": "<at>alice@example.com</at>",
                "mentioned": {"id": "alice@example.com", "name": "alice@example.com"},
            }
        ],
        "width": "full",
    }


@pytest.mark.parametrize(
    ("event", "links", "titles"),
    [
        # An open incident offers every action.
        pytest.param(
            "incident.opened", MESSAGE.links, ["Acknowledge", "Resolve", "Open incident"], id="open"
        ),
        # Once acknowledged, acknowledging again is pointless.
        pytest.param(
            "incident.acknowledged", MESSAGE.links, ["Resolve", "Open incident"], id="acked"
        ),
        # Once over, only the incident page is left to visit.
        pytest.param("incident.resolved", MESSAGE.links, ["Open incident"], id="resolved"),
        # No links, no actions at all.
        pytest.param("incident.opened", {}, None, id="no-links"),
    ],
)
def test_action_buttons(
    receiver: Receiver,
    client: httpx.Client,
    event: str,
    links: Mapping[str, str],
    titles: list[str] | None,
) -> None:
    receiver.script(Reply(202))

    teams(receiver.url, client).send(replace(MESSAGE, event=event, links=links), now=NOW)

    card = posted_card(receiver)
    if titles is None:
        assert "actions" not in card
    else:
        assert [action["title"] for action in card["actions"]] == titles
        assert {action["type"] for action in card["actions"]} == {"Action.OpenUrl"}


def test_minimal_payload_still_renders(receiver: Receiver, client: httpx.Client) -> None:
    # No incident document: the message's own title and text, no empty FactSet (invalid).
    receiver.script(Reply(202))

    teams(receiver.url, client).send(
        Message("k", "incident.notify", "Disk almost full", "on db-1", {}), now=NOW
    )

    card = posted_card(receiver)
    assert [block["type"] for block in card["body"]] == ["TextBlock", "TextBlock", "TextBlock"]
    assert card["body"][0]["text"] == "Disk almost full"
    assert card["body"][0]["color"] == "default"
    assert card["body"][1]["text"] == "on db-1"


@pytest.mark.parametrize(
    ("severity", "event", "state", "color"),
    [
        # The two worst severities demand attention ...
        pytest.param("SEV1", "incident.opened", "triggered", "attention", id="sev1"),
        pytest.param("SEV2", "incident.escalated", "triggered", "attention", id="sev2"),
        # ... SEV3 is a warning, SEV4 merely informative.
        pytest.param("SEV3", "incident.opened", "triggered", "warning", id="sev3"),
        pytest.param("SEV4", "incident.opened", "triggered", "good", id="sev4"),
        # An acknowledged incident is still as severe.
        pytest.param("SEV1", "incident.acknowledged", "acknowledged", "attention", id="acked"),
        # Resolved or mitigated is good news whatever the severity, by event ...
        pytest.param("SEV1", "incident.resolved", "resolved", "good", id="resolved"),
        pytest.param("SEV1", "incident.mitigated", "mitigated", "good", id="mitigated"),
        # ... or by state, for a reminder about a closed incident.
        pytest.param("SEV1", "incident.reminder", "closed", "good", id="closed-state"),
        # A reopened incident is bad news again.
        pytest.param("SEV2", "incident.reopened", "triggered", "attention", id="reopened"),
        # Unknown severity: no colour claims.
        pytest.param("", "incident.opened", "triggered", "default", id="unknown"),
    ],
)
def test_card_color(severity: str, event: str, state: str, color: str) -> None:
    payload = {"state": state, "severity": severity}
    message = Message("k", event, "t", "x", payload, severity=severity)
    assert card_color(message) == color


def test_card_color_falls_back_to_payload_severity() -> None:
    # Message.severity may be empty when the incident document carries it.
    message = Message("k", "incident.opened", "t", "x", {"severity": "SEV3"})
    assert card_color(message) == "warning"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # ISO 8601 with offset, as Incident.to_json writes it, shown in UTC to the minute.
        pytest.param("2025-01-01T09:30:59+00:00", "2025-01-01 09:30 UTC", id="utc"),
        pytest.param("2025-01-01T10:30:00+01:00", "2025-01-01 09:30 UTC", id="offset"),
        # Naive times are the store's UTC.
        pytest.param("2025-01-01T09:30:00", "2025-01-01 09:30 UTC", id="naive"),
        # Something else is shown as it is rather than dropped.
        pytest.param("yesterday", "yesterday", id="unparseable"),
        # Absent: no fact.
        pytest.param(None, "", id="absent"),
    ],
)
def test_opened_at(value: str | None, shown: str) -> None:
    payload = {"opened_at": value} if value is not None else {}
    assert opened_at(Message("k", "incident.opened", "t", "x", payload)) == shown


# --- size ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filler",
    [
        # ASCII: one byte a character.
        pytest.param("x", id="ascii"),
        # Non-Latin text is several bytes a character: the limit is in bytes.
        pytest.param("\u8b66", id="cjk"),
    ],
)
def test_oversized_card_is_cut_below_the_limit(
    receiver: Receiver, client: httpx.Client, filler: str
) -> None:
    # A Workflows URL accepts any size with 202 and the flow then drops the card: cut first.
    receiver.script(Reply(202))
    payload = dict(MESSAGE.payload) | {"summary": filler * 60_000}

    delivery = teams(receiver.url, client).send(replace(MESSAGE, payload=payload), now=NOW)

    assert delivery.outcome is Outcome.DELIVERED
    body = receiver.requests[-1].body
    assert MAX_BODY_BYTES - 64 < len(body) <= MAX_BODY_BYTES
    card = posted_card(receiver)
    summary = card["body"][1]["text"]
    assert summary.startswith(filler * 100)
    assert summary.endswith("\u2026")
    # Everything else is untouched.
    assert card["body"][0] == EXPECTED_CARD["body"][0]
    assert card["actions"] == EXPECTED_CARD["actions"]


def test_small_card_is_not_cut(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(202))

    teams(receiver.url, client).send(MESSAGE, now=NOW)

    assert "\u2026" not in receiver.requests[-1].body.decode()


# --- replayed answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # Workflows accepts with 202 and runs the flow later ...
        pytest.param(
            Reply(202), Delivery(Outcome.DELIVERED, "HTTP 202", status_code=202), id="202"
        ),
        # ... other flows and proxies answer 200: any 2xx is delivered.
        pytest.param(
            Reply(200, b"1"), Delivery(Outcome.DELIVERED, "HTTP 200", status_code=200), id="200"
        ),
        # A malformed request is permanent, quoting the flow's JSON error.
        pytest.param(
            Reply(
                400,
                b'{"error":{"code":"InvalidRequestContent","message":"The request content '
                b'is not valid JSON."}}',
                (("Content-Type", "application/json"),),
            ),
            Delivery(
                Outcome.PERMANENT,
                'HTTP 400: {"error":{"code":"InvalidRequestContent","message":"The request '
                'content is not valid JSON."}}',
                status_code=400,
            ),
            id="400-invalid-content",
        ),
        # A deleted or disabled flow will not come back by itself.
        pytest.param(
            Reply(404, b'{"error":{"code":"WorkflowNotFound"}}'),
            Delivery(
                Outcome.PERMANENT,
                'HTTP 404: {"error":{"code":"WorkflowNotFound"}}',
                status_code=404,
            ),
            id="404-flow-gone",
        ),
        pytest.param(
            Reply(401), Delivery(Outcome.PERMANENT, "HTTP 401", status_code=401), id="401"
        ),
        # Throttled: retried, honouring Retry-After.
        pytest.param(
            Reply(429, b"", (("Retry-After", "17"),)),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429, retry_after=17.0),
            id="429-retry-after",
        ),
        # 5xx is transient.
        pytest.param(
            Reply(502, b"<html>Bad Gateway</html>"),
            Delivery(Outcome.RETRY, "HTTP 502", status_code=502),
            id="502",
        ),
        pytest.param(
            Reply(503, b"", (("Retry-After", "60"),)),
            Delivery(Outcome.RETRY, "HTTP 503", status_code=503, retry_after=60.0),
            id="503-retry-after",
        ),
        # Redirects are not followed: the flow moved, a configuration change.
        pytest.param(
            Reply(301, b"", (("Location", "/elsewhere"),)),
            Delivery(Outcome.PERMANENT, "HTTP 301", status_code=301),
            id="301",
        ),
    ],
)
def test_classifies_real_answers(
    receiver: Receiver, client: httpx.Client, reply: Reply, expected: Delivery
) -> None:
    receiver.script(reply)

    assert teams(receiver.url + FLOW_PATH, client).send(MESSAGE, now=NOW) == expected
    assert len(receiver.requests) == 1


def test_connection_refused_is_retried(closed_port_url: str, client: httpx.Client) -> None:
    delivery = teams(closed_port_url, client).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "connection refused")


def test_slow_flow_is_retried(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(202, delay=5.0))

    delivery = teams(receiver.url, client, timeout=0.2).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "read timeout")


# --- secrets and configuration ---------------------------------------------------------------


def test_url_echoed_in_error_is_masked(receiver: Receiver, client: httpx.Client) -> None:
    url = receiver.url + FLOW_PATH
    receiver.script(Reply(403, f"signature rejected for {url}".encode()))

    delivery = teams(url, client).send(MESSAGE, now=NOW)

    assert delivery.outcome is Outcome.PERMANENT
    assert delivery.detail == "HTTP 403: signature rejected for **********"
    assert "s3cr3tS1GNATURE" not in delivery.detail


@pytest.mark.parametrize(
    ("url", "timeout"),
    [
        # Only http(s) can be posted to; the message must not quote the URL.
        pytest.param("ftp://prod.logic.azure.com/s3cr3t", 10.0, id="ftp"),
        pytest.param("prod.logic.azure.com/workflows?sig=s3cr3t", 10.0, id="no-scheme"),
        # A zero timeout would fail every send.
        pytest.param("https://prod.logic.azure.com/workflows?sig=s3cr3t", 0.0, id="zero-timeout"),
    ],
)
def test_unusable_settings_fail_at_construction(
    client: httpx.Client, url: str, timeout: float
) -> None:
    with pytest.raises(ConfigError, match="sre-teams") as info:
        teams(url, client, timeout=timeout)
    assert "s3cr3t" not in str(info.value)


def test_repr_hides_url(client: httpx.Client) -> None:
    channel = teams("https://prod.logic.azure.com" + FLOW_PATH, client)

    assert repr(channel) == "TeamsChannel(name='sre-teams')"
    assert "s3cr3t" not in str(channel)


def test_satisfies_channel_protocol(client: httpx.Client) -> None:
    # The annotation is the check (mypy --strict); the asserts pin the runtime values.
    channel: Channel = teams("https://prod.logic.azure.com" + FLOW_PATH, client)
    assert (channel.name, channel.kind) == ("sre-teams", "msteams")


def test_naive_now_is_refused(receiver: Receiver, client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        teams(receiver.url, client).send(MESSAGE, now=datetime(2025, 1, 1))
    assert receiver.requests == []


# --- templates -------------------------------------------------------------------------------


def test_override_replaces_the_card(
    receiver: Receiver, client: httpx.Client, tmp_path: Path
) -> None:
    # A team's own card; the envelope around it is still the channel's.
    (tmp_path / "msteams.card.j2").write_text(
        '{"type": "AdaptiveCard", "version": "1.4", "body": ['
        '{"type": "TextBlock", "text": {{ ("Page: " ~ title) | tojson }}, '
        '"color": {{ color | tojson }}}]}'
    )
    receiver.script(Reply(202))

    teams(receiver.url, client, renderer=Renderer(tmp_path)).send(MESSAGE, now=NOW)

    document = json.loads(receiver.requests[-1].body)
    assert document == envelope(
        {
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {
                    "type": "TextBlock",
                    "text": "Page: [SEV2] INC-42 Checkout 5xx above 2% (triggered)",
                    "color": "attention",
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        # A variable the template does not have (StrictUndefined): named, not sent.
        pytest.param(
            "{{ nope }}",
            "template msteams.card.j2: UndefinedError: 'nope' is undefined",
            id="undefined",
        ),
        # Not JSON: the flow would fail on it after answering 202, unseen.
        pytest.param(
            "{ {{ title }} }",
            "template msteams.card.j2: not JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 3 (char 2)",
            id="not-json",
        ),
        # JSON, but not a card object.
        pytest.param(
            "[1, 2]",
            "template msteams.card.j2: must render a JSON object (the Adaptive Card)",
            id="not-object",
        ),
    ],
)
def test_broken_override_is_permanent_without_a_request(
    receiver: Receiver, client: httpx.Client, tmp_path: Path, source: str, detail: str
) -> None:
    (tmp_path / "msteams.card.j2").write_text(source)

    delivery = teams(receiver.url, client, renderer=Renderer(tmp_path)).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, detail)
    assert receiver.requests == []


def test_user_text_cannot_break_the_json(receiver: Receiver, client: httpx.Client) -> None:
    # Quotes, backslashes and control characters in alert text are values, never structure.
    receiver.script(Reply(202))
    nasty = 'a "quoted" \\ back\tslash </script> }]},{"type":"Injected'
    payload = dict(MESSAGE.payload) | {"title": nasty, "team": nasty}

    teams(receiver.url, client).send(replace(MESSAGE, payload=payload), now=NOW)

    card = posted_card(receiver)
    assert card["body"][0]["text"] == f"SEV2 INC-42 {nasty}"
    assert {"title": "Team", "value": nasty} in card["body"][3]["facts"]
    assert all(block["type"] in ("TextBlock", "FactSet") for block in card["body"])
