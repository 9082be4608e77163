"""Loading and validating `rules/*.yaml`.

Each file is validated on its own against the strict schema in `router/ruleschema.py` (unknown
keys are errors), so every problem names its file and the path inside it. The files are then
merged (lists concatenated in file-name order, which is also rule order) and checked across
files: duplicate names, dangling references, and the severity table being complete.
`load_rules` reports every problem of a stage at once in a `ConfigError`, never only the first;
the cross-file stage runs only when every file passed the schema (a file that failed would show
up as dangling references).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.errors import ConfigError
from router.ruleschema import (
    BusinessHours,
    Defaults,
    IncidentPolicy,
    RuleConfig,
    RuleFile,
)
from router.schemabase import _WRITTEN_INLINE
from router.severity import Severity


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
        "people": [],
        "schedules": [],
        "teams": [],
        "rules": [],
        "inhibit_rules": [],
        "maintenance": [],
    }
    singletons: dict[str, tuple[str, Any]] = {}
    rule_files: dict[str, str] = {}
    item_files: dict[str, str] = {}
    severity_files: list[str] = []
    for file, doc in parsed:
        sections = ("integrations", "channels", "people", "schedules", "teams", "rules")
        for section in (*sections, "inhibit_rules", "maintenance"):
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
        people=merged["people"],
        schedules=merged["schedules"],
        teams=merged["teams"],
        defaults=singletons.get("defaults", ("", Defaults()))[1],
        rules=merged["rules"],
        inhibit_rules=merged["inhibit_rules"],
        maintenance=merged["maintenance"],
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
    known = {
        "channel": channels,
        "person": {p.name for p in config.people},
        "schedule": {s.name for s in config.schedules},
    }
    teams = {t.name: t for t in config.teams}

    def located(section: str, name: str) -> str:
        return f"{config.item_files.get(f'{section}[{name}]', '?')}: {section}[{name}]"

    for channel in config.channels:
        if channel.fallback is not None and channel.fallback not in channels:
            where = located("channels", channel.name)
            problems.append(f"{where}.fallback: unknown channel {channel.fallback!r}")
        elif channel.fallback == channel.name:
            problems.append(f"{located('channels', channel.name)}.fallback: falls back to itself")
        elif channel.fallback and _falls_back_to(config, channel.fallback, channel.name):
            problems.append(
                f"{located('channels', channel.name)}.fallback: {channel.fallback!r} falls back "
                f"to {channel.name!r} again; fallbacks must not form a cycle"
            )
    for person in config.people:
        for index, contact in enumerate(person.contacts):
            if contact.channel not in channels:
                where = f"{located('people', person.name)}.contacts[{index}].channel"
                problems.append(f"{where}: unknown channel {contact.channel!r}")
    for window in config.maintenance:
        for index, notified in enumerate(window.notify):
            if notified not in channels:
                where = f"{located('maintenance', window.name)}.notify[{index}]"
                problems.append(f"{where}: unknown channel {notified!r}")
    for schedule in config.schedules:
        where = located("schedules", schedule.name)
        for index, layer in enumerate(schedule.layers):
            for member in layer.members:
                if member not in known["person"]:
                    problems.append(f"{where}.layers[{index}].members: unknown person {member!r}")
        for index, override in enumerate(schedule.overrides):
            if override.person not in known["person"]:
                problems.append(
                    f"{where}.overrides[{index}].person: unknown person {override.person!r}"
                )
    for team in config.teams:
        where = located("teams", team.name)
        if team.channel is not None and team.channel not in channels:
            problems.append(f"{where}.channel: unknown channel {team.channel!r}")
        # 0-based like every other path in an error, so `escalation[0]` is the first step.
        for index, step in enumerate(team.escalation):
            for target in step.notify:
                if target.ref not in known[target.kind]:
                    problems.append(
                        f"{where}.escalation[{index}].notify: unknown {target.kind} {target.ref!r}"
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


def _falls_back_to(config: RuleConfig, start: str, target: str) -> bool:
    by_name = {c.name: c for c in config.channels}
    seen: set[str] = set()
    current: str | None = start
    while current is not None and current not in seen:
        if current == target:
            return True
        seen.add(current)
        channel = by_name.get(current)
        current = channel.fallback if channel is not None else None
    return False


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
