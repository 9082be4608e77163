"""Rule tests: YAML files of alerts in, expected severity, team, group and pages out.

`sevrouter test FILE...` runs them. A test file lives next to the rules (`rules/tests/*.yaml`,
which the rule loader does not read: it takes `*.yaml` in the top directory only):

    rules: ..                      # the rules, relative to this file (`--rules` wins)
    at: 2026-11-26T10:00:00Z       # the clock for every case (schedules, business hours);
                                   # a case may set its own `at`; without an offset, UTC
    cases:
      - name: critical disk alert pages at once
        alerts:                    # or `payload: FILE` (relative to this file) and
          - labels: {alertname: DiskFull, severity: critical}   # `integration: NAME`
            annotations: {summary: Disk full}                   # optional
            status: firing                                      # default firing
        expect:                    # every key is optional; only the keys given are checked
          severity: SEV2           # one value, or a list with one per incident in order
          team: platform
          rule: alerts
          group_key: 'alerts:{alertname="DiskFull",cluster="",namespace=""}'
          incidents: 1             # distinct group keys opened
          dropped: false           # true: every alert is dropped; false: none is
          pages:                   # every notification within `pages_until`, nobody acking
            - {minute: 0, step: 0, target: channel:console}   # step 0: the team channel
            - {minute: 0, step: 1, target: channel:console}
            - {minute: 15, step: 2, target: person:alice, channel: backup}
          pages_until: 60          # minutes, or a duration (48h); default 60

The model: a case's alerts arrive together at `at`. Each distinct group key opens one incident
with the rule and team of its first alert and the severity of its most severe one (as the raise
on arrival would), and nobody acknowledges: the escalation runs through `escalation.start` and
`advance`, with targets resolved at each minute (`router.explain.timeline`; schedules page
`person:<on call>`). Resolved alerts and Grafana test notifications open nothing. A page's
`channel` and `address` are compared only where the expectation gives them.

Muted alerts open nothing: `in_maintenance` (a window of the rules covers the alert at the
case's time), `inhibited` (another firing alert of the case is a matching source) and `silenced`
(a silence listed in the case's `silences:` matches) are true when any alert of the case is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from router.alert import Alert, AlertStatus
from router.errors import ConfigError, PayloadError
from router.explain import alert_from_labels, integration_choices, minutes, source_kind, timeline
from router.matchers import Matcher, matches_all, parse_matchers
from router.ruleset import Decision, Ruleset, load_ruleset
from router.ruletestfile import (
    UNCHECKED,
    CaseSpec,
    Expect,
    PageSpec,
    RuleTestError,
    load_test_file,
)
from router.severity import Severity
from router.sources import parse

# Mismatches longer than this are shown on two lines, expected above actual.
_ONE_LINE = 40

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Incident:
    group_key: str
    rule: str
    team: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class Page:
    """One recipient told at one minute; step 0 is the team channel."""

    minute: float
    step: int
    target: str
    channel: str
    address: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the rules do with a case's alerts."""

    incidents: tuple[Incident, ...]
    dropped: tuple[bool, ...]  # per alert
    pages: tuple[Page, ...]
    problems: tuple[str, ...]  # "minute 15: schedule primary has nobody on call"


def simulate(
    ruleset: Ruleset, alerts: Sequence[Alert], at: datetime, pages_until: float
) -> Outcome:
    """Route `alerts` arriving at `at`; escalate each incident for `pages_until` minutes."""
    incidents: dict[str, Incident] = {}
    dropped = []
    for alert in alerts:
        evaluation = ruleset.explain(alert.labels)
        dropped.append(evaluation.dropped_by is not None)
        if alert.status is not AlertStatus.FIRING or alert.is_test:
            continue
        for decision in evaluation.decisions:
            known = incidents.get(decision.group_key)
            if known is None:
                incidents[decision.group_key] = Incident(
                    decision.group_key, decision.rule, decision.team, decision.severity
                )
            elif decision.severity.is_higher_than(known.severity):
                incidents[decision.group_key] = replace(known, severity=decision.severity)
    pages: list[Page] = []
    problems: list[str] = []
    until = at + timedelta(minutes=pages_until)
    for incident in incidents.values():
        decision = Decision(incident.rule, incident.severity, incident.team, incident.group_key)
        for checkpoint in timeline(ruleset, decision, at, until=until):
            for notification in checkpoint.notifications:
                pages.extend(
                    Page(checkpoint.minute, notification.step, r.target, r.channel, r.address)
                    for r in notification.recipients
                )
                minute = minutes(checkpoint.minute)
                problems.extend(f"minute {minute}: {p}" for p in notification.problems)
    return Outcome(tuple(incidents.values()), tuple(dropped), tuple(pages), tuple(problems))


def check(expect: Expect, outcome: Outcome) -> list[str]:
    """Lines describing every expectation `outcome` does not meet; empty when all are met."""
    lines: list[str] = []
    for key in ("severity", "team", "rule", "group_key"):
        wanted = getattr(expect, key)
        if wanted is None:
            continue
        got = [str(getattr(incident, key)) for incident in outcome.incidents]
        if [str(value) for value in wanted] != got:
            lines.extend(_mismatch(key, _many(wanted), _many(got)))
    if expect.incidents is not None and expect.incidents != len(outcome.incidents):
        lines.extend(_mismatch("incidents", str(expect.incidents), str(len(outcome.incidents))))
    if expect.dropped is not None:
        met = all(outcome.dropped) if expect.dropped else not any(outcome.dropped)
        if not met:
            same = len(set(outcome.dropped)) == 1
            actual = _yaml_bool(outcome.dropped[0]) if same else _many(outcome.dropped)
            lines.extend(_mismatch("dropped", _yaml_bool(expect.dropped), actual))
    if expect.pages is not None:
        lines.extend(_pages_diff(expect.pages, outcome, expect.pages_until))
    return lines


def _mismatch(key: str, wanted: str, got: str) -> list[str]:
    if len(wanted) + len(got) <= _ONE_LINE:
        return [f"{key}: expected {wanted}, got {got}"]
    return [f"{key}:", f"  expected {wanted}", f"  got      {got}"]


def _many(values: Iterable[object]) -> str:
    shown = [_yaml_bool(v) if isinstance(v, bool) else str(v) for v in values]
    if not shown:
        return "nothing"
    return shown[0] if len(shown) == 1 else f"[{', '.join(shown)}]"


def _yaml_bool(value: bool) -> str:
    return "true" if value else "false"


def _page_text(
    minute: float, step: int, target: str, channel: str | None, address: str | None
) -> tuple[tuple[Any, ...], str]:
    """(sort key, `{minute: 0, step: 1, target: channel:pager}`): valid YAML to paste back."""
    text = f"{{minute: {minutes(minute)}, step: {step}, target: {target}"
    text += f", channel: {channel}" if channel is not None else ""
    text += f", address: {address}" if address is not None else ""
    return (round(minute, 4), step, target, channel or "", address or ""), text + "}"


def _matches(spec: PageSpec, page: Page) -> bool:
    return (
        round(spec.minute, 4) == round(page.minute, 4)
        and spec.step == page.step
        and spec.target == page.target
        and spec.channel in (None, page.channel)
        and spec.address in (None, page.address)
    )


def _pages_diff(expected: list[PageSpec], outcome: Outcome, until: float) -> list[str]:
    """Expected and actual pages as sorted lines, `-` only expected, `+` only actual.

    An actual page that meets an expectation is shown as that expectation, so keys the test left
    out (a person's channel, an address) do not show up as differences.
    """
    remaining = list(outcome.pages)
    shown: list[tuple[tuple[Any, ...], str]] = []
    unmet = False
    # Expectations naming a channel or address first, so catch-alls take what is left.
    for spec in sorted(expected, key=lambda s: (s.channel is None, s.address is None)):
        found = next((page for page in remaining if _matches(spec, page)), None)
        if found is None:
            unmet = True
            continue
        remaining.remove(found)
        shown.append(_page_text(spec.minute, spec.step, spec.target, spec.channel, spec.address))
    if not unmet and not remaining:
        return []
    with_address = any(spec.address is not None for spec in expected)
    for page in remaining:
        channel = None if page.target == f"channel:{page.channel}" else page.channel
        address = page.address if with_address else None
        shown.append(_page_text(page.minute, page.step, page.target, channel, address))
    # Both lists in time order; at the same minute, step and target: `-` before `+`.
    wanted = [
        _page_text(spec.minute, spec.step, spec.target, spec.channel, spec.address)
        for spec in expected
    ]
    both = Counter(wanted) & Counter(shown)
    marked = [(page, "-") for page in (Counter(wanted) - both).elements()]
    marked += [(page, "+") for page in (Counter(shown) - both).elements()]
    marked += [(page, " ") for page in both.elements()]
    order = {" ": 0, "-": 1, "+": 2}
    lines = [f"pages (- expected, + actual, until minute {minutes(until)}):"]
    for (_, text), mark in sorted(
        marked, key=lambda item: (item[0][0][:3], order[item[1]], item[0][0][3:])
    ):
        lines.append(f"  {mark} {text}")
    lines.extend(f"  ! {problem}" for problem in outcome.problems)
    return lines


# --- running files -----------------------------------------------------------------------------


class Status(StrEnum):
    PASSED = "ok"
    FAILED = "FAIL"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    status: Status
    details: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileResult:
    path: Path
    cases: tuple[CaseResult, ...] = ()
    # Set when the file could not be run at all.
    error: str = ""
    problems: tuple[str, ...] = ()


class _CaseError(Exception):
    pass


def run_case(ruleset: Ruleset, file: Path, case: CaseSpec, at: datetime) -> CaseResult:
    at = case.at or at
    try:
        alerts = _alerts(ruleset, file, case, at)
    except _CaseError as exc:
        return CaseResult(case.name, Status.ERROR, (str(exc),))
    silences = [parse_matchers(text_) for text_ in case.silences]
    muted = mutes(ruleset, alerts, at, silences)
    live = [alert for alert, reasons in zip(alerts, muted, strict=True) if not reasons]
    outcome = simulate(ruleset, live, at, case.expect.pages_until)
    details = check(case.expect, outcome)
    for key, reason in (
        ("in_maintenance", "maintenance"),
        ("silenced", "silenced"),
        ("inhibited", "inhibited"),
    ):
        wanted = getattr(case.expect, key)
        got = any(reason in reasons for reasons in muted)
        if wanted is not None and wanted != got:
            details += _mismatch(key, _yaml_bool(wanted), _yaml_bool(got))
    unchecked = tuple(key for key in UNCHECKED if getattr(case.expect, key) is not None)
    status = Status.FAILED if details else Status.PASSED
    return CaseResult(case.name, status, tuple(details), unchecked)


def mutes(
    ruleset: Ruleset,
    alerts: Sequence[Alert],
    at: datetime,
    silences: Sequence[Sequence[Matcher]] = (),
) -> list[set[str]]:
    """Per alert, why it would be muted: "maintenance" (a window covers it), "inhibited" (another
    firing alert of the case is a matching source). Muted alerts open no incident."""
    reasons: list[set[str]] = []
    for alert in alerts:
        found: set[str] = set()
        if ruleset.windows.covering(alert.labels, at) is not None:
            found.add("maintenance")
        if any(matches_all(matchers, alert.labels) for matchers in silences):
            found.add("silenced")
        for rule in ruleset.inhibit:
            if alert.status is not AlertStatus.FIRING or not matches_all(rule.target, alert.labels):
                continue
            token = rule.token(alert.labels)
            if any(
                other is not alert
                and other.status is AlertStatus.FIRING
                and matches_all(rule.source, other.labels)
                and rule.token(other.labels) == token
                for other in alerts
            ):
                found.add("inhibited")
        reasons.append(found)
    return reasons


def _alerts(ruleset: Ruleset, file: Path, case: CaseSpec, at: datetime) -> list[Alert]:
    if case.alerts is not None:
        return [
            alert_from_labels(a.labels, at, annotations=a.annotations, status=a.status)
            for a in case.alerts
        ]
    assert case.payload is not None  # CaseSpec requires alerts or payload
    source = file.parent / case.payload
    try:
        body = source.read_bytes()
    except OSError as exc:
        raise _CaseError(f"payload: cannot read {source}: {exc.strerror}") from None
    name = case.integration or "alertmanager"
    kind = source_kind(ruleset, name)
    if kind is None:
        raise _CaseError(
            f"integration: unknown integration {name!r}; one of {integration_choices(ruleset)}"
        )
    try:
        return parse(kind, body, integration=name, now=at)
    except PayloadError as exc:
        raise _CaseError(f"payload: {source} is not a valid {kind} payload: {exc}") from None


def run_file(path: Path, rules_for: Callable[[Path], Ruleset], *, rules: Path | None) -> FileResult:
    """Run every case of the test file at `path` against `rules` (else the file's `rules:`)."""
    try:
        spec = load_test_file(path)
    except RuleTestError as exc:
        return FileResult(path, error="not a valid test file", problems=tuple(exc.problems))
    if rules is None and spec.rules is None:
        return FileResult(
            path, error="no rules: add `rules: ..` (relative to this file) or pass --rules"
        )
    rules_path = rules if rules is not None else path.parent / str(spec.rules)
    try:
        ruleset = rules_for(rules_path)
    except ConfigError as exc:
        return FileResult(
            path, error=f"the rules in {rules_path} are invalid", problems=tuple(exc.problems)
        )
    return FileResult(path, tuple(run_case(ruleset, path, case, spec.at) for case in spec.cases))


def run_files(paths: Sequence[Path], *, rules: Path | None = None) -> list[FileResult]:
    """Run each file; rule sets are loaded once per directory, offline (secrets unresolved)."""
    loaded: dict[Path, Ruleset] = {}

    def rules_for(path: Path) -> Ruleset:
        key = path.resolve()
        if key not in loaded:
            loaded[key] = load_ruleset(path, {}, resolve_secrets=False)
        return loaded[key]

    return [run_file(path, rules_for, rules=rules) for path in paths]


# --- output ------------------------------------------------------------------------------------


def render(results: Sequence[FileResult]) -> str:
    """The report `sevrouter test` prints: per file, a line per case, then the summary."""
    lines: list[str] = []
    for result in results:
        lines.append(str(result.path))
        if result.error:
            lines.append(f"  {Status.ERROR:<5} {result.error}")
            lines.extend(f"        {problem}" for problem in result.problems)
        for case in result.cases:
            note = f" (not checked yet: {', '.join(case.unchecked)})" if case.unchecked else ""
            lines.append(f"  {case.status:<5} {case.name}{note}")
            lines.extend(f"        {detail}" for detail in case.details)
    lines.append(summary(results))
    return "\n".join(lines) + "\n"


def _count(results: Sequence[FileResult], status: Status) -> int:
    return sum(case.status is status for result in results for case in result.cases)


def summary(results: Sequence[FileResult]) -> str:
    """`3 passed, 1 failed`, and `, 1 error` when a file or case could not be run."""
    text = f"{_count(results, Status.PASSED)} passed, {_count(results, Status.FAILED)} failed"
    errors = _count(results, Status.ERROR) + sum(bool(result.error) for result in results)
    if errors:
        text += f", {errors} error{'s' if errors > 1 else ''}"
    return text


def exit_code(results: Sequence[FileResult]) -> int:
    """2 when a file or case could not be run, 1 when a case failed, else 0."""
    if any(result.error for result in results) or _count(results, Status.ERROR):
        return 2
    return 1 if _count(results, Status.FAILED) else 0
