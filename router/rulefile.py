"""Loading and validating `rules/*.yaml`.

Each file is validated on its own against a strict schema (unknown keys are errors), so every
problem names its file and the path inside it. The files are then merged (lists concatenated in
file-name order, which is also rule order) and checked across files: duplicate names, dangling
references, and the severity table being complete. `load_rules` reports *every* problem at once in
a `ConfigError`; it never stops at the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from router.durations import parse_duration
from router.errors import ConfigError
from router.severity import Severity


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Strict):
    """Where a secret comes from: `{env: NAME}` or `{file: /path}`. Never the secret itself."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


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


class BusinessHours(Strict):
    timezone: str = "UTC"
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"]
    )
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "09:00"
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "17:00"


class Channel(Strict):
    name: Name
    type: Literal["webhook", "log"]
    url: SecretRef | None = None
    signing_secret: SecretRef | None = None
    timeout: Duration = 10.0

    @model_validator(mode="after")
    def _fields_for_type(self) -> Channel:
        if self.type == "webhook" and self.url is None:
            raise ValueError("a webhook channel needs url: {env: NAME} or {file: PATH}")
        if self.type == "log" and (self.url or self.signing_secret):
            raise ValueError("a log channel takes no url or signing_secret")
        return self


class EscalationStep(Strict):
    notify: list[Name] = Field(min_length=1)
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
    group_by: list[str] = Field(default_factory=lambda: ["alertname"])


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
        return {key.lower(): severity for key, severity in values.items()}


class Rule(Strict):
    name: Name
    # Matcher strings in Alertmanager syntax, all of which must match; empty matches every alert.
    match: list[str] = Field(default_factory=list)
    severity: Severity | None = None
    severity_from_label: SeverityFromLabel | None = None
    team: Name | None = None
    group_by: list[str] | None = None
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
        routed = [
            self.severity,
            self.severity_from_label,
            self.team,
            self.group_by,
            self.title,
            self.summary,
            self.runbook,
        ]
        if self.drop and (any(v is not None for v in routed) or self.continue_):
            raise ValueError("a drop rule only has name and match")
        return self


class IncidentPolicy(Strict):
    # A member alert re-firing this soon after mitigation reopens the incident.
    flap_window: Duration = 1800.0
    retention: Duration = 90 * 86400.0


class RuleFile(Strict):
    """One YAML document; every section is optional so rules can be split across files."""

    integrations: list[Integration] = Field(default_factory=list)
    severities: dict[Severity, SeverityPolicy] = Field(default_factory=dict)
    business_hours: BusinessHours | None = None
    channels: list[Channel] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    defaults: Defaults | None = None
    rules: list[Rule] = Field(default_factory=list)
    incidents: IncidentPolicy | None = None


class RuleConfig(Strict):
    """All rule files merged; the input `Ruleset` is compiled from."""

    integrations: list[Integration]
    severities: dict[Severity, SeverityPolicy]
    business_hours: BusinessHours
    channels: list[Channel]
    teams: list[Team]
    defaults: Defaults
    rules: list[Rule]
    incidents: IncidentPolicy
    # file each rule came from, for error messages and `explain`
    rule_files: dict[str, str]


def rule_paths(path: Path) -> list[Path]:
    """The YAML files a rules path names: the file itself, or `*.yaml`/`*.yml` in a directory.

    Files under `tests/` or `templates/` sub-directories are not rule files.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError([f"{path}: no such file or directory"])
    return sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def load_rules(path: Path) -> RuleConfig:
    """Read, validate and merge every rule file under `path`; raise ConfigError listing all problems."""
    files = rule_paths(path)
    if not files:
        raise ConfigError([f"{path}: no .yaml rule files found"])
    problems: list[str] = []
    parsed: list[tuple[str, RuleFile]] = []
    for file in files:
        try:
            document = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
            continue
        except yaml.YAMLError as exc:
            problems.append(f"{file}: not valid YAML: {_yaml_problem(exc)}")
            continue
        if document is None:
            continue
        try:
            parsed.append((str(file), RuleFile.model_validate(document)))
        except ValidationError as exc:
            problems.extend(_schema_problems(str(file), exc))
    if problems:
        raise ConfigError(problems)
    return merge(parsed)


def merge(parsed: Iterable[tuple[str, RuleFile]]) -> RuleConfig:
    """Merge validated files, then check what only the whole set can show."""
    problems: list[str] = []
    merged: dict[str, Any] = {
        "integrations": [],
        "severities": {},
        "channels": [],
        "teams": [],
        "rules": [],
    }
    singletons: dict[str, tuple[str, Any]] = {}
    rule_files: dict[str, str] = {}
    for file, doc in parsed:
        for section in ("integrations", "channels", "teams", "rules"):
            merged[section].extend(getattr(doc, section))
        for rule in doc.rules:
            rule_files.setdefault(rule.name, file)
        for sev, policy in doc.severities.items():
            if sev in merged["severities"]:
                problems.append(f"{file}: severities.{sev}: defined in more than one file")
            merged["severities"][sev] = policy
        for section in ("business_hours", "defaults", "incidents"):
            value = getattr(doc, section)
            if value is None:
                continue
            if section in singletons:
                problems.append(f"{file}: {section}: already defined in {singletons[section][0]}")
            singletons[section] = (file, value)
    missing = [s.value for s in Severity if s not in merged["severities"]]
    if missing:
        problems.append(f"severities: missing {', '.join(missing)} (every level needs a policy)")
    config = RuleConfig(
        integrations=merged["integrations"],
        severities=merged["severities"],
        business_hours=singletons.get("business_hours", ("", BusinessHours()))[1],
        channels=merged["channels"],
        teams=merged["teams"],
        defaults=singletons.get("defaults", ("", Defaults()))[1],
        rules=merged["rules"],
        incidents=singletons.get("incidents", ("", IncidentPolicy()))[1],
        rule_files=rule_files,
    )
    problems.extend(_reference_problems(config))
    if problems:
        raise ConfigError(problems)
    return config


def _reference_problems(config: RuleConfig) -> list[str]:
    problems: list[str] = []
    for section, items in (
        ("integrations", config.integrations),
        ("channels", config.channels),
        ("teams", config.teams),
        ("rules", config.rules),
    ):
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                problems.append(f"{section}: duplicate name {item.name!r}")
            seen.add(item.name)
    channels = {c.name for c in config.channels}
    teams = {t.name: t for t in config.teams}
    for team in config.teams:
        if team.channel is not None and team.channel not in channels:
            problems.append(f"teams[{team.name}].channel: unknown channel {team.channel!r}")
        for number, step in enumerate(team.escalation, start=1):
            for target in step.notify:
                if target not in channels:
                    problems.append(
                        f"teams[{team.name}].escalation[{number}].notify: unknown channel {target!r}"
                    )
    if config.defaults.team is not None and config.defaults.team not in teams:
        problems.append(f"defaults.team: unknown team {config.defaults.team!r}")
    for rule in config.rules:
        where = f"{config.rule_files.get(rule.name, '?')}: rules[{rule.name}]"
        team_name = rule.team or config.defaults.team
        if rule.drop:
            continue
        if team_name is None:
            problems.append(f"{where}.team: no team, and defaults.team is not set")
            continue
        if team_name not in teams:
            problems.append(f"{where}.team: unknown team {team_name!r}")
            continue
        severities = {rule.severity or config.defaults.severity}
        if rule.severity_from_label is not None:
            severities |= set(rule.severity_from_label.values.values())
        paging = sorted(
            s.value for s in severities if s in config.severities and config.severities[s].paging == "page"
        )
        if paging and not teams[team_name].escalation:
            problems.append(
                f"{where}: routes {', '.join(paging)} alerts to team {team_name!r}, whose "
                "escalation pages no channel; a paging severity needs at least one escalation step"
            )
    return problems


def _schema_problems(file: str, error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        path = _dotted(item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        value = item.get("input")
        shown = "" if isinstance(value, Mapping | list) else f" (got {value!r})"
        problems.append(f"{file}: {path}: {message}{shown}")
    return problems


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{getattr(exc, 'problem', None) or exc}"
