"""The log channel: one structured `page_sent` line per message, always delivered."""

from __future__ import annotations

from datetime import UTC, datetime

from structlog.testing import capture_logs

from router.notify import Channel, Delivery, LogChannel, Message, Outcome

NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
MESSAGE = Message(
    idempotency_key="INC-42:1:drill:log:trigger",
    event="incident.opened",
    title="SEV2 INC-42: checkout 5xx above 2%",
    text="Opened by HighErrorRate.\nTeam: payments",
    payload={"id": "INC-42", "labels": {"customer_email": "someone@example.com"}},
)


def test_logs_one_page_sent_line_and_reports_delivered() -> None:
    with capture_logs() as logs:
        delivery = LogChannel("drill").send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "logged")
    assert logs == [
        {
            "event": "page_sent",
            "log_level": "info",
            "channel": "drill",
            # "event" is structlog's key for the line's name, so the message's event has its own.
            "incident_event": "incident.opened",
            "idempotency_key": "INC-42:1:drill:log:trigger",
            "title": "SEV2 INC-42: checkout 5xx above 2%",
        }
    ]


def test_never_logs_payload_or_text() -> None:
    # Payloads carry label values nobody vetted for logs (here an email address).
    with capture_logs() as logs:
        LogChannel().send(MESSAGE, now=NOW)

    [line] = logs
    assert "someone@example.com" not in repr(line)
    assert "HighErrorRate" not in repr(line)


def test_satisfies_channel_protocol() -> None:
    # The annotation is the check (mypy --strict); the assert pins the runtime values.
    channel: Channel = LogChannel()
    assert (channel.name, channel.kind) == ("log", "log")
