"""The compiled rule set and `evaluate`: which severity, team and group an alert belongs to.

A `Ruleset` is built completely from a validated `RuleConfig` (matchers parsed, templates
compiled, secrets resolved) before anything uses it, so a reload either yields a whole new
`Ruleset` or a `ConfigError` and the old one keeps running. `evaluate` is pure: same alert, same
rules, same decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import msgspec

from router.alert import Alert
from router.channelschema import SECRET_FIELDS, ChannelConfig
from router.errors import ConfigError
from router.keys import group_hash
from router.maintenance import CompiledWindows
from router.matchers import Matcher, MatcherError, matches_all, parse_matchers
from router.oncallschema import Person, Schedule
from router.rulefile import load_rules
from router.ruleschema import (
    GROUP_BY_ALL,
    Integration,
    RuleConfig,
    SeverityPolicy,
    Team,
)
from router.schemabase import SecretRef
from router.secrets import Secret
from router.severity import Severity
from router.templates import TemplateError, compile_template, render

DEFAULT_RULE = "default"
DEFAULT_TITLE = (
    "{{ labels.alertname }}{% if labels.namespace %} in {{ labels.namespace }}{% endif %}"
)
DEFAULT_SUMMARY = "{{ annotations.summary or annotations.description or annotations.message }}"
# Decisions depend only on the labels the rules look at (see `Ruleset._projection`), so they are
# cached by those labels' values. Bounded; cleared when full.
_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules say for one alert: where it goes and what it is grouped with."""

    rule: str
    severity: Severity
    team: str
    group_key: str
    # Derived from group_key, once: decisions are cached, and every alert received needs it.
    group_hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_hash", group_hash(self.group_key))


@dataclass(frozen=True, slots=True)
class TraceStep:
    rule: str
    matched: bool
    reasons: tuple[str, ...]
    outcome: str  # "routed", "routed, continue", "dropped", "no match", "not reached"


@dataclass(frozen=True, slots=True)
class Evaluation:
    decisions: tuple[Decision, ...]
    dropped_by: str | None = None
    trace: tuple[TraceStep, ...] = ()
    # Inhibition tokens (comma-joined) this alert raises as a source and is subject to as a
    # target; the ingest script keeps the firing sources per token. Labels-only, so cached.
    inhibit_sources: str = ""
    inhibit_targets: str = ""


@dataclass(frozen=True, slots=True)
class CompiledInhibit:
    name: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def token(self, labels: Mapping[str, str]) -> str:
        """Same for a source and a target exactly when their `equal` labels agree."""
        values = "\x00".join([self.name, *(labels.get(name, "") for name in self.equal)])
        return hashlib.blake2b(values.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    file: str
    matchers: tuple[Matcher, ...]
    severity: Severity
    # (label, lowercased value -> severity) when the severity comes from a label
    severity_label: str | None
    severity_values: Mapping[str, Severity]
    team: str
    group_by: tuple[str, ...]
    title: jinja2.Template
    summary: jinja2.Template
    runbook: jinja2.Template | None
    drop: bool
    continue_: bool

    def severity_for(self, labels: Mapping[str, str]) -> Severity:
        if self.severity_label is None:
            return self.severity
        value = labels.get(self.severity_label, "").lower()
        return self.severity_values.get(value, self.severity)

    def group_key(self, labels: Mapping[str, str]) -> str:
        names = sorted(labels) if self.group_by == (GROUP_BY_ALL,) else self.group_by
        encode = msgspec.json.encode  # JSON-quoted values: no label value can forge a separator
        inner = ",".join(f"{name}={encode(labels.get(name, '')).decode()}" for name in names)
        return f"{self.name}:{{{inner}}}"


@dataclass(slots=True)
class Ruleset:
    config: RuleConfig
    rules: tuple[CompiledRule, ...]
    default_rule: CompiledRule
    secrets: Mapping[str, Secret]
    inhibit: tuple[CompiledInhibit, ...] = ()
    windows: CompiledWindows = field(default_factory=lambda: CompiledWindows([]))
    _cache: dict[object, Evaluation] = field(default_factory=dict, repr=False)
    # By name, built once: the webhook path looks its integration up on every request.
    _integrations: dict[str, Integration] = field(init=False, repr=False)
    # The label names evaluation reads, or None when it reads them all (a `group_by: [...]`).
    _projection: tuple[str, ...] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._integrations = {i.name: i for i in self.config.integrations}
        self._projection = _labels_read(self)

    @property
    def integrations(self) -> Mapping[str, Integration]:
        return self._integrations

    def integration(self, name: str) -> Integration | None:
        return self._integrations.get(name)

    def team(self, name: str) -> Team | None:
        return next((t for t in self.config.teams if t.name == name), None)

    def person(self, name: str) -> Person | None:
        return next((p for p in self.config.people if p.name == name), None)

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.config.schedules if s.name == name), None)

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.config.channels if c.name == name), None)

    def policy(self, severity: Severity) -> SeverityPolicy:
        return self.config.severities[severity]

    def secret(self, ref: SecretRef) -> Secret:
        """The resolved value of a secret reference from this rule set."""
        return self.secrets[_ref_key(ref)]

    def rule(self, name: str) -> CompiledRule:
        """The rule called `name`; the default rule when it no longer exists (after a reload)."""
        return next((r for r in self.rules if r.name == name), self.default_rule)

    def evaluate(self, alert: Alert) -> Evaluation:
        """The decisions for `alert` (several when rules `continue`, none when dropped)."""
        # The alerts of one Alertmanager group, and their re-sends, mostly differ only in labels
        # no rule reads (instance, pod): keyed by the labels read, one evaluation serves them all.
        labels = alert.labels
        key = (
            alert.fingerprint
            if self._projection is None
            else tuple(map(labels.get, self._projection))
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        evaluation = self._evaluate(labels, trace=False)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = evaluation
        return evaluation

    def explain(self, labels: Mapping[str, str]) -> Evaluation:
        """Like `evaluate`, with the trace of every rule tried and why it matched or not."""
        return self._evaluate(labels, trace=True)

    def _evaluate(self, labels: Mapping[str, str], *, trace: bool) -> Evaluation:
        decisions: list[Decision] = []
        steps: list[TraceStep] = []
        for index, rule in enumerate(self.rules):
            matched = all(m.matches(labels) for m in rule.matchers)
            if trace:
                reasons = tuple(m.explain(labels) for m in rule.matchers) or (
                    "matches every alert",
                )
            if not matched:
                if trace:
                    steps.append(TraceStep(rule.name, False, reasons, "no match"))
                continue
            if rule.drop:
                if trace:
                    steps.append(TraceStep(rule.name, True, reasons, "dropped"))
                    steps.extend(_not_reached(self.rules[index + 1 :]))
                return Evaluation((), dropped_by=rule.name, trace=tuple(steps))
            decisions.append(_decide(rule, labels))
            if trace:
                outcome = "routed, continue" if rule.continue_ else "routed"
                steps.append(TraceStep(rule.name, True, reasons, outcome))
            if not rule.continue_:
                if trace:
                    steps.extend(_not_reached(self.rules[index + 1 :]))
                break
        if not decisions:
            decisions.append(_decide(self.default_rule, labels))
            if trace:
                steps.append(TraceStep(DEFAULT_RULE, True, ("no rule matched",), "routed"))
        sources = ",".join(i.token(labels) for i in self.inhibit if matches_all(i.source, labels))
        targets = ",".join(i.token(labels) for i in self.inhibit if matches_all(i.target, labels))
        return Evaluation(
            tuple(decisions), trace=tuple(steps), inhibit_sources=sources, inhibit_targets=targets
        )

    def render_title(self, decision: Decision, alert: Alert) -> str:
        rule = self.rule(decision.rule)
        return render(rule.title, template_context(decision, alert)) or decision.rule

    def render_summary(self, decision: Decision, alert: Alert) -> str:
        return render(self.rule(decision.rule).summary, template_context(decision, alert))

    def render_runbook(self, decision: Decision, alert: Alert) -> str:
        runbook = self.rule(decision.rule).runbook
        return render(runbook, template_context(decision, alert)) if runbook else ""


def template_context(decision: Decision, alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "status": alert.status.value,
        "starts_at": alert.starts_at,
        "severity": decision.severity.value,
        "team": decision.team,
        "rule": decision.rule,
        "values": dict(alert.values or {}),
    }


def _labels_read(ruleset: Ruleset) -> tuple[str, ...] | None:
    """Every label name `_evaluate` can read (matchers, severity labels, group_by, inhibition's
    `equal`), sorted; None when a rule groups by all labels, which reads every one."""
    names: set[str] = set()
    for rule in (*ruleset.rules, ruleset.default_rule):
        if GROUP_BY_ALL in rule.group_by:
            return None
        names.update(m.name for m in rule.matchers)
        names.update(rule.group_by)
        if rule.severity_label is not None:
            names.add(rule.severity_label)
    for inhibit in ruleset.inhibit:
        names.update(m.name for m in (*inhibit.source, *inhibit.target))
        names.update(inhibit.equal)
    return tuple(sorted(names))


def _decide(rule: CompiledRule, labels: Mapping[str, str]) -> Decision:
    return Decision(rule.name, rule.severity_for(labels), rule.team, rule.group_key(labels))


def _not_reached(rules: tuple[CompiledRule, ...]) -> list[TraceStep]:
    return [TraceStep(r.name, False, (), "not reached") for r in rules]


def load_ruleset(
    path: Path, environ: Mapping[str, str], *, resolve_secrets: bool = True
) -> Ruleset:
    """Load, validate and compile the rules under `path`; ConfigError lists every problem."""
    return compile_ruleset(load_rules(path), environ, resolve_secrets=resolve_secrets)


def compile_ruleset(
    config: RuleConfig, environ: Mapping[str, str], *, resolve_secrets: bool = True
) -> Ruleset:
    problems: list[str] = []
    compiled = [_compile_rule(rule, config, problems) for rule in config.rules]
    default_team = config.defaults.team or (config.teams[0].name if config.teams else "")
    default_rule = CompiledRule(
        name=DEFAULT_RULE,
        file="(defaults)",
        matchers=(),
        severity=config.defaults.severity,
        severity_label=None,
        severity_values={},
        team=default_team,
        group_by=tuple(config.defaults.group_by),
        title=compile_template(DEFAULT_TITLE),
        summary=compile_template(DEFAULT_SUMMARY),
        runbook=None,
        drop=False,
        continue_=False,
    )
    if not default_team:
        problems.append("defaults.team: set it, or define a team, for alerts no rule matches")
    inhibit = tuple(_compile_inhibit(rule, config, problems) for rule in config.inhibit_rules)
    secrets = _resolve_secrets(config, environ, problems) if resolve_secrets else {}
    if problems:
        raise ConfigError(problems)
    return Ruleset(
        config,
        tuple(c for c in compiled if c is not None),
        default_rule,
        secrets,
        inhibit,
        CompiledWindows(config.maintenance),
    )


def _compile_inhibit(rule: Any, config: RuleConfig, problems: list[str]) -> CompiledInhibit:
    where = (
        f"{config.item_files.get(f'inhibit_rules[{rule.name}]', '?')}: inhibit_rules[{rule.name}]"
    )
    sides: dict[str, list[Matcher]] = {"source": [], "target": []}
    for side, texts in (("source", rule.source), ("target", rule.target)):
        for index, text_ in enumerate(texts):
            try:
                parsed = parse_matchers(text_)
            except MatcherError as exc:
                problems.append(f"{where}.{side}[{index}]: {exc} (got {text_!r})")
                continue
            if not parsed:
                problems.append(f"{where}.{side}[{index}]: empty matcher would match every alert")
            sides[side].extend(parsed)
    return CompiledInhibit(
        rule.name, tuple(sides["source"]), tuple(sides["target"]), tuple(rule.equal)
    )


def _compile_rule(rule: Any, config: RuleConfig, problems: list[str]) -> CompiledRule | None:
    where = f"{config.rule_files.get(rule.name, '?')}: rules[{rule.name}]"
    matchers: list[Matcher] = []
    for index, text in enumerate(rule.match):
        try:
            parsed = parse_matchers(text)
        except MatcherError as exc:
            problems.append(f"{where}.match[{index}]: {exc} (got {text!r})")
            continue
        if not parsed:
            # `''` (or `{}`) parses to no matchers, i.e. it would match every alert: almost
            # certainly a half-written rule, and one that would swallow everything after it.
            problems.append(
                f"{where}.match[{index}]: empty matcher, which would match every alert; "
                f"to match every alert, leave out match (got {text!r})"
            )
        matchers.extend(parsed)
    templates: dict[str, jinja2.Template | None] = {}
    for name, source, fallback in (
        ("title", rule.title, DEFAULT_TITLE),
        ("summary", rule.summary, DEFAULT_SUMMARY),
        ("runbook", rule.runbook, None),
    ):
        text = source if source is not None else fallback
        try:
            templates[name] = compile_template(text) if text is not None else None
        except TemplateError as exc:
            problems.append(f"{where}.{name}: {exc} (got {text!r})")
            templates[name] = None
    if templates["title"] is None or templates["summary"] is None:
        return None
    return CompiledRule(
        name=rule.name,
        file=config.rule_files.get(rule.name, ""),
        matchers=tuple(matchers),
        severity=rule.severity or config.defaults.severity,
        severity_label=rule.severity_from_label.label if rule.severity_from_label else None,
        severity_values=dict(rule.severity_from_label.values) if rule.severity_from_label else {},
        team=rule.team or config.defaults.team or "",
        group_by=tuple(rule.group_by if rule.group_by is not None else config.defaults.group_by),
        title=templates["title"],
        summary=templates["summary"],
        runbook=templates["runbook"],
        drop=rule.drop,
        continue_=rule.continue_,
    )


def _secret_refs(config: RuleConfig) -> list[tuple[str, SecretRef]]:
    refs: list[tuple[str, SecretRef]] = []

    def located(item: str) -> str:
        return f"{config.item_files.get(item, '?')}: {item}"

    for integration in config.integrations:
        auth = integration.auth
        where = f"{located(f'integrations[{integration.name}]')}.auth"
        if auth.bearer:
            refs.append((f"{where}.bearer", auth.bearer))
        if auth.basic:
            refs.append((f"{where}.basic.password", auth.basic.password))
        if auth.hmac:
            refs.append((f"{where}.hmac.secret", auth.hmac.secret))
    for channel in config.channels:
        for attribute in SECRET_FIELDS:
            ref = getattr(channel, attribute, None)
            if isinstance(ref, SecretRef):
                refs.append((f"{located(f'channels[{channel.name}]')}.{attribute}", ref))
    return refs


def _resolve_secrets(
    config: RuleConfig, environ: Mapping[str, str], problems: list[str]
) -> dict[str, Secret]:
    resolved: dict[str, Secret] = {}
    for where, ref in _secret_refs(config):
        value: str | None
        if ref.env is not None:
            value = environ.get(ref.env)
        else:
            assert ref.file is not None  # guaranteed by SecretRef's validator
            try:
                value = Path(ref.file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(f"{where}: cannot read {ref.describe()}: {exc.strerror}")
                continue
        if not value:
            problems.append(f"{where}: {ref.describe()} is not set or empty")
            continue
        resolved[_ref_key(ref)] = Secret(value)
    return resolved


def _ref_key(ref: SecretRef) -> str:
    return f"env:{ref.env}" if ref.env is not None else f"file:{ref.file}"
