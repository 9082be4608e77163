"""Who is calling: API tokens for write calls, and signed one-click links in pages.

Tokens map to people (so the timeline says who acknowledged). A one-click link carries its own
proof: HMAC-SHA256 over (incident, action, person, expiry) with the link secret, so a responder
can act from a phone without logging in, and a link stops working after it expires.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlencode

from router.secrets import Secret

LINK_ACTIONS = ("ack", "resolve")


def person_for_token(tokens: Mapping[str, str], header: str) -> str | None:
    """The person an `Authorization: Bearer <token>` header belongs to, else None.

    Every configured token is compared in constant time, so timing reveals nothing.
    """
    scheme, _, candidate = header.partition(" ")
    if scheme.lower() != "bearer" or not candidate.strip():
        return None
    found = None
    for token, person in tokens.items():
        if hmac.compare_digest(token.encode(), candidate.strip().encode()):
            found = person
    return found


def link_signature(secret: Secret, incident: str, action: str, person: str, expires: int) -> str:
    message = f"{incident}\n{action}\n{person}\n{expires}".encode()
    return hmac.new(secret.reveal().encode(), message, hashlib.sha256).hexdigest()


def verify_link(
    secret: Secret,
    incident: str,
    action: str,
    person: str,
    expires: int,
    signature: str,
    now: datetime,
) -> str | None:
    """None when the link is good, else why not (for the page shown to the responder)."""
    if action not in LINK_ACTIONS:
        return f"unknown action {action!r}"
    expected = link_signature(secret, incident, action, person, expires)
    if not hmac.compare_digest(expected, signature.lower()):
        return "this link is not valid"
    if now.timestamp() > expires:
        return "this link has expired; use the incident page or the CLI"
    return None


def make_links(
    base_url: str,
    secret: Secret | None,
    incident: str,
    person: str,
    now: datetime,
    ttl_seconds: int,
) -> dict[str, str]:
    """Signed ack/resolve links (when a secret is configured) and the incident's API URL."""
    if not base_url:
        return {}
    base = base_url.rstrip("/")
    links = {"incident": f"{base}/api/v1/incidents/{incident}"}
    if secret is None:
        return links
    expires = int((now + timedelta(seconds=ttl_seconds)).timestamp())
    who = person or "responder"
    for action in LINK_ACTIONS:
        query = urlencode(
            {
                "incident": incident,
                "person": who,
                "expires": expires,
                "sig": link_signature(secret, incident, action, who, expires),
            }
        )
        links[action] = f"{base}/act/{action}?{query}"
    return links
