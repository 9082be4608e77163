"""`explain`: why an alert gets its severity, team and group, and who would be told when.

Pure: a rule set, alerts and an instant in, a JSON-ready report out. For each alert the report
lists every rule tried (matched, no match, not reached) with each matcher's reason, the decisions,
and for each decision the escalation that would run from that instant if nobody acknowledged:
every notification with its targets resolved (schedules to whoever is on call then). The same
simulation backs `sevrouter test` (`router/ruletest.py`), so a test's expected pages and the
explain output never disagree.

Report shape (`explain`):

    {"at": ISO, "alerts": [{
        "labels": {...}, "status": "firing", "test": false,
        "rules": [{"rule", "file", "matched", "outcome", "reasons": [...]}],
        "dropped_by": null | RULE,
        "decisions": [{"rule", "severity", "severity_reason", "team", "group_key", "paging",
                       "response_time", "escalation": [CHECKPOINT, ...]}],
        "group_keys": [...],
        "silences": [], "inhibitions": [], "maintenance": []}]}
    CHECKPOINT = {"minute", "at", "note", "notify": [{"step", "targets": [...],
                  "recipients": [{"target", "channel", "address"}], "problems": [...]}]}

Silences, inhibitions and maintenance windows are not evaluated here yet: their lists are
always empty placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router.alert import Alert, AlertStatus, Source, fingerprint
from router.durations import format_duration
from router.escalation import TEAM_CHANNEL_STEP, Notify, PolicySnapshot, advance, start
from router.matchers import matches_all, quote
from router.ruleset import DEFAULT_RULE, CompiledRule, Decision, Ruleset
from router.sources import SourceKind
from router.targets import Recipient, resolve

# An escalation ends by itself (steps x repeats, at most 11 rounds); this only guards the loop.
_MAX_CHECKPOINTS = 1000


@dataclass(frozen=True, slots=True)
class Notification:
    """One escalation step (0: the team channel) told at a checkpoint, targets resolved."""

    step: int
    targets: tuple[str, ...]  # as configured: "schedule:primary", "channel:pager"
    recipients: tuple[Recipient, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The escalation at one instant: when it opens, then at each deadline passed unacknowledged."""

    at: datetime
    minute: float  # since the incident opened
    notifications: tuple[Notification, ...]
    note: str


def timeline(
    ruleset: Ruleset, decision: Decision, opened: datetime, *, until: datetime | None = None
) -> tuple[Checkpoint, ...]:
    """What `escalation.start` and `advance` do for an incident of `decision` opened at
    `opened` that nobody acknowledges: every checkpoint up to `until` (inclusive), or until the
    escalation has nothing left to do."""
    team = ruleset.team(decision.team)
    if team is None:  # a validated rule set routes only to teams it defines
        return ()
    policy = ruleset.policy(decision.severity)
    snapshot = PolicySnapshot.of(team)
    hours = ruleset.config.business_hours
    now = opened
    plan = start(policy, snapshot, hours, now)
    checkpoints = [_checkpoint(ruleset, opened, now, plan.notify, plan.note)]
    while len(checkpoints) < _MAX_CHECKPOINTS and plan.next_check is not None:
        if until is not None and plan.next_check > until:
            break
        now = plan.next_check
        plan = advance(policy, snapshot, hours, plan.position, now)
        checkpoints.append(_checkpoint(ruleset, opened, now, plan.notify, plan.note))
    return tuple(checkpoints)


def _checkpoint(
    ruleset: Ruleset, opened: datetime, now: datetime, notify: Sequence[Notify], note: str
) -> Checkpoint:
    notifications = []
    for item in sorted(notify, key=lambda n: n.step):
        resolution = resolve(ruleset, item.targets, now)
        targets = tuple(f"{t.kind}:{t.name}" for t in item.targets)
        notifications.append(
            Notification(item.step, targets, resolution.recipients, resolution.problems)
        )
    minute = (now - opened).total_seconds() / 60
    return Checkpoint(now, minute, tuple(notifications), note)


def alert_from_labels(
    labels: Mapping[str, str],
    at: datetime,
    *,
    annotations: Mapping[str, str] | None = None,
    status: AlertStatus = AlertStatus.FIRING,
) -> Alert:
    """An alert as a source would hand it on: empty label values dropped (Alertmanager treats
    them as absent), starting at `at`."""
    cleaned = {name: value for name, value in labels.items() if value}
    return Alert(
        source=Source.ALERTMANAGER,
        integration="explain",
        status=status,
        labels=cleaned,
        annotations=dict(annotations or {}),
        starts_at=at,
        ends_at=at if status is AlertStatus.RESOLVED else None,
        fingerprint=fingerprint(cleaned),
    )


def source_kind(ruleset: Ruleset, integration: str) -> SourceKind | None:
    """The wire format of `integration`: an integration the rules define, or a format name."""
    defined = ruleset.integration(integration)
    if defined is not None:
        return SourceKind(defined.type)
    try:
        return SourceKind(integration)
    except ValueError:
        return None


def integration_choices(ruleset: Ruleset) -> str:
    names = sorted({*ruleset.integrations, *(kind.value for kind in SourceKind)})
    return ", ".join(names)


def explain(ruleset: Ruleset, alerts: Sequence[Alert], at: datetime) -> dict[str, Any]:
    """The report for `alerts` arriving at `at` (see the module docstring for its shape)."""
    return {"at": at.isoformat(), "alerts": [_alert_report(ruleset, a, at) for a in alerts]}


def _alert_report(ruleset: Ruleset, alert: Alert, at: datetime) -> dict[str, Any]:
    evaluation = ruleset.explain(alert.labels)
    window = ruleset.windows.covering(alert.labels, at)
    files = {rule.name: rule.file for rule in ruleset.rules}
    opens = alert.status is AlertStatus.FIRING and not alert.is_test
    decisions = []
    for decision in evaluation.decisions:
        policy = ruleset.policy(decision.severity)
        checkpoints = timeline(ruleset, decision, at) if opens else ()
        decisions.append(
            {
                "rule": decision.rule,
                "severity": decision.severity.value,
                "severity_reason": severity_reason(ruleset.rule(decision.rule), alert.labels),
                "team": decision.team,
                "group_key": decision.group_key,
                "paging": policy.paging,
                "response_time": policy.response_time,
                "escalation": [_checkpoint_json(c) for c in checkpoints],
            }
        )
    return {
        "labels": dict(alert.labels),
        "status": alert.status.value,
        "test": alert.is_test,
        "rules": [
            {
                "rule": step.rule,
                "file": files.get(step.rule, "(defaults)"),
                "matched": step.matched,
                "outcome": step.outcome,
                "reasons": list(step.reasons),
            }
            for step in evaluation.trace
        ],
        "dropped_by": evaluation.dropped_by,
        "decisions": decisions,
        "group_keys": [d.group_key for d in evaluation.decisions],
        # Silences live in Redis: the receiver's POST /api/v1/explain fills them in.
        "silences": [],
        "inhibitions": [
            {"rule": rule.name, "equal": list(rule.equal)}
            for rule in ruleset.inhibit
            if matches_all(rule.target, alert.labels)
        ],
        "maintenance": [window.name] if window is not None else [],
    }


def severity_reason(rule: CompiledRule, labels: Mapping[str, str]) -> str:
    """Where a decision's severity came from, e.g. `severity="critical"`."""
    if rule.name == DEFAULT_RULE:
        return "defaults.severity"
    label = rule.severity_label
    if label is None:
        return "the rule's severity"
    value = labels.get(label)
    if value is None:
        return f"no {label} label; the rule's severity"
    if value.lower() in rule.severity_values:
        return f"{label}={quote(value)}"
    return f"{label}={quote(value)} is not listed; the rule's severity"


def minutes(value: float) -> int | float:
    """Whole minutes as an int, others as a float to 4 decimals (for JSON and YAML)."""
    return int(value) if float(value).is_integer() else round(value, 4)


def _checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "minute": minutes(checkpoint.minute),
        "at": checkpoint.at.isoformat(),
        "note": checkpoint.note,
        "notify": [
            {
                "step": n.step,
                "targets": list(n.targets),
                "recipients": [
                    {"target": r.target, "channel": r.channel, "address": r.address}
                    for r in n.recipients
                ],
                "problems": list(n.problems),
            }
            for n in checkpoint.notifications
        ],
    }


# --- text --------------------------------------------------------------------------------------


def render_text(report: Mapping[str, Any]) -> str:
    """The report as the CLI prints it."""
    at = datetime.fromisoformat(report["at"])
    lines: list[str] = []
    live = report.get("live")
    if live:
        lines.append(
            f"{live['incident']} was recorded as rule {live['rule']}, {live['severity']}, "
            f"team {live['team']}; explained below with the local rules"
        )
    for index, alert in enumerate(report["alerts"]):
        if index:
            lines.append("")
        lines.extend(_alert_text(alert, at))
    return "\n".join(lines) + "\n"


def _alert_text(alert: Mapping[str, Any], at: datetime) -> list[str]:
    labels = ", ".join(f"{k}={quote(v)}" for k, v in sorted(alert["labels"].items()))
    status = "grafana test notification" if alert["test"] else alert["status"]
    lines = [f"alert {{{labels}}} ({status}) at {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"]
    width = max((len(r["rule"]) for r in alert["rules"]), default=0)
    lines.append("  rules, in order:")
    for rule in alert["rules"]:
        lines.append(f"    {rule['rule']:<{width}}  {rule['outcome']:<16}  {rule['file']}")
        lines.extend(f"      {reason}" for reason in rule["reasons"])
    if alert["dropped_by"] is not None:
        lines.append(f"  dropped by rule {alert['dropped_by']}: no incident, nobody is told")
    for decision in alert["decisions"]:
        lines.extend(_decision_text(decision, opens=alert["status"] == "firing"))
    for name in alert["maintenance"]:
        lines.append(f"  muted now: maintenance window {name}")
    for rule in alert["inhibitions"]:
        equal = ", ".join(rule["equal"]) or "no labels"
        lines.append(
            f"  inhibition rule {rule['rule']}: muted while a matching source alert fires "
            f"(same {equal})"
        )
    for silence in alert["silences"]:
        lines.append(f"  muted now: silence {silence}")
    return lines


def _decision_text(decision: Mapping[str, Any], *, opens: bool) -> list[str]:
    lines = [
        f"  decision: rule {decision['rule']} -> {decision['severity']} "
        f"({decision['severity_reason']}), team {decision['team']}",
        f"    group key: {decision['group_key']}",
    ]
    response = decision["response_time"]
    deadline = "next business day" if response is None else format_duration(response)
    lines.append(f"    paging: {decision['paging']}, response time {deadline}")
    if not opens:
        lines.append("    not firing: opens no incident, nobody is told")
        return lines
    lines.append("    if nobody acknowledges:")
    for checkpoint in decision["escalation"]:
        when = _when(checkpoint["minute"])
        if not checkpoint["notify"]:
            lines.append(f"      {when:<8}{checkpoint['note']}")
        for notify in checkpoint["notify"]:
            who = ", ".join(_recipient_text(r) for r in notify["recipients"]) or "nobody"
            if set(notify["targets"]) != {r["target"] for r in notify["recipients"]}:
                who = f"{', '.join(notify['targets'])} -> {who}"
            step = _step_name(notify["step"])
            lines.append(f"      {when:<8}{step}: {who}")
            lines.extend(f"      {'':<8}  ! {problem}" for problem in notify["problems"])
    return lines


def _when(minute: float) -> str:
    return "now" if minute == 0 else f"+{format_duration(minute * 60)}"


def _step_name(step: int) -> str:
    return "team channel" if step == TEAM_CHANNEL_STEP else f"step {step}"


def _recipient_text(recipient: Mapping[str, Any]) -> str:
    text = str(recipient["target"])
    if not text.startswith("channel:"):
        text += f" via {recipient['channel']}"
    if recipient["address"]:
        text += f" ({recipient['address']})"
    return text


def parse_at(text: str) -> datetime:
    """An ISO time; without an offset, UTC. Raises ValueError naming the text."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO time (e.g. 2026-11-26T10:00:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


__all__ = [
    "Checkpoint",
    "Notification",
    "alert_from_labels",
    "explain",
    "minutes",
    "parse_at",
    "render_text",
    "severity_reason",
    "source_kind",
    "timeline",
]
