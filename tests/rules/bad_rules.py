"""The bad rule files in `tests/rules/bad/`: one valid base rule set, and one defect per file.

Each bad file is the complete `BASE` with exactly one text replacement (`Defect.old` -> `new`),
under a leading comment that states the defect. So the defect alone is what makes the file
invalid; `test_bad_rules.py` checks that the files on disk are exactly what this module makes and
that `BASE` itself loads. After changing `BASE` or a defect, regenerate the files with

    .venv/bin/python -m tests.rules.bad_rules
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BAD_DIR = Path(__file__).resolve().parent / "bad"
# The only environment variable BASE references; the tests set it so secrets resolve.
TOKEN_ENV = "BAD_RULES_TOKEN"
ENVIRON = {TOKEN_ENV: "bad-rules-test-token"}

BASE = """\
integrations:
  - name: alertmanager
    type: alertmanager
    auth:
      bearer: {env: BAD_RULES_TOKEN}

severities:
  SEV1: {response_time: 0s, escalate_after: 5m, paging: page}
  SEV2: {response_time: 15m, paging: page}
  SEV3: {response_time: 1h, paging: notify_then_page}
  SEV4: {response_time: next_business_day, paging: notify_business_hours}

channels:
  - name: pager
    type: log
  - name: chat
    type: log

teams:
  - name: platform
    channel: chat
    escalation:
      - notify: [pager]
        wait: 5m
  - name: web
    channel: chat

defaults:
  team: platform
  severity: SEV3
  group_by: [alertname, cluster]

rules:
  - name: heartbeat
    match: 'alertname="Watchdog"'
    drop: true

  - name: critical
    match: ['severity="critical"']
    team: platform
    severity: SEV2
    title: "{{ labels.alertname }} is critical"

  - name: by-label
    match: 'source="grafana"'
    team: platform
    severity: SEV3
    severity_from_label:
      label: severity
      values: {critical: SEV2, warning: SEV3}

  - name: web
    match: 'team="web"'
    team: web
    severity: SEV3
"""


@dataclass(frozen=True)
class Defect:
    """`old` (which occurs exactly once in BASE) replaced by `new`; `comment` says what is wrong."""

    comment: str
    old: str
    new: str


DEFECTS: dict[str, Defect] = {
    "unknown-key.yaml": Defect(
        "Rule `critical` says `matchers:` (Alertmanager's spelling) instead of `match:`.",
        "    match: ['severity=\"critical\"']",
        "    matchers: ['severity=\"critical\"']",
    ),
    "undefined-team.yaml": Defect(
        "Rule `web` routes to team `frontend`, which no file defines.",
        "    team: web\n    severity: SEV3",
        "    team: frontend\n    severity: SEV3",
    ),
    "undefined-default-team.yaml": Defect(
        "`defaults.team` names team `platfrom` (a typo), which no file defines.",
        "  team: platform\n  severity: SEV3",
        "  team: platfrom\n  severity: SEV3",
    ),
    "undefined-team-channel.yaml": Defect(
        "Team `web` posts to channel `slack`, which no file defines.",
        "  - name: web\n    channel: chat",
        "  - name: web\n    channel: slack",
    ),
    "undefined-channel-in-escalation.yaml": Defect(
        "Team `platform`'s first escalation step pages channel `pagerduty`, which is not defined.",
        "      - notify: [pager]",
        "      - notify: [pagerduty]",
    ),
    "bad-matcher.yaml": Defect(
        "Rule `critical` has a matcher with `>`, which is not a matcher operator.",
        "    match: ['severity=\"critical\"']",
        "    match: ['severity > critical']",
    ),
    "bad-regex.yaml": Defect(
        "Rule `critical` has a regex matcher with an unclosed group.",
        "    match: ['severity=\"critical\"']",
        "    match: ['severity=~\"crit(ical\"']",
    ),
    "empty-matcher.yaml": Defect(
        "Rule `critical` has an empty matcher string, which would match every alert.",
        "    match: ['severity=\"critical\"']",
        "    match: ['severity=\"critical\"', '']",
    ),
    "bad-severity.yaml": Defect(
        "Rule `critical` gives the label value `critical` where a SEV level belongs.",
        "    team: platform\n    severity: SEV2",
        "    team: platform\n    severity: critical",
    ),
    "severity-values-differ-in-case.yaml": Defect(
        "Rule `by-label` maps `critical` and `Critical` (equal when compared) to different SEVs.",
        "      values: {critical: SEV2, warning: SEV3}",
        "      values: {critical: SEV2, warning: SEV3, Critical: SEV1}",
    ),
    "bad-duration.yaml": Defect(
        "An escalation wait written in words instead of as a duration.",
        "        wait: 5m",
        "        wait: 5 minutes",
    ),
    "bad-duration-bool.yaml": Defect(
        "An escalation wait of `yes`, which YAML reads as true (and float() as 1 second).",
        "        wait: 5m",
        "        wait: yes",
    ),
    "duplicate-rule-name.yaml": Defect(
        "Two rules are called `critical`.",
        "  - name: web\n    match:",
        "  - name: critical\n    match:",
    ),
    "duplicate-key.yaml": Defect(
        "Rule `critical` gives `severity` twice; YAML loaders silently keep the last one.",
        "    severity: SEV2\n",
        "    severity: SEV2\n    severity: SEV1\n",
    ),
    "missing-sev-policy.yaml": Defect(
        "The severity table has no SEV4 policy.",
        "  SEV4: {response_time: next_business_day, paging: notify_business_hours}\n",
        "",
    ),
    "sev1-route-without-paging.yaml": Defect(
        "Rule `web` routes SEV1 to team `web`, whose escalation policy pages nobody.",
        "    team: web\n    severity: SEV3",
        "    team: web\n    severity: SEV1",
    ),
    "default-route-without-paging.yaml": Defect(
        "Unmatched alerts go to team `web` at SEV2, a paging severity, but `web` pages nobody.",
        "  team: platform\n  severity: SEV3",
        "  team: web\n  severity: SEV2",
    ),
    "group-by-wildcard-with-labels.yaml": Defect(
        "`group_by` combines '...' (every label) with a label name.",
        "  group_by: [alertname, cluster]",
        "  group_by: ['...', cluster]",
    ),
    "template-syntax-error.yaml": Defect(
        "Rule `critical`'s title template closes `{{` with a single `}`.",
        'title: "{{ labels.alertname }} is critical"',
        'title: "{{ labels.alertname } is critical"',
    ),
    "secret-inline.yaml": Defect(
        "The webhook token is written into the file instead of referenced as {env: NAME}.",
        "      bearer: {env: BAD_RULES_TOKEN}",
        "      bearer: s3cr3t-written-inline",
    ),
    "auth-missing.yaml": Defect(
        "Integration `alertmanager` has no auth section (open endpoints must say `none: true`).",
        "    type: alertmanager\n    auth:\n      bearer: {env: BAD_RULES_TOKEN}\n",
        "    type: alertmanager\n",
    ),
    "drop-with-severity.yaml": Defect(
        "Drop rule `heartbeat` also sets a severity, as if it routed.",
        "    drop: true\n",
        "    drop: true\n    severity: SEV4\n",
    ),
    "not-yaml.yaml": Defect(
        "Rule `critical`'s title template is not quoted, so YAML reads `{{` as a mapping.",
        'title: "{{ labels.alertname }} is critical"',
        "title: {{ labels.alertname }} is critical",
    ),
}


def render(name: str) -> str:
    """The text of bad file `name`: its comment, then BASE with its one defect."""
    defect = DEFECTS[name]
    if BASE.count(defect.old) != 1:
        raise ValueError(f"{name}: {defect.old!r} occurs {BASE.count(defect.old)} times in BASE")
    header = (
        f"# {defect.comment}\n# Generated by tests/rules/bad_rules.py from its BASE; do not edit.\n"
    )
    return header + BASE.replace(defect.old, defect.new)


def write_all(directory: Path = BAD_DIR) -> None:
    directory.mkdir(exist_ok=True)
    for stale in directory.glob("*.yaml"):
        if stale.name not in DEFECTS:
            stale.unlink()
    for name in DEFECTS:
        (directory / name).write_text(render(name), encoding="utf-8")


if __name__ == "__main__":
    write_all()
