"""The generic outbound webhook: one signed JSON POST per page.

Wire format (one compact JSON object, UTF-8):

    {"version": "1", "event": "incident.opened", "idempotency_key": "INC-42:1:...",
     "title": "...", "text": "...", "incident": {...}}

Headers: `Content-Type: application/json`, `User-Agent: sevrouter/<version>`,
`X-Sevrouter-Event`, `X-Sevrouter-Idempotency-Key` (dedupe on it: retries repeat it), and when a
signing secret is configured `X-Sevrouter-Timestamp` (Unix seconds) and `X-Sevrouter-Signature`,
the lowercase hex HMAC-SHA256 of `f"{timestamp}:".encode() + body` keyed by the secret. That is
Grafana's webhook HMAC scheme with a timestamp header (FORMATS.md 2.5), so one verifier serves
both directions; `verify` below is that verifier.

Delivery mirrors Alertmanager's (FORMATS.md 1.7, 3.5) plus 429: see `classify_response`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Final

import httpx

from router.errors import ConfigError
from router.notify._http import USER_AGENT, read_capped
from router.notify.base import Delivery, Message, classify_response, classify_transport_error
from router.secrets import Secret

WIRE_VERSION: Final = "1"
EVENT_HEADER: Final = "X-Sevrouter-Event"
IDEMPOTENCY_HEADER: Final = "X-Sevrouter-Idempotency-Key"
TIMESTAMP_HEADER: Final = "X-Sevrouter-Timestamp"
SIGNATURE_HEADER: Final = "X-Sevrouter-Signature"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class WebhookChannel:
    """POSTs each `Message` to one URL. Satisfies `router.notify.base.Channel`.

    `url` is a secret because webhook URLs usually embed a token: it never appears in
    `repr`, in `Delivery.detail` (echoes of it in error bodies are masked) or in exceptions.
    `client` is shared by the worker process (connection pooling); redirects are never followed
    whatever the client's setting. `timeout` bounds each phase (connect, write, each read) in
    seconds. An unusable URL or timeout raises `ConfigError` here, not at send time.

    httpx itself logs every request's full URL at INFO on the `httpx` logger: keep that logger
    at WARNING wherever logging is configured.
    """

    kind: Final = "webhook"

    def __init__(
        self,
        name: str,
        url: Secret,
        *,
        signing_secret: Secret | None,
        client: httpx.Client,
        timeout: float = 10.0,
    ) -> None:
        url_parts = _validate(name, url, timeout)
        self.name = name
        self._url = url
        self._signing_secret = signing_secret
        self._client = client
        self._timeout = httpx.Timeout(timeout)
        # What an error body must never echo into `Delivery.detail`.
        self._redact = url_parts + ((signing_secret,) if signing_secret is not None else ())

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r}, signed={self._signing_secret is not None})"

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """POST `message` once and classify the answer. Never raises for delivery failures.

        `now` (timezone-aware) is the signature's timestamp and the reference for an
        HTTP-date Retry-After. Raises `TypeError`/`ValueError` only for a payload that is not
        JSON (a bug upstream, not a delivery failure).
        """
        timestamp = _unix_seconds(now)  # also refuses a naive `now` before anything is sent
        body = encode_message(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: message.event,
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        if self._signing_secret is not None:
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self._signing_secret, timestamp, body)
        try:
            with self._client.stream(
                "POST",
                self._url.reveal(),
                content=body,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                excerpt = read_capped(response)
        except httpx.TransportError as exc:
            return classify_transport_error(exc)
        return classify_response(response, now=now, body=excerpt, redact=self._redact)


def encode_message(message: Message) -> bytes:
    """The exact bytes `WebhookChannel` posts (and signs) for `message`."""
    document = {
        "version": WIRE_VERSION,
        "event": message.event,
        "idempotency_key": message.idempotency_key,
        "title": message.title,
        "text": message.text,
        "incident": message.payload,
    }
    if message.recipient:
        document["recipient"] = message.recipient
    if message.links:
        document["links"] = dict(message.links)
    # allow_nan=False: NaN and Infinity are not JSON and strict receivers reject them.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sign(secret: Secret, timestamp: int, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `f"{timestamp}:".encode() + body`, keyed by `secret`."""
    return _signature(secret, str(timestamp), body)


def verify(
    secret: Secret,
    *,
    timestamp: str | int,
    body: bytes,
    signature: str,
    now: datetime,
    tolerance: float = 300.0,
) -> bool:
    """Whether `signature` is `secret`'s signature of `body` at `timestamp`, made recently.

    Pass the header values as received and the raw body bytes (before any JSON parsing).
    False when the timestamp is not decimal Unix seconds, is more than `tolerance` seconds
    away from `now` (a replayed or badly clocked request), or the signature does not match.
    The comparison is constant-time.
    """
    text = str(timestamp)
    if not _TIMESTAMP.fullmatch(text):
        return False
    if abs(_unix_seconds(now) - int(text)) > tolerance:
        return False
    expected = _signature(secret, text, body).encode()
    return hmac.compare_digest(expected, signature.strip().lower().encode(errors="replace"))


def _signature(secret: Secret, timestamp: str, body: bytes) -> str:
    # The timestamp is signed as the header carries it, so a verifier never re-formats it.
    message = timestamp.encode() + b":" + body
    return hmac.new(secret.reveal().encode(), message, hashlib.sha256).hexdigest()


def _validate(name: str, url: Secret, timeout: float) -> tuple[Secret, ...]:
    """Validate the channel's settings; return the parts of the URL to mask in error details."""
    problems: list[str] = []
    try:
        parsed = httpx.URL(url.reveal())
    except httpx.InvalidURL:
        # `from None` and no quoting: the parser's message can contain the URL.
        raise ConfigError([f"channel {name!r}: url is not a valid URL"]) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        problems.append(f"channel {name!r}: url must be an absolute http:// or https:// URL")
    if not timeout > 0:
        problems.append(f"channel {name!r}: timeout must be > 0 seconds")
    if problems:
        raise ConfigError(problems)
    # Tokens live in the path (Slack-style hooks), the query (?token=) or the userinfo, and an
    # error body may echo them encoded or decoded. A bare "/" path is not secret, and masking
    # it would garble every excerpt.
    parts = [
        url.reveal(),
        parsed.raw_path.decode("ascii"),  # path and query, as sent
        parsed.path,  # percent-decoded
        parsed.query.decode("ascii"),
        parsed.userinfo.decode("ascii"),
        parsed.username,
        parsed.password,
    ]
    return tuple(Secret(part) for part in parts if len(part) > 1)


def _unix_seconds(now: datetime) -> int:
    # A naive `now` would be read as local time by `timestamp()`: refuse it.
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp())
