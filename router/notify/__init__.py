"""Outbound channels: deliver a rendered `Message` once and say whether to retry.

One module per channel (`webhook`, `log`); `base` holds the shared types and the classification
of HTTP answers; `retry` decides when to try again. Scheduling and bookkeeping of pages live
with the page jobs, not here.
"""

from router.notify.base import (
    Channel,
    Delivery,
    Message,
    Outcome,
    classify_response,
    classify_transport_error,
    parse_retry_after,
)
from router.notify.log import LogChannel
from router.notify.retry import RetryPolicy, next_delay
from router.notify.webhook import WebhookChannel, sign, verify

__all__ = [
    "Channel",
    "Delivery",
    "LogChannel",
    "Message",
    "Outcome",
    "RetryPolicy",
    "WebhookChannel",
    "classify_response",
    "classify_transport_error",
    "next_delay",
    "parse_retry_after",
    "sign",
    "verify",
]
