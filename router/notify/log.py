"""A channel that only writes a log line: the default when nothing else is configured, and the
safe target for drills and dry runs."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import structlog

from router.notify.base import Delivery, Message, Outcome

log = structlog.get_logger(__name__)


class LogChannel:
    """Logs each `Message` as one `page_sent` event and reports it delivered.

    Fields: `channel`, `incident_event` (the message's event), `idempotency_key`, `title`.
    The payload is not logged (it can be large and carry label values nobody vetted for logs);
    the idempotency key leads to it. Satisfies `router.notify.base.Channel`.
    """

    kind: Final = "log"

    def __init__(self, name: str = "log") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"LogChannel(name={self.name!r})"

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """Write the log line. `now` is unused: the log processor stamps its own time."""
        log.info(
            "page_sent",
            channel=self.name,
            # Not `event=`: structlog's positional event name already has that key, and passing
            # both is a TypeError.
            incident_event=message.event,
            idempotency_key=message.idempotency_key,
            title=message.title,
        )
        return Delivery(Outcome.DELIVERED, "logged")
