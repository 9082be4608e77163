"""Loading and validating `rules/*.yaml`.

Each file is validated on its own against a strict schema (unknown keys are errors), so every
problem names its file and the path inside it. The files are then merged (lists concatenated in
file-name order, which is also rule order) and checked across files: duplicate names, dangling
references, and the severity table being complete. `load_rules` reports every problem of a stage
at once in a `ConfigError`, never only the first; the cross-file stage runs only when every file
passed the schema (a file that failed would show up as dangling references).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from router.durations import parse_duration
from router.errors import ConfigError
from router.severity import Severity

# `group_by: ['...']` groups by every label, i.e. each distinct alert is its own incident.
GROUP_BY_ALL = "..."
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


def _group_by(names: list[str]) -> list[str]:
    if GROUP_BY_ALL in names and len(names) > 1:
        raise ValueError(
            f"{GROUP_BY_ALL!r} groups by every label; it cannot be combined with others {names}"
        )
    return names


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
GroupBy = Annotated[list[str], AfterValidator(_group_by)]


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
    # file each named item came from, keyed like `teams[platform]`, for error messages
    item_files: dict[str, str] = Field(default_factory=dict)


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
    """Read, validate and merge the rule files under `path`; ConfigError lists every problem."""
    files = rule_paths(path)
    if not files:
        raise ConfigError([f"{path}: no .yaml rule files found"])
    problems: list[str] = []
    parsed: list[tuple[str, RuleFile]] = []
    for file in files:
        try:
            # A SafeLoader that also rejects duplicate keys.
            document = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
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
            problems.extend(_schema_problems(str(file), exc, document))
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
    item_files: dict[str, str] = {}
    severity_files: list[str] = []
    for file, doc in parsed:
        for section in ("integrations", "channels", "teams", "rules"):
            for item in getattr(doc, section):
                where = f"{section}[{item.name}]"
                if where in item_files:
                    problems.append(
                        f"{file}: {where}: duplicate name {item.name!r}"
                        f" (first defined in {item_files[where]})"
                    )
                item_files.setdefault(where, file)
                merged[section].append(item)
        for rule in doc.rules:
            rule_files.setdefault(rule.name, file)
        if doc.severities:
            severity_files.append(file)
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
        where = ", ".join(severity_files) or "(no file has a severities section)"
        problems.append(
            f"{where}: severities: missing {', '.join(missing)} (every level needs a policy)"
        )
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
        item_files=item_files,
    )
    defaults_file = singletons["defaults"][0] if "defaults" in singletons else "(defaults)"
    problems.extend(_reference_problems(config, defaults_file))
    if problems:
        raise ConfigError(problems)
    return config


def _reference_problems(config: RuleConfig, defaults_file: str) -> list[str]:
    """Dangling references and paging routes without anyone to page (duplicates: `merge`)."""
    problems: list[str] = []
    channels = {c.name for c in config.channels}
    teams = {t.name: t for t in config.teams}
    for team in config.teams:
        where = f"{config.item_files.get(f'teams[{team.name}]', '?')}: teams[{team.name}]"
        if team.channel is not None and team.channel not in channels:
            problems.append(f"{where}.channel: unknown channel {team.channel!r}")
        # 0-based like every other path in an error, so `escalation[0]` is the first step.
        for index, step in enumerate(team.escalation):
            for target in step.notify:
                if target not in channels:
                    problems.append(
                        f"{where}.escalation[{index}].notify: unknown channel {target!r}"
                    )
    default_team = config.defaults.team
    if default_team is not None and default_team not in teams:
        problems.append(f"{defaults_file}: defaults.team: unknown team {default_team!r}")
    elif default_team is not None:
        problems.extend(
            _unpaged(config, f"{defaults_file}: defaults", {config.defaults.severity}, default_team)
        )
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
        problems.extend(_unpaged(config, where, severities, team_name))
    return problems


def _unpaged(config: RuleConfig, where: str, severities: set[Severity], team: str) -> list[str]:
    """A problem when a route sends paging severities to a team without an escalation step."""
    policies = config.severities
    paging = sorted(s.value for s in severities if s in policies and policies[s].paging == "page")
    if not paging or any(t.escalation for t in config.teams if t.name == team):
        return []
    return [
        f"{where}: routes {', '.join(paging)} alerts to team {team!r}, whose escalation pages "
        "no channel; a paging severity needs at least one escalation step"
    ]


def _schema_problems(file: str, error: ValidationError, document: object) -> list[str]:
    problems = []
    for item in error.errors():
        path = _dotted(item["loc"], document)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        value = item.get("input")
        # An unknown key's name is in the path; its value, like an inline secret, may be a
        # credential, and error messages end up in logs and CI output.
        hidden = item["type"] in {"extra_forbidden", _WRITTEN_INLINE}
        shown = "" if hidden or isinstance(value, Mapping | list) else f" (got {value!r})"
        problems.append(f"{file}: {path}: {message}{shown}")
    return problems


def _dotted(loc: tuple[int | str, ...], document: object) -> str:
    """`rules[critical].match[0]`: list items with a `name` are shown by it, others by index."""
    text = ""
    node = document
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            text += f"[{name}]" if isinstance(name, str) and name else f"[{part}]"
            node = item
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text or "(top level)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping; PyYAML keeps the last silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; its keys may be overridden on purpose
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{getattr(exc, 'problem', None) or exc}"
