"""Checking a webhook's credentials: bearer token, basic auth, Grafana's HMAC signature.

Header credentials are checked before the body is read, so an unauthenticated sender cannot make
us buffer a megabyte; the HMAC needs the raw bytes and is checked after. Comparisons are constant
time and no message ever contains a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping

from router.errors import AuthError
from router.ruleschema import Integration
from router.schemabase import SecretRef
from router.secrets import Secret

# Maps a secret reference from the rule file to its resolved value (`Ruleset.secret`).
SecretResolver = Callable[[SecretRef], Secret]


def check_headers(
    integration: Integration, headers: Mapping[str, str], secret_for: SecretResolver
) -> None:
    """Raise AuthError unless the Authorization header satisfies the integration's auth."""
    auth = integration.auth
    if auth.bearer is not None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            raise AuthError("missing bearer token")
        if not secret_for(auth.bearer).matches(credentials.strip()):
            raise AuthError("invalid bearer token")
    if auth.basic is not None:
        username, password = _basic_credentials(headers.get("authorization", ""))
        expected_user = Secret(auth.basic.username)
        # Both compared, always, so timing does not reveal which one was wrong.
        user_ok = expected_user.matches(username)
        password_ok = secret_for(auth.basic.password).matches(password)
        if not (user_ok and password_ok):
            raise AuthError("invalid basic auth credentials")


def check_signature(
    integration: Integration,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: SecretResolver,
    *,
    now: float,
) -> None:
    """Raise AuthError unless the body carries a valid Grafana HMAC signature (when configured)."""
    config = integration.auth.hmac
    if config is None:
        return
    signature = headers.get(config.header.lower(), "").strip().lower()
    if not signature:
        raise AuthError(f"missing {config.header} signature header")
    message = body
    if config.timestamp_header is not None:
        raw = headers.get(config.timestamp_header.lower(), "").strip()
        if not raw.isdigit():
            raise AuthError(f"missing or invalid {config.timestamp_header} timestamp header")
        if abs(now - int(raw)) > config.max_age:
            raise AuthError(f"{config.timestamp_header} is outside the replay window")
        message = raw.encode() + b":" + body
    expected = sign(secret_for(config.secret), message)
    if not hmac.compare_digest(expected, signature):
        raise AuthError("invalid signature")


def sign(secret: Secret, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256, Grafana's webhook signing scheme."""
    return hmac.new(secret.reveal().encode(), message, hashlib.sha256).hexdigest()


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthError("missing basic auth credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("malformed basic auth credentials") from None
    username, separator, password = decoded.partition(":")
    if not separator:
        raise AuthError("malformed basic auth credentials")
    return username, password
