"""What every outbound channel shares: the message, the outcome of one attempt, and how HTTP
answers and transport failures map onto that outcome.

A channel never raises for a failed delivery; it returns a `Delivery` whose `outcome` tells the
page job what to do next: stop (`DELIVERED`), try again later (`RETRY`, see `router.notify.retry`),
or give up and record the failure (`PERMANENT`). Exceptions are left for programming errors.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx

from router.secrets import Secret

# How much of an error body makes it into `Delivery.detail`: enough to read "invalid_payload" or
# a JSON error object, not enough to flood a log line or an incident timeline.
EXCERPT_CHARS = 200
_REDACTED = "**********"

# Visible ASCII with inner spaces: the value goes into an HTTP header, where CR/LF would split
# the request and non-ASCII is not portable.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_DELTA_SECONDS = re.compile(r"[0-9]+")
_WHITESPACE = re.compile(r"\s+")


class Outcome(StrEnum):
    """What one delivery attempt achieved, and so what the caller does next."""

    DELIVERED = "delivered"  # the receiver accepted it: done
    RETRY = "retry"  # transient: try again after `router.notify.retry.next_delay`
    PERMANENT = "permanent"  # retrying the same request cannot succeed: record and stop


# What happened to the incident, as channels see it. Paging APIs map these onto their own
# actions: the first four trigger (or re-trigger) an alert, acknowledged acknowledges it,
# mitigated and resolved resolve it; notify and reminder are informational posts.
EVENTS = (
    "incident.opened",
    "incident.severity_raised",
    "incident.reopened",
    "incident.escalated",
    "incident.acknowledged",
    "incident.mitigated",
    "incident.resolved",
    "incident.notify",
    "incident.reminder",
)
TRIGGER_EVENTS = frozenset(EVENTS[:4])
RESOLVE_EVENTS = frozenset({"incident.mitigated", "incident.resolved"})


class ThreadStore(Protocol):
    """Remembers a channel's handle for an incident's first message (Slack's `ts`), so later
    messages about the same incident are threaded under it."""

    def get(self, channel: str, incident: str) -> str | None: ...

    def set(self, channel: str, incident: str, handle: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One notification, already rendered, addressed to nobody in particular.

    `idempotency_key` identifies the page (incident, step, target, channel, kind); a receiver
    dedupes on it, so a retry after a lost response is harmless. It and `event` travel in HTTP
    headers and must be visible ASCII (inner spaces allowed); `ValueError` otherwise.
    `payload` must be JSON-serialisable: the webhook channel posts it as `incident`.
    """

    idempotency_key: str
    event: str  # one of EVENTS
    title: str  # one line for humans
    text: str  # a few lines for humans
    payload: Mapping[str, Any]
    incident: str = ""  # "INC-42": PagerDuty's dedup_key, Opsgenie's alias, Slack's thread
    severity: str = ""  # "SEV1".."SEV4"
    # The paged person's address on this channel (an email address, a Slack member id),
    # None when the page goes to the channel's own destination.
    recipient: str | None = None
    # Signed one-click links: {"ack": url, "resolve": url, "incident": url}; may be empty.
    links: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("idempotency_key", "event"):
            if not _HEADER_VALUE.fullmatch(getattr(self, name)):
                raise ValueError(f"Message.{name} must be non-empty visible ASCII")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The result of one attempt on one channel.

    `detail` is short and safe to log and to show on the incident timeline: it never contains
    the channel's URL, token or signing secret. `retry_after` is the receiver's Retry-After in
    seconds from the attempt (never negative); `next_delay` weighs it against the backoff.
    """

    outcome: Outcome
    detail: str  # "HTTP 503", "connect timeout", "HTTP 400: invalid_payload"
    status_code: int | None = None
    retry_after: float | None = None


class Channel(Protocol):
    """Anything that can deliver a `Message`. `send` reads the clock only through `now`."""

    @property
    def name(self) -> str:
        """The channel's name in the rule file, e.g. "oncall-webhook"."""
        ...

    @property
    def kind(self) -> str:
        """The channel type: "webhook", "log", ..."""
        ...

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """Make one attempt. Must not raise for delivery failures: return a `Delivery`."""
        ...


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait according to a Retry-After header value, or None if absent or unreadable.

    Both RFC 9110 forms are accepted: delta-seconds (`"7"`) and an HTTP-date, which is measured
    from `now` (timezone-aware). A date in the past gives 0.0. Capping is the retry policy's job.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        # An unreadable header is the receiver's bug; fall back to our own backoff.
        return None
    if when.tzinfo is None:
        # parsedate_to_datetime returns a naive datetime for "-0000"; HTTP-dates are GMT.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - _aware(now)).total_seconds())


def classify_response(
    response: httpx.Response,
    *,
    now: datetime,
    body: bytes | None = None,
    redact: Collection[Secret] = (),
) -> Delivery:
    """Map an HTTP answer onto an outcome, as Alertmanager's `Retrier.Check` does, plus 429.

    2xx is delivered. 429 and 5xx are retried, carrying Retry-After (in seconds, measured from
    `now`). Everything else, 3xx included (redirects are never followed: a moved endpoint is a
    configuration change), is permanent, and `detail` quotes the start of the body so the
    operator can see why.

    `body` is the bytes to quote, for callers that streamed the response and read only its
    beginning; by default `response.content`, which must then have been read. Every secret in
    `redact` is masked out of the quote, so a receiver echoing its own URL cannot leak it.
    """
    code = response.status_code
    if 200 <= code < 300:
        return Delivery(Outcome.DELIVERED, f"HTTP {code}", status_code=code)
    if code == 429 or 500 <= code < 600:
        return Delivery(
            Outcome.RETRY,
            f"HTTP {code}",
            status_code=code,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=now),
        )
    excerpt = body_excerpt(response.content if body is None else body, redact=redact)
    detail = f"HTTP {code}: {excerpt}" if excerpt else f"HTTP {code}"
    return Delivery(Outcome.PERMANENT, detail, status_code=code)


def body_excerpt(body: bytes, *, redact: Collection[Secret] = ()) -> str:
    """One line of at most `EXCERPT_CHARS` characters from a response body, secrets masked."""
    text = body.decode("utf-8", errors="replace")
    # Control characters and newlines would let a receiver forge log lines.
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = _WHITESPACE.sub(" ", text).strip()
    # Mask before truncating so that a secret cut in half by the truncation is still masked;
    # longest first so a URL is masked whole rather than around its already-masked path.
    for secret in sorted(redact, key=lambda s: len(s.reveal()), reverse=True):
        if secret.reveal():
            text = text.replace(secret.reveal(), _REDACTED)
    if len(text) > EXCERPT_CHARS:
        text = text[: EXCERPT_CHARS - 3] + "..."
    return text


# Checked in order, so subclasses come before their bases (ConnectTimeout before ConnectError).
_TRANSPORT_DETAILS: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.ConnectTimeout, "connect timeout"),
    (httpx.ReadTimeout, "read timeout"),
    (httpx.WriteTimeout, "write timeout"),
    (httpx.PoolTimeout, "pool timeout"),
    (httpx.TimeoutException, "timeout"),
    (httpx.ProxyError, "proxy error"),
    (httpx.ConnectError, "connect error"),
    (httpx.ReadError, "read error"),
    (httpx.WriteError, "write error"),
    (httpx.RemoteProtocolError, "remote protocol error"),
)

# The OS-level causes worth naming, found on the exception's cause chain (httpx wraps httpcore,
# which wraps the socket error).
_CAUSE_DETAILS: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
    (socket.gaierror, "name resolution failed"),
    (ssl.SSLCertVerificationError, "TLS certificate verification failed"),
    (ssl.SSLError, "TLS error"),
)


def classify_transport_error(exc: httpx.TransportError) -> Delivery:
    """Map a failure to get any HTTP answer onto an outcome; `detail` names the failure's kind.

    Network failures and timeouts are retried: the receiver may never have seen the request,
    and if it did, the idempotency key makes the repeat harmless. Two are permanent because
    the same request can never succeed: an unsupported URL scheme and a request httpx itself
    refuses to send (`LocalProtocolError`). The exception's text is never quoted: it can carry
    the host or URL.
    """
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Delivery(Outcome.PERMANENT, "unsupported URL scheme")
    if isinstance(exc, httpx.LocalProtocolError):
        return Delivery(Outcome.PERMANENT, "invalid request")
    detail = next(
        (text for kind, text in _TRANSPORT_DETAILS if isinstance(exc, kind)), "transport error"
    )
    if isinstance(exc, httpx.ConnectError | httpx.ReadError | httpx.WriteError):
        detail = _cause_detail(exc) or detail
    return Delivery(Outcome.RETRY, detail)


def _cause_detail(exc: BaseException) -> str | None:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        for kind, text in _CAUSE_DETAILS:
            if isinstance(cause, kind):
                return text
        cause = cause.__cause__ or cause.__context__
    return None


def _aware(now: datetime) -> datetime:
    # A naive `now` would be read as local time by arithmetic and `timestamp()`: refuse it.
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now
