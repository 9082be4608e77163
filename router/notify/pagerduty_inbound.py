"""PagerDuty v3 webhooks, the inbound direction: an acknowledge or resolve done in PagerDuty
updates the incident here. Pure functions: verify the signature, then read the event.

A v3 webhook (developer.pagerduty.com, "Webhooks v3 Overview") is one JSON object:

    {"event": {"id": "...", "event_type": "incident.acknowledged", "resource_type": "incident",
               "occurred_at": "...", "agent": {"summary": "Tenex Engineer", ...} | null,
               "data": {"id": "PGR0VU2", "type": "incident", "status": "acknowledged",
                        "incident_key": "INC-42", ...}}}

`event.data.incident_key` is the PagerDuty incident's de-duplication key: the Events API v2
`dedup_key` of the alert that opened it, which `PagerDutyChannel` sets to our incident id. It
is null for incidents PagerDuty holds no key for (the REST reference: "Incidents with child
alerts do not have an incident key"), and a PagerDuty-generated value for incidents opened
elsewhere; the payload carries no alert list to look further.

Signatures ("Verifying Signatures"): `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, the
lowercase hex HMAC-SHA256 of the raw body keyed by the webhook subscription's secret; several
while a secret is being rotated. v3 signs no timestamp, so replays cannot be refused here:
acting on an event twice must be harmless, which acknowledge and resolve are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from router.errors import PayloadError
from router.secrets import Secret

SIGNATURE_HEADER: Final = "X-PagerDuty-Signature"
# The Events API caps dedup_key at 255 characters; longer is not a key we could have sent.
MAX_KEY_CHARS: Final = 255
# The actor lands on the incident timeline and in logs: one short printable line.
MAX_ACTOR_CHARS: Final = 100
# Who acted when the event has no agent (PagerDuty itself, e.g. an auto-resolve timeout).
UNKNOWN_ACTOR: Final = "PagerDuty"

_ACTIONS: Final[Mapping[str, Literal["acknowledge", "resolve"]]] = {
    "incident.acknowledged": "acknowledge",
    "incident.resolved": "resolve",
}


@dataclass(frozen=True, slots=True)
class PagerDutyAction:
    """An acknowledge or resolve done in PagerDuty, to apply to our incident `incident`.

    `incident` is the PagerDuty incident key, unchecked: the caller must look it up and ignore
    keys that name no incident of ours. PagerDuty also reports the acknowledges and resolves
    sevrouter itself sent, so applying one to an incident already in that state must be a
    no-op. `actor` is the PagerDuty agent's display name ("Tenex Engineer"), or "PagerDuty".
    """

    incident: str
    action: Literal["acknowledge", "resolve"]
    actor: str


def verify_signature(body: bytes, header: str | None, secrets: Sequence[Secret]) -> bool:
    """Whether one of the `v1=` signatures in `header` is the HMAC of `body` under a secret.

    Pass the raw body bytes as received (before any JSON parsing) and the header value, None
    when absent. Several secrets may be given while the subscription's secret is rotated.
    Signatures of other versions are ignored; the comparison is constant-time.
    """
    if not header or not secrets:
        return False
    offered = [
        part.strip()[len("v1=") :].lower().encode(errors="replace")
        for part in header.split(",")
        if part.strip().startswith("v1=")
    ]
    expected = [
        hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest().encode()
        for secret in secrets
        if secret.reveal()  # an empty key would let anyone sign
    ]
    # Every pair is compared, so timing does not tell which secret or position matched.
    matches = [hmac.compare_digest(mine, theirs) for mine in expected for theirs in offered]
    return any(matches)


def parse_event(body: bytes) -> PagerDutyAction | None:
    """The action a v3 webhook body asks for, or None when there is nothing to apply.

    None for event types other than `incident.acknowledged` and `incident.resolved` (including
    the `pagey.ping` test event) and for incidents without an `incident_key`. Raises
    `PayloadError` naming the field when the body is not a v3 webhook event.
    """
    try:
        document = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise PayloadError("body is not JSON") from None
    if not isinstance(document, dict):
        raise PayloadError("body must be a JSON object")
    event = _object(document.get("event"), "event")
    event_type = event.get("event_type")
    if not isinstance(event_type, str):
        raise PayloadError("must be a string", "event.event_type")
    action = _ACTIONS.get(event_type)
    if action is None:
        return None
    data = _object(event.get("data"), "event.data")
    key = data.get("incident_key")
    if key is None or key == "":
        return None
    if not isinstance(key, str):
        raise PayloadError("must be a string or null", "event.data.incident_key")
    if len(key) > MAX_KEY_CHARS:
        raise PayloadError(f"longer than {MAX_KEY_CHARS} characters", "event.data.incident_key")
    return PagerDutyAction(incident=key, action=action, actor=_actor(event.get("agent")))


def _actor(agent: object) -> str:
    if agent is None:
        return UNKNOWN_ACTOR
    summary = _object(agent, "event.agent").get("summary")
    if summary is None:
        return UNKNOWN_ACTOR
    if not isinstance(summary, str):
        raise PayloadError("must be a string", "event.agent.summary")
    # Control characters would let a sender forge log lines or timeline entries.
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in summary).split())
    if len(text) > MAX_ACTOR_CHARS:
        text = text[: MAX_ACTOR_CHARS - 1] + "\u2026"
    return text or UNKNOWN_ACTOR


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError("must be an object", field)
    return value
