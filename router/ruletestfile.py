"""The rule-test file format (`sevrouter test`): YAML cases with alerts in and expectations out,
validated strictly, every problem naming the file, case and key. Running them is
`router/ruletest.py`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from router.alert import AlertStatus
from router.durations import parse_duration
from router.errors import SevrouterError
from router.matchers import parse_matchers
from router.rulefile import _UniqueKeyLoader, _yaml_problem
from router.schemabase import Strict
from router.severity import Severity

T = TypeVar("T")

DEFAULT_PAGES_UNTIL = 60.0
CHECKED = ("severity", "team", "rule", "group_key", "incidents", "dropped", "pages")
# Accepted now, checked once silences, inhibitions and maintenance windows can be evaluated.
UNCHECKED: tuple[str, ...] = ()
MUTE_CHECKS = ("silenced", "inhibited", "in_maintenance")


class RuleTestError(SevrouterError):
    """A test file that cannot be run; `problems` name the file, case and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- the file format ---------------------------------------------------------------------------


def _listed(value: object) -> object:
    return value if isinstance(value, list) else [value]


def _minutes(value: object) -> object:
    return parse_duration(value) / 60 if isinstance(value, str) else value


# `severity: SEV2` or `severity: [SEV2, SEV3]` (one per incident).
OneOrMore = Annotated[list[T], BeforeValidator(_listed)]


class AlertSpec(Strict):
    # `code: 500` in YAML is a number; labels are strings.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    status: AlertStatus = AlertStatus.FIRING


class PageSpec(Strict):
    minute: float = Field(ge=0)
    step: int = Field(ge=0)
    target: str
    channel: str | None = None
    address: str | None = None

    @field_validator("target")
    @classmethod
    def _kind_and_name(cls, target: str) -> str:
        kind, _, name = target.partition(":")
        if kind not in {"channel", "person"} or not name:
            raise ValueError(
                "write channel:NAME or person:NAME (a schedule pages the person on call)"
            )
        return target


class Expect(Strict):
    severity: OneOrMore[Severity] | None = None
    team: OneOrMore[str] | None = None
    rule: OneOrMore[str] | None = None
    group_key: OneOrMore[str] | None = None
    incidents: int | None = Field(default=None, ge=0)
    dropped: bool | None = None
    pages: list[PageSpec] | None = None
    pages_until: Annotated[float, BeforeValidator(_minutes), Field(ge=0)] = DEFAULT_PAGES_UNTIL
    silenced: bool | None = None
    inhibited: bool | None = None
    in_maintenance: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if all(getattr(self, key) is None for key in (*CHECKED, *MUTE_CHECKS, *UNCHECKED)):
            raise ValueError(
                f"give at least one of {', '.join((*CHECKED, *MUTE_CHECKS, *UNCHECKED))}"
            )
        return self


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class CaseSpec(Strict):
    name: str = Field(min_length=1)
    at: datetime | None = None
    alerts: list[AlertSpec] | None = Field(default=None, min_length=1)
    payload: str | None = None
    integration: str | None = None
    # Silences in force for this case, as matcher strings (one silence each), since silences
    # live in Redis and not in the rules.
    silences: list[str] = Field(default_factory=list)
    expect: Expect

    @field_validator("silences")
    @classmethod
    def _matchers_parse(cls, values: list[str]) -> list[str]:
        for text_ in values:
            if not parse_matchers(text_):
                raise ValueError(f"silence {text_!r} has no matcher; it would mute every alert")
        return values

    _at_utc = field_validator("at")(_utc)

    @model_validator(mode="after")
    def _one_source(self) -> CaseSpec:
        if (self.alerts is None) == (self.payload is None):
            raise ValueError("give either alerts or payload")
        if self.integration is not None and self.payload is None:
            raise ValueError("integration goes with payload (alerts are given as labels)")
        return self


class RuleTestFile(Strict):
    rules: str | None = None
    at: datetime
    cases: list[CaseSpec] = Field(min_length=1)

    _at_utc = field_validator("at")(_utc)

    @field_validator("cases")
    @classmethod
    def _unique_names(cls, cases: list[CaseSpec]) -> list[CaseSpec]:
        seen: set[str] = set()
        for case in cases:
            if case.name in seen:
                raise ValueError(f"two cases are named {case.name!r}; names must be unique")
            seen.add(case.name)
        return cases


def load_test_file(path: Path) -> RuleTestFile:
    """The parsed test file; `RuleTestError` lists every problem, each naming its case."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 # a SafeLoader
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleTestError([f"cannot read: {getattr(exc, 'strerror', None) or exc}"]) from None
    except yaml.YAMLError as exc:
        raise RuleTestError([f"not valid YAML: {_yaml_problem(exc)}"]) from None
    if not isinstance(document, dict):
        raise RuleTestError(["expected a mapping with at and cases"])
    try:
        return RuleTestFile.model_validate(document)
    except ValidationError as exc:
        raise RuleTestError(_schema_problems(exc, document)) from None


def _schema_problems(error: ValidationError, document: Mapping[str, Any]) -> list[str]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        value = item.get("input")
        hidden = item["type"] in {"extra_forbidden", "missing"} or isinstance(value, dict | list)
        shown = "" if hidden else f" (got {value!r})"
        problems.append(f"{_where(item['loc'], document)}: {message}{shown}")
    return problems


def _where(loc: tuple[int | str, ...], document: Mapping[str, Any]) -> str:
    """`cases[2] "disk alert": expect.severity` (or `at`) for a location in the document."""
    if len(loc) < 2 or loc[0] != "cases" or not isinstance(loc[1], int):
        return _dotted(loc, document) or "(top level)"
    cases = document.get("cases")
    case = cases[loc[1]] if isinstance(cases, list) and 0 <= loc[1] < len(cases) else None
    name = case.get("name") if isinstance(case, dict) else None
    head = f"cases[{loc[1]}]" + (f' "{name}"' if isinstance(name, str) else "")
    rest = _dotted(loc[2:], case)
    return f"{head}: {rest}" if rest else head


def _dotted(loc: tuple[int | str, ...], node: Any) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            # No index when one value stands where a list may be (`severity: SEV2`).
            if isinstance(node, list):
                text += f"[{part}]"
                node = node[part] if 0 <= part < len(node) else None
            continue
        text += f".{part}" if text else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return text


# --- running a case ----------------------------------------------------------------------------
