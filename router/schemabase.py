"""Building blocks shared by every rule-file schema: strictness, names, durations, secrets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from router.durations import parse_duration

# Error type of a secret written inline; its value is never repeated in the error message.
_WRITTEN_INLINE = "inline_secret"


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool):
        # YAML reads `yes`/`true` as a bool, which float() would take for 1 second.
        # pydantic turns only ValueError into a validation error, not TypeError.
        raise ValueError(  # noqa: TRY004
            "invalid duration: use a number and a unit, like 30s, 5m, 1h or 1h30m"
        )
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Strict):
    """Where a secret comes from: `{env: NAME}` or `{file: /path}`. Never the secret itself."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _reference_not_value(cls, data: object) -> object:
        if not isinstance(data, Mapping | SecretRef):
            raise PydanticCustomError(
                _WRITTEN_INLINE,
                "a secret is never written in a rule file; reference it as {env: NAME} or "
                "{file: /path}",
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"
