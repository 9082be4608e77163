"""Exceptions raised by sevrouter.

    SevrouterError
    ├── PayloadError        a webhook body we will never accept (-> 400 naming the field)
    ├── AuthError           missing or wrong credentials (-> 401)
    └── ConfigError         a rule set that does not validate (file, path, value in the message)

Redis being unreachable is redis-py's own `RedisError`, answered with a 503 at the boundary.

Failures of outbound channels are not exceptions: a channel returns a `Delivery` that says
whether to retry (see `router/notify/base.py`).
"""

from __future__ import annotations


class SevrouterError(Exception):
    """Base of every error sevrouter raises on purpose."""


class PayloadError(SevrouterError):
    """The body is not a payload of the integration's format.

    `field` is a dotted path into the body (`alerts.3.startsAt`), empty for the body as a whole.
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class AuthError(SevrouterError):
    """The request's credentials are missing or wrong. The message never contains a secret."""


class ConfigError(SevrouterError):
    """A rule set that does not validate; `problems` lists every error, each naming its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
