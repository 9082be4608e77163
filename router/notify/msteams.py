"""Microsoft Teams through a Workflows webhook: one Adaptive Card per message (FORMATS.md 3.4).

The card is rendered from `msteams.card.j2` (overridable, see `router.notify.render`), which
renders the card itself, a JSON object; the channel wraps it in the Workflows envelope

    {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
     "contentUrl": null, "content": <card>}]}

so an overridden template cannot get the envelope wrong. Besides
`router.notify.render.context` the template sees `color` (`card_color`) and `opened_at`
(`"2025-01-01 09:30 UTC"`). Legacy Office 365 connector URLs (MessageCard) are not supported:
Microsoft is retiring them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import jinja2

from router.channelschema import TeamsChannelConfig

# Package-internal helpers of the generic webhook: URL validation that also yields every form of
# the URL's signature an error body might echo, and the capped response read.
from router.notify._http import USER_AGENT, read_capped
from router.notify.base import (
    RESOLVE_EVENTS,
    Delivery,
    Message,
    Outcome,
    body_excerpt,
    classify_response,
    classify_transport_error,
)
from router.notify.render import Renderer
from router.notify.webhook import _validate as _validate_url
from router.secrets import Secret

CARD_TEMPLATE: Final = "msteams.card.j2"
CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"

# Teams refuses messages over about 28 KB, and a Workflows URL accepts the request (202) before
# the flow fails on it, so an oversized card is lost silently. The margin covers what the flow
# adds around the card.
MAX_BODY_BYTES: Final = 25_000
ELLIPSIS: Final = "\u2026"
# Strings shorter than this are not worth cutting further: labels, ids, URLs in facts.
_MIN_CUT_CHARS: Final = 64
# Only text meant for reading is cut; URLs and type names must stay whole.
_CUTTABLE_KEYS: Final = frozenset({"text", "value"})

_CLOSED_STATES: Final = frozenset({"mitigated", "resolved", "closed"})
_SEVERITY_COLORS: Final = {
    "SEV1": "attention",
    "SEV2": "attention",
    "SEV3": "warning",
    "SEV4": "good",
}


class TeamsChannel:
    """Posts each `Message` as an Adaptive Card to a Teams Workflows URL.

    Satisfies `router.notify.base.Channel`. `url` is a secret (its `sig=` query parameter is
    the credential): it never appears in `repr`, `Delivery.detail` or exceptions. An unusable
    URL or timeout raises `ConfigError` here. `client` is shared (pooling); redirects are never
    followed. Any 2xx is delivered (Workflows answers 202 and runs the flow later, so failures
    inside the flow are not seen here); 429 and 5xx are retried, other answers are permanent.
    """

    kind: Final = "msteams"

    def __init__(
        self,
        config: TeamsChannelConfig,
        *,
        url: Secret,
        client: httpx.Client,
        renderer: Renderer,
    ) -> None:
        # What an error body must never echo into `Delivery.detail`.
        self._redact = _validate_url(config.name, url, config.timeout)
        self.name = config.name
        self._url = url
        self._client = client
        self._renderer = renderer
        self._timeout = httpx.Timeout(config.timeout)

    def __repr__(self) -> str:
        return f"TeamsChannel(name={self.name!r})"

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """POST `message`'s card once and classify the answer. Never raises for delivery failures.

        `now` (timezone-aware) is the reference for an HTTP-date Retry-After. A template that
        fails or does not render a JSON object is a configuration problem: `PERMANENT` without
        a request, so the fallback channel takes over.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        try:
            card = render_card(self._renderer, message)
        except _RenderError as problem:
            reason = body_excerpt(str(problem).encode())
            return Delivery(Outcome.PERMANENT, f"template {CARD_TEMPLATE}: {reason}")
        body = encode_envelope(card)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
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


class _RenderError(Exception):
    """The card template failed or rendered something other than a JSON object."""


def render_card(renderer: Renderer, message: Message) -> dict[str, Any]:
    """The Adaptive Card (the envelope's `content`) for `message`.

    Raises `_RenderError` when the template fails or its output is not a JSON object.
    """
    extra = {"color": card_color(message), "opened_at": opened_at(message)}
    try:
        source = renderer.render(CARD_TEMPLATE, message, **extra)
    except jinja2.TemplateError as exc:
        raise _RenderError(f"{type(exc).__name__}: {exc}") from None
    try:
        card = json.loads(source)
    except ValueError as exc:
        raise _RenderError(f"not JSON: {exc}") from None
    if not isinstance(card, dict):
        raise _RenderError("must render a JSON object (the Adaptive Card)")
    return card


def encode_envelope(card: dict[str, Any], limit: int = MAX_BODY_BYTES) -> bytes:
    """The exact bytes posted: `card` in the Workflows envelope, at most `limit` bytes if it can
    be done by cutting the card's longest texts (which are modified in place)."""
    while True:
        body = _encode(
            {
                "type": "message",
                "attachments": [
                    {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
                ],
            }
        )
        if len(body) <= limit or not _cut_longest_text(card, excess=len(body) - limit):
            # Past the cutting there is nothing left to make smaller without losing the page's
            # point; Teams gets to decide.
            return body


def card_color(message: Message) -> str:
    """The headline's Adaptive Card colour: `good` once the incident is mitigated or resolved,
    else by severity (SEV1/SEV2 `attention`, SEV3 `warning`, SEV4 `good`), `default` when the
    severity is unknown."""
    state = message.payload.get("state")
    if message.event in RESOLVE_EVENTS or state in _CLOSED_STATES:
        return "good"
    severity = message.severity or message.payload.get("severity") or ""
    return _SEVERITY_COLORS.get(str(severity), "default")


def opened_at(message: Message) -> str:
    """The incident's `opened_at` as `"2025-01-01 09:30 UTC"`, the raw value if it is not an
    ISO 8601 time, or `""` when absent."""
    value = message.payload.get("opened_at")
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if when.tzinfo is None:
        # The incident store writes UTC.
        when = when.replace(tzinfo=UTC)
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _cut_longest_text(card: dict[str, Any], *, excess: int) -> bool:
    """Shorten the longest readable string in `card` by at least `excess` bytes' worth of
    characters; False when no string is long enough to be worth cutting."""
    longest: tuple[dict[str, Any], str] | None = None
    longest_len = _MIN_CUT_CHARS - 1
    for holder, key in _text_slots(card):
        if len(holder[key]) > longest_len:
            longest, longest_len = (holder, key), len(holder[key])
    if longest is None:
        return False
    holder, key = longest
    # Cut by UTF-8 bytes, as the limit counts them (a CJK character is three). JSON escapes
    # (quotes, newlines) make the encoded string a little longer than this: the next round cuts
    # again. Never below the threshold, so the rounds end.
    encoded = holder[key].encode()
    keep_bytes = len(encoded) - excess - len(ELLIPSIS.encode())
    kept = encoded[: max(0, keep_bytes)].decode(errors="ignore")  # no half characters
    if len(kept) < _MIN_CUT_CHARS // 2:
        kept = holder[key][: _MIN_CUT_CHARS // 2]
    holder[key] = kept + ELLIPSIS
    return True


def _text_slots(node: object) -> Iterator[tuple[dict[str, Any], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _CUTTABLE_KEYS and isinstance(value, str):
                yield node, key
            else:
                yield from _text_slots(value)
    elif isinstance(node, list):
        for item in node:
            yield from _text_slots(item)


def _encode(document: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON. ensure_ascii=False: \u escapes would triple the size of
    # non-Latin text against the byte limit.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
