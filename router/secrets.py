"""Secrets referenced from rule files by environment variable or file, never written in them."""

from __future__ import annotations

import hmac


class Secret:
    """A string that never prints: `repr`, `str` and logs show `Secret('**********')`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def matches(self, candidate: str | bytes) -> bool:
        """Constant-time comparison, so response timing does not leak the secret."""
        if isinstance(candidate, str):
            candidate = candidate.encode()
        return hmac.compare_digest(self._value.encode(), candidate)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)
