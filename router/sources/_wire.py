"""How request bytes become private wire models, and how their failures become `PayloadError`.

Every wire model in this package derives from `WireModel`; every body is read through `load`, so
no pydantic `ValidationError` ever leaves `router/sources/`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from router.errors import PayloadError

# Inputs quoted back in an error message are cut here: the message is for a human reading a
# sender's error log, and a 10k-char label value would drown it.
_QUOTE_LIMIT = 64


class WireModel(BaseModel):
    """Base of every wire model: tolerant of new keys, strict about the types of known ones."""

    model_config = ConfigDict(
        # Alertmanager and Grafana add keys in minor releases (truncatedAlerts, routeLabels,
        # notification_reason, enrichments, ...); an unknown key must never fail a delivery.
        extra="ignore",
        # No coercion: a label value 1 is a sender bug to report, not a "1" to invent; a time
        # is a string we parse ourselves (pydantic's datetime also takes "1700000000").
        strict=True,
        # NaN/Infinity in Grafana `values` would poison every JSON encoder downstream.
        allow_inf_nan=False,
        frozen=True,
    )


class WireAlert(WireModel):
    """The alert object shared by Alertmanager (version 4) and Grafana unified (version 1)."""

    # Absent in pre-2017 senders: derived from endsAt (see `_common.lifecycle`).
    status: Literal["firing", "resolved"] | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    starts_at: str = Field(alias="startsAt")
    ends_at: str | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    # Absent before Alertmanager v0.19.
    fingerprint: str = ""


M = TypeVar("M", bound=BaseModel)


def load(model: type[M], body: bytes) -> M:
    """Validate `body` as `model`, turning any failure into a `PayloadError`."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise payload_error(exc) from None


def payload_error(exc: ValidationError) -> PayloadError:
    """The first problem pydantic found, with its location as a dotted path into the body."""
    # Only the first: a hostile body can hold thousands of errors, and the sender needs one to
    # start fixing. pydantic orders them by field declaration, so `version` comes before `alerts`.
    first = exc.errors(include_url=False)[0]
    return PayloadError(_message(first), ".".join(str(part) for part in first["loc"]))


_EXPECTED = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        return f"body is not JSON: {ctx.get('error', 'invalid')}"
    if kind == "missing":
        return "field required"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {json_type(error['input'])}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {quote(error['input'])}"
    if kind == "finite_number":
        return "expected a finite number"
    # Our own validators (PydanticCustomError) and anything pydantic adds later.
    return error["msg"]


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value, for "expected X, got Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def quote(value: Any) -> str:
    """`value` in single quotes, shortened so a hostile input cannot flood an error message."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "..."
    return f"'{text}'"
