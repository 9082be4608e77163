"""The Slack channel against a real local HTTP receiver: both modes, threading, Slack's replies."""

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
from router.channelschema import SlackChannelConfig
from router.errors import ConfigError
from router.notify import Channel, Delivery, Message, Outcome
from router.notify.base import EVENTS, RESOLVE_EVENTS
from router.notify.render import Renderer
from router.notify.slack import (
    MAX_BLOCKS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    MAX_TEXT_CHARS,
    SlackChannel,
    escape_mrkdwn,
    fit_text,
)
from router.secrets import Secret

from .conftest import Receiver, Reply

NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
HOOK_PATH = "/services/T0001/B0001/s3cr3tH00KT0KEN"
BOT_TOKEN = Secret("xoxb-17-42-s3cr3tB0TT0KEN")
SLACK_CHANNEL = "C0123456789"
TS = "1700000000.000100"

MESSAGE = Message(
    idempotency_key="INC-42:1:sre-slack:slack:trigger",
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
        "opened_at": "2025-01-01T00:00:00+00:00",
        "summary": "Error rate on checkout is 3.1%",
        "runbook": "https://runbooks.example.com/checkout?step=1&view=full",
    },
    incident="INC-42",
    severity="SEV2",
    links={
        "ack": "https://sevrouter.example.com/a/INC-42?op=ack&sig=abc",
        "resolve": "https://sevrouter.example.com/a/INC-42?op=resolve&sig=def",
        "incident": "https://sevrouter.example.com/incidents/INC-42",
    },
)

# Written out by hand, not by the code under test: this is what Slack receives.
EXPECTED_TEXT = (
    "[SEV2] INC-42 Checkout 5xx above 2% (triggered)\n"
    "SEV2 incident INC-42 for team payments: triggered\n"
    "Opened 2025-01-01 00:00:00 UTC; 2 alert(s) firing"
)
EXPECTED_BLOCKS: list[dict[str, Any]] = [
    {
        "type": "header",
        "text": {"type": "plain_text", "text": "SEV2 INC-42 Checkout 5xx above 2%"},
    },
    {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            # `&` in the runbook URL is escaped: it is mrkdwn, and Slack unescapes it.
            "text": "Error rate on checkout is 3.1%\n"
            "Runbook: https://runbooks.example.com/checkout?step=1&amp;view=full",
        },
        "fields": [
            {"type": "mrkdwn", "text": "*State*\ntriggered"},
            {"type": "mrkdwn", "text": "*Team*\npayments"},
            {"type": "mrkdwn", "text": "*Alerts firing*\n2"},
        ],
    },
    {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "Event: `incident.opened`"}],
    },
    {
        "type": "actions",
        # Keys come out sorted: the template renders the buttons with `tojson`.
        "elements": [
            {
                "action_id": "ack",
                "style": "primary",
                "text": {"text": "Acknowledge", "type": "plain_text"},
                "type": "button",
                "url": "https://sevrouter.example.com/a/INC-42?op=ack&sig=abc",
            },
            {
                "action_id": "resolve",
                "text": {"text": "Resolve", "type": "plain_text"},
                "type": "button",
                "url": "https://sevrouter.example.com/a/INC-42?op=resolve&sig=def",
            },
            {
                "action_id": "incident",
                "text": {"text": "Open incident", "type": "plain_text"},
                "type": "button",
                "url": "https://sevrouter.example.com/incidents/INC-42",
            },
        ],
    },
]


class MemoryThreads:
    """`ThreadStore` in a dict, keeping NX semantics like the Redis one."""

    def __init__(self) -> None:
        self.handles: dict[tuple[str, str], str] = {}

    def get(self, channel: str, incident: str) -> str | None:
        return self.handles.get((channel, incident))

    def set(self, channel: str, incident: str, handle: str) -> None:
        self.handles.setdefault((channel, incident), handle)


def ok_reply(ts: str = TS) -> Reply:
    """chat.postMessage's success answer, as Slack sends it (abridged echo of the message)."""
    body = {
        "ok": True,
        "channel": SLACK_CHANNEL,
        "ts": ts,
        "message": {"type": "message", "subtype": "bot_message", "text": "...", "ts": ts},
    }
    return Reply(200, json.dumps(body).encode(), (("Content-Type", "application/json"),))


def api_error(code: str, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    body = json.dumps({"ok": False, "error": code}).encode()
    return Reply(status, body, (("Content-Type", "application/json"), *headers))


def config(**settings: Any) -> SlackChannelConfig:
    return SlackChannelConfig.model_validate({"type": "slack", "name": "sre-slack", **settings})


def webhook_channel(
    url: str,
    client: httpx.Client,
    *,
    threads: MemoryThreads | None = None,
    renderer: Renderer | None = None,
) -> SlackChannel:
    return SlackChannel(
        config(webhook_url={"env": "SLACK_WEBHOOK_URL"}),
        webhook_url=Secret(url),
        bot_token=None,
        client=client,
        threads=threads if threads is not None else MemoryThreads(),
        renderer=renderer or Renderer(),
    )


def bot_channel(
    api_url: str,
    client: httpx.Client,
    *,
    threads: MemoryThreads | None = None,
    renderer: Renderer | None = None,
    token: Secret = BOT_TOKEN,
    timeout: float = 10.0,
) -> SlackChannel:
    return SlackChannel(
        config(
            bot_token={"env": "SLACK_BOT_TOKEN"},
            channel=SLACK_CHANNEL,
            api_url=api_url,
            timeout=timeout,
        ),
        webhook_url=None,
        bot_token=token,
        client=client,
        threads=threads if threads is not None else MemoryThreads(),
        renderer=renderer or Renderer(),
    )


def compact(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def posted(receiver: Receiver, index: int = -1) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(receiver.requests[index].body)
    return document


# --- what goes on the wire -------------------------------------------------------------------


def test_webhook_posts_exact_body_and_headers(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(200, b"ok"))

    delivery = webhook_channel(receiver.url + HOOK_PATH, client).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "HTTP 200", status_code=200)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", HOOK_PATH)
    assert request.body == compact({"text": EXPECTED_TEXT, "blocks": EXPECTED_BLOCKS})
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"sevrouter/{router.__version__}"
    # The URL is the credential: no Authorization header, nothing else of ours.
    assert set(request.headers) == {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "content-type",
        "content-length",
        "user-agent",
    }


def test_bot_posts_exact_body_and_headers(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(ok_reply())

    delivery = bot_channel(receiver.url + "/api", client).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "HTTP 200", status_code=200)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/api/chat.postMessage")
    assert request.body == compact(
        {
            "channel": SLACK_CHANNEL,
            "text": EXPECTED_TEXT,
            "blocks": EXPECTED_BLOCKS,
            "unfurl_links": False,
        }
    )
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN.reveal()}"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["user-agent"] == f"sevrouter/{router.__version__}"


def test_api_url_with_trailing_slash(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(ok_reply())

    bot_channel(receiver.url + "/api/", client).send(MESSAGE, now=NOW)

    assert receiver.requests[0].path == "/api/chat.postMessage"


def test_person_is_mentioned_first(receiver: Receiver, client: httpx.Client) -> None:
    # The mention leads `text` (mobile notifications read only that) and the section (desktop
    # notifications read blocks first).
    receiver.script(ok_reply())
    message = replace(MESSAGE, recipient="U012AB3CD")

    bot_channel(receiver.url, client).send(message, now=NOW)

    body = posted(receiver)
    assert body["text"] == "<@U012AB3CD> " + EXPECTED_TEXT
    assert body["blocks"][1]["text"]["text"].startswith("<@U012AB3CD>\nError rate")


def test_recipient_that_is_no_member_id_is_permanent(
    receiver: Receiver, client: httpx.Client
) -> None:
    # An email address cannot be mentioned; posting without the mention would page nobody.
    message = replace(MESSAGE, recipient="alice@example.com")

    delivery = bot_channel(receiver.url, client).send(message, now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, "recipient is not a Slack member id (U...)")
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("event", "links", "buttons"),
    [
        # An open incident offers every action.
        pytest.param("incident.opened", MESSAGE.links, ["ack", "resolve", "incident"], id="open"),
        # Once acknowledged, acknowledging again is pointless.
        pytest.param(
            "incident.acknowledged", MESSAGE.links, ["resolve", "incident"], id="acknowledged"
        ),
        # Once over, only the incident page is left to visit.
        pytest.param("incident.resolved", MESSAGE.links, ["incident"], id="resolved"),
        pytest.param("incident.mitigated", MESSAGE.links, ["incident"], id="mitigated"),
        # Only the links given become buttons.
        pytest.param("incident.opened", {"ack": "https://s.example.com/a"}, ["ack"], id="ack-only"),
        # No links, no actions block at all (an empty one is invalid Block Kit).
        pytest.param("incident.opened", {}, None, id="no-links"),
    ],
)
def test_action_buttons(
    receiver: Receiver,
    client: httpx.Client,
    event: str,
    links: Mapping[str, str],
    buttons: list[str] | None,
) -> None:
    receiver.script(Reply(200, b"ok"))
    message = replace(MESSAGE, event=event, links=links)

    webhook_channel(receiver.url + HOOK_PATH, client).send(message, now=NOW)

    blocks = posted(receiver)["blocks"]
    actions = [block for block in blocks if block["type"] == "actions"]
    if buttons is None:
        assert actions == []
    else:
        assert [button["action_id"] for button in actions[0]["elements"]] == buttons
        assert all(button["url"] == links[button["action_id"]] for button in actions[0]["elements"])


def test_minimal_payload_still_renders(receiver: Receiver, client: httpx.Client) -> None:
    # A message without an incident document falls back to the message's own title and text.
    receiver.script(Reply(200, b"ok"))
    message = Message("k", "incident.notify", "Disk almost full", "on db-1", {})

    delivery = webhook_channel(receiver.url + HOOK_PATH, client).send(message, now=NOW)

    assert delivery.outcome is Outcome.DELIVERED
    header, section = posted(receiver)["blocks"][:2]
    assert header["text"]["text"] == "Disk almost full"
    assert section["text"]["text"] == "on db-1"
    assert section["fields"][0]["text"] == "*State*\nunknown"


# --- threading (bot mode) --------------------------------------------------------------------


def test_thread_across_three_messages(receiver: Receiver, client: httpx.Client) -> None:
    threads = MemoryThreads()
    channel = bot_channel(receiver.url, client, threads=threads)
    receiver.script(ok_reply(TS), ok_reply("1700000060.000200"), ok_reply("1700000120.000300"))

    opened = channel.send(MESSAGE, now=NOW)
    acked = channel.send(replace(MESSAGE, event="incident.acknowledged"), now=NOW)
    resolved = channel.send(replace(MESSAGE, event="incident.resolved"), now=NOW)

    assert [d.outcome for d in (opened, acked, resolved)] == [Outcome.DELIVERED] * 3
    first, second, third = (posted(receiver, i) for i in range(3))
    # The first message starts the thread: its ts is remembered per channel and incident.
    assert "thread_ts" not in first
    assert threads.handles == {("sre-slack", "INC-42"): TS}
    # Later ones reply in it, quietly ...
    assert second["thread_ts"] == TS
    assert "reply_broadcast" not in second
    # ... except the resolution, which the whole channel sees.
    assert third["thread_ts"] == TS
    assert third["reply_broadcast"] is True
    # Field order on the wire: the thread fields sit before unfurl_links.
    assert list(third) == [
        "channel",
        "text",
        "blocks",
        "thread_ts",
        "reply_broadcast",
        "unfurl_links",
    ]
    # Replies never move the thread.
    assert threads.handles == {("sre-slack", "INC-42"): TS}


@pytest.mark.parametrize(
    "event",
    [pytest.param(event, id=event.removeprefix("incident.")) for event in EVENTS],
)
def test_every_later_event_replies_in_thread(
    receiver: Receiver, client: httpx.Client, event: str
) -> None:
    # Any message with a stored thread is a reply; only resolve/mitigate are broadcast.
    threads = MemoryThreads()
    threads.set("sre-slack", "INC-42", TS)
    receiver.script(ok_reply("1700000999.000900"))

    bot_channel(receiver.url, client, threads=threads).send(replace(MESSAGE, event=event), now=NOW)

    body = posted(receiver)
    assert body["thread_ts"] == TS
    assert body.get("reply_broadcast", False) is (event in RESOLVE_EVENTS)


def test_failed_first_post_does_not_start_a_thread(
    receiver: Receiver, client: httpx.Client
) -> None:
    # Nothing was posted, so the retry must again post to the channel, not into a thread.
    threads = MemoryThreads()
    channel = bot_channel(receiver.url, client, threads=threads)
    receiver.script(Reply(500), ok_reply())

    assert channel.send(MESSAGE, now=NOW).outcome is Outcome.RETRY
    assert threads.handles == {}
    assert channel.send(MESSAGE, now=NOW).outcome is Outcome.DELIVERED
    assert "thread_ts" not in posted(receiver)
    assert threads.handles == {("sre-slack", "INC-42"): TS}


def test_message_without_incident_is_never_threaded(
    receiver: Receiver, client: httpx.Client
) -> None:
    threads = MemoryThreads()
    threads.set("sre-slack", "", TS)
    receiver.script(ok_reply())

    bot_channel(receiver.url, client, threads=threads).send(replace(MESSAGE, incident=""), now=NOW)

    assert "thread_ts" not in posted(receiver)
    assert threads.handles == {("sre-slack", ""): TS}


def test_threads_are_per_channel(receiver: Receiver, client: httpx.Client) -> None:
    # Another Slack channel's thread for the same incident is not ours to reply in.
    threads = MemoryThreads()
    threads.set("other-slack", "INC-42", "1600000000.000001")
    receiver.script(ok_reply())

    bot_channel(receiver.url, client, threads=threads).send(MESSAGE, now=NOW)

    assert "thread_ts" not in posted(receiver)
    assert threads.handles[("sre-slack", "INC-42")] == TS


def test_webhook_mode_does_not_thread(receiver: Receiver, client: httpx.Client) -> None:
    # Incoming webhooks neither return a ts nor accept thread_ts from us.
    threads = MemoryThreads()
    threads.set("sre-slack", "INC-42", TS)
    receiver.script(Reply(200, b"ok"))

    webhook_channel(receiver.url + HOOK_PATH, client, threads=threads).send(
        replace(MESSAGE, event="incident.resolved"), now=NOW
    )

    assert set(posted(receiver)) == {"text", "blocks"}


# --- replayed answers ------------------------------------------------------------------------


INVALID_BLOCKS = json.dumps(
    {
        "ok": False,
        "error": "invalid_blocks",
        "errors": ["must be less than 3001 characters [json-pointer:/blocks/1/text/text]"],
        "response_metadata": {
            "messages": [
                "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]"
            ]
        },
    }
).encode()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # ok: true is delivered.
        pytest.param(ok_reply(), Delivery(Outcome.DELIVERED, "HTTP 200", status_code=200), id="ok"),
        # HTTP 200 with ok: false is a failure: `ok` decides, not the status.
        pytest.param(
            api_error("channel_not_found"),
            Delivery(Outcome.PERMANENT, "HTTP 200: channel_not_found", status_code=200),
            id="channel-not-found",
        ),
        # The bot was never invited: an operator must act, repeating cannot help.
        pytest.param(
            api_error("not_in_channel"),
            Delivery(Outcome.PERMANENT, "HTTP 200: not_in_channel", status_code=200),
            id="not-in-channel",
        ),
        # Bad or revoked credentials are permanent too.
        pytest.param(
            api_error("invalid_auth"),
            Delivery(Outcome.PERMANENT, "HTTP 200: invalid_auth", status_code=200),
            id="invalid-auth",
        ),
        pytest.param(
            api_error("token_revoked"),
            Delivery(Outcome.PERMANENT, "HTTP 200: token_revoked", status_code=200),
            id="token-revoked",
        ),
        pytest.param(
            api_error("msg_too_long"),
            Delivery(Outcome.PERMANENT, "HTTP 200: msg_too_long", status_code=200),
            id="msg-too-long",
        ),
        # Slack's own explanation of a rejected block is worth quoting.
        pytest.param(
            Reply(200, INVALID_BLOCKS),
            Delivery(
                Outcome.PERMANENT,
                "HTTP 200: invalid_blocks ([ERROR] must be less than 3001 characters "
                "[json-pointer:/blocks/1/text/text])",
                status_code=200,
            ),
            id="invalid-blocks",
        ),
        # Rate limited: HTTP 429 with Retry-After seconds, honoured.
        pytest.param(
            api_error("ratelimited", 429, (("Retry-After", "30"),)),
            Delivery(Outcome.RETRY, "HTTP 429: ratelimited", status_code=429, retry_after=30.0),
            id="ratelimited-429",
        ),
        # The same code inside a 200 is retried as well.
        pytest.param(
            api_error("ratelimited", 200, (("Retry-After", "5"),)),
            Delivery(Outcome.RETRY, "HTTP 200: ratelimited", status_code=200, retry_after=5.0),
            id="ratelimited-200",
        ),
        # Slack's transient server-side codes are retried.
        pytest.param(
            api_error("internal_error"),
            Delivery(Outcome.RETRY, "HTTP 200: internal_error", status_code=200),
            id="internal-error",
        ),
        pytest.param(
            api_error("fatal_error"),
            Delivery(Outcome.RETRY, "HTTP 200: fatal_error", status_code=200),
            id="fatal-error",
        ),
        pytest.param(
            api_error("service_unavailable"),
            Delivery(Outcome.RETRY, "HTTP 200: service_unavailable", status_code=200),
            id="service-unavailable",
        ),
        pytest.param(
            api_error("request_timeout"),
            Delivery(Outcome.RETRY, "HTTP 200: request_timeout", status_code=200),
            id="request-timeout",
        ),
        # A 5xx from Slack's edge (an HTML page) is retried like any 5xx.
        pytest.param(
            Reply(500, b"<html>Internal Server Error</html>"),
            Delivery(Outcome.RETRY, "HTTP 500", status_code=500),
            id="500",
        ),
        pytest.param(
            Reply(503, b"", (("Retry-After", "120"),)),
            Delivery(Outcome.RETRY, "HTTP 503", status_code=503, retry_after=120.0),
            id="503-retry-after",
        ),
        # A 200 that is not a Web API reply (a proxy's page, a wrong api_url) is permanent.
        pytest.param(
            Reply(200, b"<html>Sign in to the proxy</html>"),
            Delivery(Outcome.PERMANENT, "HTTP 200: not a Slack Web API reply", status_code=200),
            id="200-not-json",
        ),
        # A wrong api_url answering 404 quotes its body like any 4xx.
        pytest.param(
            Reply(404, b"Not Found"),
            Delivery(Outcome.PERMANENT, "HTTP 404: Not Found", status_code=404),
            id="404-wrong-api-url",
        ),
        # Redirects are not followed.
        pytest.param(
            Reply(302, b"", (("Location", "/elsewhere"),)),
            Delivery(Outcome.PERMANENT, "HTTP 302", status_code=302),
            id="302",
        ),
    ],
)
def test_bot_classifies_real_answers(
    receiver: Receiver, client: httpx.Client, reply: Reply, expected: Delivery
) -> None:
    receiver.script(reply)

    assert bot_channel(receiver.url, client).send(MESSAGE, now=NOW) == expected
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # Success is 200 with the plain-text body "ok".
        pytest.param(
            Reply(200, b"ok"), Delivery(Outcome.DELIVERED, "HTTP 200", status_code=200), id="ok"
        ),
        # Errors since 2016 are real statuses with a plain-text code, quoted as they are.
        pytest.param(
            Reply(400, b"invalid_payload"),
            Delivery(Outcome.PERMANENT, "HTTP 400: invalid_payload", status_code=400),
            id="400-invalid-payload",
        ),
        pytest.param(
            Reply(400, b"user_not_found"),
            Delivery(Outcome.PERMANENT, "HTTP 400: user_not_found", status_code=400),
            id="400-user-not-found",
        ),
        pytest.param(
            Reply(403, b"action_prohibited"),
            Delivery(Outcome.PERMANENT, "HTTP 403: action_prohibited", status_code=403),
            id="403-action-prohibited",
        ),
        # The webhook's channel is gone or archived: only an operator can fix that.
        pytest.param(
            Reply(404, b"channel_not_found"),
            Delivery(Outcome.PERMANENT, "HTTP 404: channel_not_found", status_code=404),
            id="404-channel-not-found",
        ),
        pytest.param(
            Reply(410, b"channel_is_archived"),
            Delivery(Outcome.PERMANENT, "HTTP 410: channel_is_archived", status_code=410),
            id="410-channel-is-archived",
        ),
        # About one message a second per webhook: 429 with Retry-After, honoured.
        pytest.param(
            Reply(429, b"rate_limited", (("Retry-After", "30"),)),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429, retry_after=30.0),
            id="429-retry-after",
        ),
        # Slack's rollup_error is a 500: transient.
        pytest.param(
            Reply(500, b"rollup_error"),
            Delivery(Outcome.RETRY, "HTTP 500", status_code=500),
            id="500-rollup-error",
        ),
    ],
)
def test_webhook_classifies_real_answers(
    receiver: Receiver, client: httpx.Client, reply: Reply, expected: Delivery
) -> None:
    receiver.script(reply)

    assert webhook_channel(receiver.url + HOOK_PATH, client).send(MESSAGE, now=NOW) == expected


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_connection_refused_is_retried(
    closed_port_url: str, client: httpx.Client, mode: str
) -> None:
    channel = (
        webhook_channel(closed_port_url, client)
        if mode == "webhook"
        else bot_channel(closed_port_url, client)
    )

    assert channel.send(MESSAGE, now=NOW) == Delivery(Outcome.RETRY, "connection refused")


def test_slow_api_is_retried(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(200, delay=5.0))

    delivery = bot_channel(receiver.url, client, timeout=0.2).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "read timeout")


# --- secrets ---------------------------------------------------------------------------------


def test_webhook_url_echoed_in_error_is_masked(receiver: Receiver, client: httpx.Client) -> None:
    url = receiver.url + HOOK_PATH
    receiver.script(Reply(404, f"channel_not_found for {url}".encode()))

    delivery = webhook_channel(url, client).send(MESSAGE, now=NOW)

    assert delivery.detail == "HTTP 404: channel_not_found for **********"
    assert "s3cr3tH00KT0KEN" not in delivery.detail


def test_bot_token_echoed_in_error_is_masked(receiver: Receiver, client: httpx.Client) -> None:
    body = {
        "ok": False,
        "error": "invalid_auth",
        "response_metadata": {"messages": [f"[ERROR] token {BOT_TOKEN.reveal()} is not valid"]},
    }
    receiver.script(Reply(200, json.dumps(body).encode()))

    delivery = bot_channel(receiver.url, client).send(MESSAGE, now=NOW)

    assert delivery.detail == "HTTP 200: invalid_auth ([ERROR] token ********** is not valid)"
    assert "s3cr3tB0TT0KEN" not in delivery.detail


def test_bot_token_echoed_in_http_error_is_masked(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(401, f"bad Authorization: Bearer {BOT_TOKEN.reveal()}".encode()))

    delivery = bot_channel(receiver.url, client).send(MESSAGE, now=NOW)

    assert delivery.detail == "HTTP 401: bad Authorization: Bearer **********"


def test_repr_hides_secrets(client: httpx.Client) -> None:
    hook = webhook_channel("https://hooks.slack.com" + HOOK_PATH, client)
    bot = bot_channel("https://slack.com/api", client)

    assert repr(hook) == "SlackChannel(name='sre-slack', mode='webhook')"
    assert repr(bot) == "SlackChannel(name='sre-slack', mode='bot')"
    assert "s3cr3t" not in repr(hook) + str(bot)


@pytest.mark.parametrize(
    ("settings", "webhook_url", "bot_token"),
    [
        # The webhook URL must be absolute http(s); the message must not quote it.
        pytest.param(
            {"webhook_url": {"env": "X"}},
            Secret("hooks.slack.com/services/s3cr3t"),
            None,
            id="relative-webhook-url",
        ),
        # A token with a line break would split the HTTP request.
        pytest.param(
            {"bot_token": {"env": "X"}, "channel": "C1"},
            None,
            Secret("xoxb-s3cr3t\r\nX-Evil: 1"),
            id="token-with-crlf",
        ),
        # The resolved secrets must match the configured mode ...
        pytest.param(
            {"webhook_url": {"env": "X"}},
            None,
            Secret("xoxb-s3cr3t"),
            id="token-for-webhook-config",
        ),
        # ... and exactly one of them is given.
        pytest.param(
            {"bot_token": {"env": "X"}, "channel": "C1"},
            Secret("https://hooks.slack.com/s3cr3t"),
            Secret("xoxb-s3cr3t"),
            id="both",
        ),
        # api_url must be usable.
        pytest.param(
            {"bot_token": {"env": "X"}, "channel": "C1", "api_url": "ftp://slack.example.com"},
            None,
            Secret("xoxb-s3cr3t"),
            id="ftp-api-url",
        ),
        # A zero timeout would fail every send.
        pytest.param(
            {"bot_token": {"env": "X"}, "channel": "C1", "timeout": 0},
            None,
            Secret("xoxb-s3cr3t"),
            id="zero-timeout",
        ),
    ],
)
def test_unusable_settings_fail_at_construction(
    client: httpx.Client,
    settings: dict[str, Any],
    webhook_url: Secret | None,
    bot_token: Secret | None,
) -> None:
    with pytest.raises(ConfigError, match="sre-slack") as info:
        SlackChannel(
            config(**settings),
            webhook_url=webhook_url,
            bot_token=bot_token,
            client=client,
            threads=MemoryThreads(),
            renderer=Renderer(),
        )
    assert "s3cr3t" not in str(info.value)


def test_satisfies_channel_protocol(client: httpx.Client) -> None:
    # The annotation is the check (mypy --strict); the asserts pin the runtime values.
    channel: Channel = bot_channel("https://slack.com/api", client)
    assert (channel.name, channel.kind) == ("sre-slack", "slack")


def test_naive_now_is_refused(receiver: Receiver, client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        bot_channel(receiver.url, client).send(MESSAGE, now=datetime(2025, 1, 1))
    assert receiver.requests == []


# --- templates -------------------------------------------------------------------------------


def test_override_template_and_shipped_blocks(
    receiver: Receiver, client: httpx.Client, tmp_path: Path
) -> None:
    # A file of the same name in rules/templates wins; the other template stays shipped.
    (tmp_path / "slack.text.j2").write_text(
        "Paging {{ incident.team }}: {{ mrkdwn(title) }} <!here>"
    )
    receiver.script(Reply(200, b"ok"))

    webhook_channel(receiver.url + HOOK_PATH, client, renderer=Renderer(tmp_path)).send(
        MESSAGE, now=NOW
    )

    body = posted(receiver)
    assert (
        body["text"] == "Paging payments: [SEV2] INC-42 Checkout 5xx above 2% (triggered) <!here>"
    )
    assert body["blocks"] == EXPECTED_BLOCKS


@pytest.mark.parametrize(
    ("name", "source", "detail"),
    [
        # A variable the template does not have (StrictUndefined): named, not sent.
        pytest.param(
            "slack.text.j2",
            "{{ nope }}",
            "template slack.text.j2: UndefinedError: 'nope' is undefined",
            id="undefined",
        ),
        # Blocks that are not JSON would make Slack answer invalid_payload forever.
        pytest.param(
            "slack.blocks.j2",
            '[{"type": "section", "text": {{ title }}}]',
            "template slack.blocks.j2: not JSON: Expecting value: line 1 column 31 (char 30)",
            id="blocks-not-json",
        ),
        # JSON, but not an array of block objects.
        pytest.param(
            "slack.blocks.j2",
            '{"blocks": []}',
            "template slack.blocks.j2: must render a JSON array of block objects",
            id="blocks-not-array",
        ),
        # The sandbox refuses unsafe attribute access in hand-edited templates.
        pytest.param(
            "slack.text.j2",
            "{{ title.__class__.__mro__ }}",
            "template slack.text.j2: SecurityError: access to attribute '__class__' of 'str' "
            "object is unsafe.",
            id="sandboxed",
        ),
    ],
)
def test_broken_override_is_permanent_without_a_request(
    receiver: Receiver, client: httpx.Client, tmp_path: Path, name: str, source: str, detail: str
) -> None:
    (tmp_path / name).write_text(source)

    delivery = bot_channel(receiver.url, client, renderer=Renderer(tmp_path)).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, detail)
    assert receiver.requests == []


# --- mrkdwn escaping -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        # Slack's three control characters become entities ...
        pytest.param("<!channel>", "&lt;!channel&gt;", id="broadcast"),
        pytest.param(
            "<https://evil.example|runbook>", "&lt;https://evil.example|runbook&gt;", id="link"
        ),
        # ... the ampersand first, so entities are not escaped twice over.
        pytest.param("a & b &lt;", "a &amp; b &amp;lt;", id="ampersand"),
        # Formatting marks cannot ping or mislead: left alone.
        pytest.param("*bold* _it_ `code`", "*bold* _it_ `code`", id="formatting"),
        # Non-strings (alert counts) are shown as text.
        pytest.param(3, "3", id="number"),
    ],
)
def test_escape_mrkdwn(value: object, escaped: str) -> None:
    assert escape_mrkdwn(value) == escaped


def test_user_text_is_escaped_in_text_and_blocks(receiver: Receiver, client: httpx.Client) -> None:
    # Alert titles and summaries come from alert rules anyone can edit: they must not be able
    # to ping the channel or hide a link.
    payload = dict(MESSAGE.payload)
    payload |= {
        "title": "<!channel> db & cache > 90%",
        "summary": "see <https://evil.example|the runbook>",
        "team": "<@U999>",
    }
    message = replace(MESSAGE, title="<!channel> db & cache > 90%", text="", payload=payload)
    receiver.script(Reply(200, b"ok"))

    webhook_channel(receiver.url + HOOK_PATH, client).send(message, now=NOW)

    body = posted(receiver)
    assert body["text"] == "&lt;!channel&gt; db &amp; cache &gt; 90%"
    header, section = body["blocks"][:2]
    # plain_text is shown literally by Slack: escaping it would show "&lt;".
    assert header["text"] == {
        "type": "plain_text",
        "text": "SEV2 INC-42 <!channel> db & cache > 90%",
    }
    assert section["text"]["text"].startswith("see &lt;https://evil.example|the runbook&gt;\n")
    assert section["fields"][1]["text"] == "*Team*\n&lt;@U999&gt;"


# --- limits ----------------------------------------------------------------------------------


def test_long_text_is_cut_to_slacks_limit(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(200, b"ok"))
    message = replace(MESSAGE, text="x" * 50_000, recipient="U012AB3CD")

    webhook_channel(receiver.url + HOOK_PATH, client).send(message, now=NOW)

    text = posted(receiver)["text"]
    assert len(text) == MAX_TEXT_CHARS
    # The mention survives the cut: it comes first.
    assert text.startswith("<@U012AB3CD> [SEV2]")
    assert text.endswith("x\u2026")


def test_long_section_and_header_are_cut(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(200, b"ok"))
    payload = dict(MESSAGE.payload) | {"title": "T" * 500, "summary": "s" * 10_000}

    webhook_channel(receiver.url + HOOK_PATH, client).send(
        replace(MESSAGE, payload=payload), now=NOW
    )

    header, section = posted(receiver)["blocks"][:2]
    assert len(header["text"]["text"]) == MAX_HEADER_CHARS
    assert header["text"]["text"].endswith("T\u2026")
    assert len(section["text"]["text"]) == MAX_SECTION_CHARS
    assert section["text"]["text"].endswith("s\u2026")


def test_blocks_beyond_fifty_are_dropped(
    receiver: Receiver, client: httpx.Client, tmp_path: Path
) -> None:
    # A team's template listing every alert as a block must not cost the whole page.
    (tmp_path / "slack.blocks.j2").write_text(
        "[{% for i in range(60) %}"
        '{"type": "section", "text": {"type": "mrkdwn", "text": {{ ("alert " ~ i) | tojson }}}}'
        "{% if not loop.last %},{% endif %}{% endfor %}]"
    )
    receiver.script(Reply(200, b"ok"))

    webhook_channel(receiver.url + HOOK_PATH, client, renderer=Renderer(tmp_path)).send(
        MESSAGE, now=NOW
    )

    blocks = posted(receiver)["blocks"]
    assert len(blocks) == MAX_BLOCKS
    assert blocks[-1]["text"]["text"] == "alert 49"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        # Within the limit nothing changes.
        pytest.param("abc", 3, "abc", id="fits"),
        # Cut with an ellipsis that counts towards the limit.
        pytest.param("abcdef", 4, "abc\u2026", id="cut"),
        # Half an entity would show as "&am": dropped whole.
        pytest.param("ab &amp; cd", 7, "ab \u2026", id="half-entity"),
        # An unclosed "<https://..." would swallow the rest: dropped whole.
        pytest.param("see <https://example.com|x> now", 15, "see \u2026", id="half-link"),
        # A closed sequence before the cut is kept.
        pytest.param("<@U1> says hello", 12, "<@U1> says \u2026", id="closed-sequence"),
    ],
)
def test_fit_text(text: str, limit: int, expected: str) -> None:
    assert fit_text(text, limit) == expected
    assert len(fit_text(text, limit)) <= limit
