"""The schema of `rules/*.yaml`: strict pydantic models, one per section.

Unknown keys are errors, secrets are references (`{env: NAME}` or `{file: PATH}`), durations are
written as people write them (`5m`). Loading, merging and the checks across files live in
`router/rulefile.py`; channel settings in `router/channelschema.py`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from router.channelschema import ChannelConfig
from router.maintenanceschema import MaintenanceWindow
from router.oncallschema import Person, Schedule, Target, check_timezone
from router.schemabase import Duration, Name, SecretRef, Strict
from router.severity import Severity

# `group_by: ['...']` groups by every label, i.e. each distinct alert is its own incident.
GROUP_BY_ALL = "..."


def _group_by(names: list[str]) -> list[str]:
    if GROUP_BY_ALL in names and len(names) > 1:
        raise ValueError(
            f"{GROUP_BY_ALL!r} groups by every label; it cannot be combined with others {names}"
        )
    return names


GroupBy = Annotated[list[str], AfterValidator(_group_by)]


class BasicAuth(Strict):
    username: str
    password: SecretRef


class HmacAuth(Strict):
    secret: SecretRef
    header: str = "X-Grafana-Alerting-Signature"
    # Grafana has no default timestamp header; when set, the signed message is `ts:body`.
    timestamp_header: str | None = None
    max_age: Duration = 300.0


class Auth(Strict):
    bearer: SecretRef | None = None
    basic: BasicAuth | None = None
    hmac: HmacAuth | None = None
    # An integration without credentials must say so; silence is never taken for consent.
    none: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> Auth:
        mechanisms = [self.bearer is not None, self.basic is not None, self.hmac is not None]
        if self.none and any(mechanisms):
            raise ValueError("none: true cannot be combined with credentials")
        if not self.none and not any(mechanisms):
            raise ValueError("give bearer, basic or hmac credentials, or none: true")
        if self.bearer is not None and self.basic is not None:
            raise ValueError("bearer and basic both use the Authorization header; choose one")
        return self


class Integration(Strict):
    name: Name
    type: Literal["alertmanager", "grafana"]
    auth: Auth


class SeverityPolicy(Strict):
    description: str = ""
    # The acknowledgement deadline; None means "next business day".
    response_time: Duration | None
    update_every: Duration | None = None
    escalate_after: Duration | None = None
    paging: Literal["page", "notify_then_page", "notify_business_hours"]
    requires_commander: bool = False

    @field_validator("response_time", mode="before")
    @classmethod
    def _next_business_day(cls, value: object) -> object:
        return None if value == "next_business_day" else value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


class BusinessHours(Strict):
    timezone: str = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(_WORKDAYS))
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "09:00"
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "17:00"
    # Days off on top of the weekly pattern (public holidays), in the timezone above.
    holidays: list[date] = Field(default_factory=list)

    _check_timezone = field_validator("timezone")(check_timezone)

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class EscalationStep(Strict):
    notify: list[Target] = Field(min_length=1)
    wait: Duration = 300.0


class Team(Strict):
    name: Name
    # Where SEV3/SEV4 notifications and incident updates go.
    channel: Name | None = None
    escalation: list[EscalationStep] = Field(default_factory=list)
    repeat: int = Field(default=0, ge=0, le=10)


class Defaults(Strict):
    team: Name | None = None
    severity: Severity = Severity.SEV3
    group_by: GroupBy = Field(default_factory=lambda: ["alertname"])


class SeverityFromLabel(Strict):
    """Severity read from a label, e.g. kube-prometheus `severity: critical` -> SEV2.

    Values are compared case-insensitively (Grafana users type `Critical`, `HIGH`); a missing
    label or an unlisted value falls back to the rule's `severity`, then to the defaults.
    """

    label: str
    values: dict[str, Severity] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _lowercase(cls, values: dict[str, Severity]) -> dict[str, Severity]:
        lowered: dict[str, Severity] = {}
        spelled: dict[str, str] = {}
        for key, severity in values.items():
            other = spelled.setdefault(key.lower(), key)
            if lowered.get(key.lower(), severity) != severity:
                raise ValueError(
                    f"{other!r} and {key!r} differ only in case (values are compared "
                    f"case-insensitively) but map to {lowered[key.lower()]} and {severity}"
                )
            lowered[key.lower()] = severity
        return lowered


class Rule(Strict):
    name: Name
    # Matcher strings in Alertmanager syntax, all of which must match; empty matches every alert.
    match: list[str] = Field(default_factory=list)
    severity: Severity | None = None
    severity_from_label: SeverityFromLabel | None = None
    team: Name | None = None
    group_by: GroupBy | None = None
    title: str | None = None
    summary: str | None = None
    runbook: str | None = None
    drop: bool = False
    continue_: bool = Field(default=False, alias="continue")

    @field_validator("match", mode="before")
    @classmethod
    def _one_string(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _drop_is_alone(self) -> Rule:
        if not self.drop:
            return self
        routed = ("severity", "severity_from_label", "team", "group_by", "title", "summary")
        extra = [key for key in (*routed, "runbook") if getattr(self, key) is not None]
        if self.continue_:
            extra.append("continue")
        if extra:
            raise ValueError(f"a drop rule only has name and match; remove {', '.join(extra)}")
        return self


class IncidentPolicy(Strict):
    # A member alert re-firing this soon after mitigation reopens the incident.
    flap_window: Duration = 1800.0
    # This many re-firings within the flap window mark an alert flapping: its incident stays
    # open (no more reopen pages) until it has been quiet for a flap window.
    flap_threshold: int = Field(default=3, ge=2)
    retention: Duration = 90 * 86400.0
    # SEV3/SEV4 incidents whose alerts all resolved are resolved after this long without a
    # re-fire; SEV1/SEV2 wait for a human.
    quiet_period: Duration = 1800.0
    # A SEV1 without an Incident Commander pages the on-call again this often until one is named.
    commander_reminder: Duration = 300.0
    # Postmortems of SEV1/SEV2 are due this long after resolution; reminders repeat daily.
    postmortem_due: Duration = 48 * 3600.0


class InhibitRule(Strict):
    """Like Alertmanager's: while an alert matching `source` fires, alerts matching `target`
    with the same values of the `equal` labels are muted (recorded, never paged)."""

    name: Name
    source: list[str] = Field(min_length=1)
    target: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    @field_validator("source", "target", mode="before")
    @classmethod
    def _one_string(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class RuleFile(Strict):
    """One YAML document; every section is optional so rules can be split across files."""

    integrations: list[Integration] = Field(default_factory=list)
    severities: dict[Severity, SeverityPolicy] = Field(default_factory=dict)
    business_hours: BusinessHours | None = None
    channels: list[ChannelConfig] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    defaults: Defaults | None = None
    rules: list[Rule] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    incidents: IncidentPolicy | None = None


class RuleConfig(Strict):
    """All rule files merged; the input `Ruleset` is compiled from."""

    integrations: list[Integration]
    severities: dict[Severity, SeverityPolicy]
    business_hours: BusinessHours
    channels: list[ChannelConfig]
    people: list[Person]
    schedules: list[Schedule]
    teams: list[Team]
    defaults: Defaults
    rules: list[Rule]
    inhibit_rules: list[InhibitRule]
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    incidents: IncidentPolicy
    # file each rule came from, for error messages and `explain`
    rule_files: dict[str, str]
    # file each named item came from, keyed like `teams[platform]`, for error messages
    item_files: dict[str, str] = Field(default_factory=dict)
