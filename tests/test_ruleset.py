"""Tests for router.ruleset: `evaluate` and `explain`, group keys, the decision cache, message
templates and secrets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

import router.ruleset as ruleset_module
from router.alert import Alert, AlertStatus, Source, fingerprint
from router.channelschema import WebhookChannelConfig
from router.errors import ConfigError
from router.ruleset import Decision, Ruleset, TraceStep, load_ruleset, template_context
from router.secrets import Secret
from router.severity import Severity
from router.templates import compile_template, render

TOKEN = "ruleset-test-token"
PAGER_URL = "https://pager.example/hook?key=ruleset-test-url-secret"
HMAC_SECRET = "ruleset-test-hmac-secret"

RULES = """\
integrations:
  - name: am
    type: alertmanager
    auth:
      bearer: {env: RULESET_TEST_TOKEN}
  - name: signed
    type: grafana
    auth:
      hmac:
        secret: {file: HMAC_FILE}

severities:
  SEV1: {response_time: 0s, paging: page}
  SEV2: {response_time: 15m, paging: page}
  SEV3: {response_time: 1h, paging: notify_then_page}
  SEV4: {response_time: next_business_day, paging: notify_business_hours}

channels:
  - name: pager
    type: webhook
    url: {env: RULESET_TEST_PAGER_URL}
  - name: chat
    type: log

teams:
  - {name: platform, channel: chat, escalation: [{notify: [pager]}]}
  - {name: db, channel: chat, escalation: [{notify: [pager]}]}
  - {name: audit, channel: chat}

defaults:
  team: platform
  severity: SEV3
  group_by: [alertname, cluster]

rules:
  - name: heartbeat
    match: 'alertname="Watchdog"'
    drop: true
  - name: audit
    match: 'env="prod"'
    team: audit
    severity: SEV4
    continue: true
  - name: database
    match: ['team="db"', 'severity=~"critical|warning"']
    team: db
    severity: SEV2
    group_by: [alertname]
  - name: per-alert
    match: 'alertname="DiskFull"'
    group_by: ['...']
  - name: critical
    match: 'severity="critical"'
    severity: SEV2
    title: "{{ labels.alertname }} on {{ labels.instance }}"
    summary: "{{ annotations.summary }} ({{ severity }} for {{ team }}, rule {{ rule }})"
    runbook: "https://runbooks.example/{{ labels.alertname | lower }}"
  - name: by-label
    match: 'source="grafana"'
    severity_from_label: {label: severity, values: {Critical: SEV1, warning: SEV4}}
  - name: untitled
    match: 'alertname="Untitled"'
    title: "{{ labels.nope }}"
  - name: broken
    match: 'alertname="Broken"'
    title: "{{ 1 / 0 }}"
    summary: "{{ labels.nope.deeper }}"
    runbook: "{% macro loop() %}{{ loop() }}{% endmacro %}{{ loop() }}"
  - name: sandbox
    match: 'alertname="Sandbox"'
    title: "[{{ ''.__class__ }}]"
    summary: "{{ ''.__class__.__mro__ }}"
"""


def write_rules(directory: Path) -> Path:
    """RULES in `directory/rules.yaml`, its HMAC secret in `directory/hmac-secret`."""
    secret_file = directory / "hmac-secret"
    secret_file.write_text(f"  {HMAC_SECRET}\n", encoding="utf-8")
    path = directory / "rules.yaml"
    path.write_text(RULES.replace("HMAC_FILE", str(secret_file)), encoding="utf-8")
    return path


def environ() -> dict[str, str]:
    return {"RULESET_TEST_TOKEN": TOKEN, "RULESET_TEST_PAGER_URL": PAGER_URL}


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    return write_rules(tmp_path)


@pytest.fixture
def rules(rules_file: Path) -> Ruleset:
    return load_ruleset(rules_file, environ())


def make_alert(labels: dict[str, str], annotations: dict[str, str] | None = None) -> Alert:
    return Alert(
        source=Source.ALERTMANAGER,
        integration="am",
        status=AlertStatus.FIRING,
        labels=labels,
        annotations=annotations or {},
        starts_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        ends_at=None,
        fingerprint=fingerprint(labels),
    )


SEV1, SEV2, SEV3, SEV4 = Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4

# --------------------------------------------------------------------------------------------
# evaluate / explain: which rules decide
# --------------------------------------------------------------------------------------------

EVALUATE = [
    # First match wins: `database` comes before `critical`, which would also match.
    pytest.param(
        {"alertname": "PgDown", "team": "db", "severity": "critical", "cluster": "c1"},
        [Decision("database", SEV2, "db", 'database:{alertname="PgDown"}')],
        None,
        id="first-match-wins",
    ),
    # `continue: true` routes and carries on: audit's decision, then critical's.
    pytest.param(
        {"alertname": "ApiDown", "env": "prod", "severity": "critical", "instance": "a:1"},
        [
            Decision("audit", SEV4, "audit", 'audit:{alertname="ApiDown",cluster=""}'),
            Decision("critical", SEV2, "platform", 'critical:{alertname="ApiDown",cluster=""}'),
        ],
        None,
        id="continue-yields-several-decisions",
    ),
    # A matching `continue` rule alone is enough: the defaults do not apply as well.
    pytest.param(
        {"alertname": "Slow", "env": "prod"},
        [Decision("audit", SEV4, "audit", 'audit:{alertname="Slow",cluster=""}')],
        None,
        id="continue-rule-only",
    ),
    # A drop rule yields no decisions and names itself.
    pytest.param({"alertname": "Watchdog"}, [], "heartbeat", id="drop"),
    # The drop rule comes before the `continue` rule, so it wins even in prod.
    pytest.param({"alertname": "Watchdog", "env": "prod"}, [], "heartbeat", id="drop-first"),
    # Nothing matches: the defaults (SEV3, team platform, group_by alertname+cluster).
    pytest.param(
        {"alertname": "Odd", "cluster": "c1", "severity": "info"},
        [Decision("default", SEV3, "platform", 'default:{alertname="Odd",cluster="c1"}')],
        None,
        id="defaults-when-nothing-matches",
    ),
    # All matchers of a rule must match: team=db with severity=info is not `database`.
    pytest.param(
        {"alertname": "PgSlow", "team": "db", "severity": "info"},
        [Decision("default", SEV3, "platform", 'default:{alertname="PgSlow",cluster=""}')],
        None,
        id="matchers-are-anded",
    ),
    # group_by ['...'] groups by every label, sorted by name; severity/team from the defaults.
    pytest.param(
        {"instance": "db1", "alertname": "DiskFull", "device": "sda"},
        [
            Decision(
                "per-alert",
                SEV3,
                "platform",
                'per-alert:{alertname="DiskFull",device="sda",instance="db1"}',
            )
        ],
        None,
        id="group-by-every-label",
    ),
    # severity_from_label compares case-insensitively ("CRITICAL" is listed as "Critical").
    pytest.param(
        {"alertname": "Checkout", "source": "grafana", "severity": "CRITICAL"},
        [Decision("by-label", SEV1, "platform", 'by-label:{alertname="Checkout",cluster=""}')],
        None,
        id="severity-from-label",
    ),
    # No rule severity and an unlisted value: the defaults' severity.
    pytest.param(
        {"alertname": "Checkout", "source": "grafana", "severity": "meh"},
        [Decision("by-label", SEV3, "platform", 'by-label:{alertname="Checkout",cluster=""}')],
        None,
        id="severity-from-label-fallback",
    ),
]


@pytest.mark.parametrize(("labels", "decisions", "dropped_by"), EVALUATE)
def test_evaluate(
    rules: Ruleset, labels: dict[str, str], decisions: list[Decision], dropped_by: str | None
) -> None:
    evaluation = rules.evaluate(make_alert(labels))
    assert evaluation.decisions == tuple(decisions)
    assert evaluation.dropped_by == dropped_by
    assert evaluation.trace == ()  # only explain records a trace


@pytest.mark.parametrize(("labels", "decisions", "dropped_by"), EVALUATE)
def test_explain_decides_like_evaluate(
    rules: Ruleset, labels: dict[str, str], decisions: list[Decision], dropped_by: str | None
) -> None:
    evaluation = rules.explain(labels)
    assert evaluation.decisions == tuple(decisions)
    assert evaluation.dropped_by == dropped_by


def not_reached(*names: str) -> list[TraceStep]:
    return [TraceStep(name, False, (), "not reached") for name in names]


EXPLAIN = [
    # A match with continue, misses with a reason per matcher, a final match, then the rules
    # after it, not reached (and without reasons: they were not evaluated).
    pytest.param(
        {"alertname": "ApiDown", "env": "prod", "severity": "critical"},
        [
            TraceStep(
                "heartbeat",
                False,
                ('alertname="Watchdog" did not match (alertname is "ApiDown")',),
                "no match",
            ),
            TraceStep("audit", True, ('env="prod" matched (env is "prod")',), "routed, continue"),
            TraceStep(
                "database",
                False,
                (
                    'team="db" did not match (label team is absent)',
                    'severity=~"critical|warning" matched (severity is "critical")',
                ),
                "no match",
            ),
            TraceStep(
                "per-alert",
                False,
                ('alertname="DiskFull" did not match (alertname is "ApiDown")',),
                "no match",
            ),
            TraceStep(
                "critical",
                True,
                ('severity="critical" matched (severity is "critical")',),
                "routed",
            ),
            *not_reached("by-label", "untitled", "broken", "sandbox"),
        ],
        id="continue-then-match",
    ),
    # A drop: the dropping rule and why, then everything after it not reached.
    pytest.param(
        {"alertname": "Watchdog"},
        [
            TraceStep(
                "heartbeat",
                True,
                ('alertname="Watchdog" matched (alertname is "Watchdog")',),
                "dropped",
            ),
            *not_reached("audit", "database", "per-alert", "critical"),
            *not_reached("by-label", "untitled", "broken", "sandbox"),
        ],
        id="drop",
    ),
]


@pytest.mark.parametrize(("labels", "expected"), EXPLAIN)
def test_explain_trace(rules: Ruleset, labels: dict[str, str], expected: list[TraceStep]) -> None:
    assert list(rules.explain(labels).trace) == expected


def test_explain_trace_when_nothing_matches(rules: Ruleset) -> None:
    trace = rules.explain({"alertname": "Odd"}).trace
    assert [step.outcome for step in trace] == ["no match"] * len(rules.rules) + ["routed"]
    assert trace[-1] == TraceStep("default", True, ("no rule matched",), "routed")
    assert trace[0].reasons == ('alertname="Watchdog" did not match (alertname is "Odd")',)


# --------------------------------------------------------------------------------------------
# Group keys
# --------------------------------------------------------------------------------------------

GROUP_KEYS = [
    # rule name, then the group_by labels in group_by order, values JSON-quoted.
    pytest.param(
        {"alertname": "ApiDown", "cluster": "c1", "severity": "critical"},
        'critical:{alertname="ApiDown",cluster="c1"}',
        id="format",
    ),
    # An absent group_by label counts as "" (as in Alertmanager, absent == empty).
    pytest.param(
        {"alertname": "ApiDown", "severity": "critical"},
        'critical:{alertname="ApiDown",cluster=""}',
        id="absent-label-is-empty",
    ),
    # Quotes and backslashes are escaped, so a value cannot forge another label; non-ASCII is
    # kept as UTF-8 (JSON string rules).
    pytest.param(
        {"alertname": 'A",cluster="x', "cluster": "c\\1 ü", "severity": "critical"},
        'critical:{alertname="A\\",cluster=\\"x",cluster="c\\\\1 ü"}',
        id="values-escaped",
    ),
]


@pytest.mark.parametrize(("labels", "key"), GROUP_KEYS)
def test_group_key(rules: Ruleset, labels: dict[str, str], key: str) -> None:
    (decision,) = rules.evaluate(make_alert(labels)).decisions
    assert decision.group_key == key


@pytest.mark.parametrize(
    "labels",
    [
        # Explicit group_by.
        pytest.param({"alertname": "ApiDown", "severity": "critical", "cluster": "c1"}, id="list"),
        # group_by ['...'].
        pytest.param({"alertname": "DiskFull", "instance": "db1", "device": "sda"}, id="all"),
    ],
)
def test_group_key_ignores_label_order(rules: Ruleset, labels: dict[str, str]) -> None:
    reordered = dict(reversed(list(labels.items())))
    assert list(reordered) != list(labels)
    (first,) = rules.explain(labels).decisions
    (second,) = rules.explain(reordered).decisions
    assert first.group_key == second.group_key


def test_group_key_differs_between_forged_and_real_labels(rules: Ruleset) -> None:
    forged = {"alertname": 'A",cluster="x', "severity": "critical"}
    real = {"alertname": "A", "cluster": "x", "severity": "critical"}
    (one,) = rules.explain(forged).decisions
    (two,) = rules.explain(real).decisions
    assert one.group_key != two.group_key


# --------------------------------------------------------------------------------------------
# The decision cache
# --------------------------------------------------------------------------------------------


def test_cache_returns_the_same_evaluation(rules: Ruleset) -> None:
    labels = {"alertname": "ApiDown", "severity": "critical"}
    first = rules.evaluate(make_alert(labels))
    # Same labels (another instance of the alert, other annotations): served from the cache.
    again = rules.evaluate(make_alert(dict(labels), {"summary": "changed"}))
    assert again is first
    assert first.decisions == rules.explain(labels).decisions


@pytest.fixture
def rules_without_group_by_all(tmp_path: Path) -> Ruleset:
    path = write_rules(tmp_path)
    path.write_text(path.read_text().replace("    group_by: ['...']\n", ""))
    return load_ruleset(path, environ())


def test_alerts_differing_only_in_labels_no_rule_reads_share_one_evaluation(
    rules_without_group_by_all: Ruleset,
) -> None:
    rules = rules_without_group_by_all
    base = {"alertname": "ApiDown", "severity": "critical", "cluster": "eu-1"}
    first = rules.evaluate(make_alert({**base, "instance": "10.0.0.1:80", "pod": "api-1"}))
    # Another instance of the alert: no matcher, group_by or severity label reads `instance`.
    second = rules.evaluate(make_alert({**base, "instance": "10.0.0.2:80"}))
    assert second is first
    assert second.decisions == rules.explain({**base, "instance": "10.0.0.2:80"}).decisions
    # A label the rules read (group_by's cluster, a matcher's env) gets its own evaluation.
    other_cluster = rules.evaluate(make_alert({**base, "cluster": "us-1"}))
    assert other_cluster.decisions[0].group_key != first.decisions[0].group_key
    prod = rules.evaluate(make_alert({**base, "env": "prod"}))
    assert [d.rule for d in prod.decisions] == ["audit", "critical"]
    # Without the labels the critical rule reads: the default rule.
    assert rules.evaluate(make_alert({"alertname": "ApiDown"})).decisions[0].rule == "default"


def test_grouping_by_all_labels_keys_the_cache_by_the_whole_label_set(rules: Ruleset) -> None:
    first = rules.evaluate(make_alert({"alertname": "DiskFull", "instance": "a"}))
    second = rules.evaluate(make_alert({"alertname": "DiskFull", "instance": "b"}))
    assert first.decisions[0].group_key != second.decisions[0].group_key


def test_cache_is_bounded(rules: Ruleset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ruleset_module, "_CACHE_LIMIT", 2)
    alerts = [make_alert({"alertname": f"A{n}"}) for n in range(3)]
    first = rules.evaluate(alerts[0])
    rules.evaluate(alerts[1])
    assert len(rules._cache) == 2
    # Full: the cache is cleared before the third evaluation is stored.
    rules.evaluate(alerts[2])
    assert len(rules._cache) == 1
    # The first alert is evaluated afresh, to an equal result.
    again = rules.evaluate(alerts[0])
    assert again is not first
    assert again == first
    assert len(rules._cache) == 2


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------

MESSAGES = [
    # Labels, annotations and the decision (severity, team, rule) are in the context.
    pytest.param(
        {"alertname": "ApiDown", "instance": "api-1:8080", "severity": "critical"},
        {"summary": "API is down"},
        (
            "ApiDown on api-1:8080",
            "API is down (SEV2 for platform, rule critical)",
            "https://runbooks.example/apidown",
        ),
        id="labels-and-annotations",
    ),
    # Missing labels and annotations render as empty strings.
    pytest.param(
        {"alertname": "ApiDown", "severity": "critical"},
        {},
        ("ApiDown on", "(SEV2 for platform, rule critical)", "https://runbooks.example/apidown"),
        id="missing-render-empty",
    ),
    # A title that renders empty falls back to the rule name; no runbook template -> "".
    pytest.param({"alertname": "Untitled"}, {}, ("untitled", "", ""), id="empty-title"),
    # Run-time errors (arithmetic, attribute of an undefined, runaway recursion) give the
    # marked fallback instead of raising.
    pytest.param(
        {"alertname": "Broken"},
        {},
        (
            "(template error: division by zero)",
            "(template error: 'dict object' has no attribute 'nope')",
            "(template error: maximum recursion depth exceeded)",
        ),
        id="runtime-errors",
    ),
    # The sandbox: dunder attributes are undefined (empty), and using them is an error.
    pytest.param(
        {"alertname": "Sandbox"},
        {},
        (
            "[]",
            "(template error: access to attribute '__class__' of 'str' object is unsafe.)",
            "",
        ),
        id="sandbox",
    ),
    # The default rule's title and summary: alertname (in namespace), summary or description.
    pytest.param(
        {"alertname": "Odd", "namespace": "shop"},
        {"description": "something odd"},
        ("Odd in shop", "something odd", ""),
        id="default-templates",
    ),
]


@pytest.mark.parametrize(("labels", "annotations", "expected"), MESSAGES)
def test_messages(
    rules: Ruleset,
    labels: dict[str, str],
    annotations: dict[str, str],
    expected: tuple[str, str, str],
) -> None:
    alert = make_alert(labels, annotations)
    (decision,) = rules.evaluate(alert).decisions
    rendered = (
        rules.render_title(decision, alert),
        rules.render_summary(decision, alert),
        rules.render_runbook(decision, alert),
    )
    assert rendered == expected


def test_template_context_exposes_alert_and_decision() -> None:
    alert = make_alert({"alertname": "ApiDown"})
    decision = Decision("critical", SEV2, "platform", "key")
    template = compile_template(
        "{{ status }} {{ starts_at.isoformat() }} {{ severity }} {{ team }} {{ rule }} {{ values }}"
    )
    assert render(template, template_context(decision, alert)) == (
        "firing 2026-01-02T03:04:05+00:00 SEV2 platform critical {}"
    )


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def test_secrets_resolve_from_env_and_file(rules: Ruleset) -> None:
    am, signed, pager = rules.integration("am"), rules.integration("signed"), rules.channel("pager")
    assert am is not None and am.auth.bearer is not None
    assert signed is not None and signed.auth.hmac is not None
    assert isinstance(pager, WebhookChannelConfig)
    assert rules.secret(am.auth.bearer).reveal() == TOKEN
    assert rules.secret(pager.url).reveal() == PAGER_URL
    # A file secret is stripped of surrounding whitespace (editors add a final newline).
    assert rules.secret(signed.auth.hmac.secret).reveal() == HMAC_SECRET


SECRET_PROBLEMS = [
    # An unset variable is named; nothing else is reported.
    pytest.param(
        {"RULESET_TEST_TOKEN": None},
        False,
        [
            "{f}: integrations[am].auth.bearer: environment variable RULESET_TEST_TOKEN is not "
            "set or empty"
        ],
        id="missing-env",
    ),
    # An empty variable is as good as none.
    pytest.param(
        {"RULESET_TEST_PAGER_URL": ""},
        False,
        [
            "{f}: channels[pager].url: environment variable RULESET_TEST_PAGER_URL is not set "
            "or empty"
        ],
        id="empty-env",
    ),
    # An unreadable file is named with the reason; all problems are reported together.
    pytest.param(
        {"RULESET_TEST_TOKEN": None},
        True,
        [
            "{f}: integrations[am].auth.bearer: environment variable RULESET_TEST_TOKEN is not "
            "set or empty",
            "{f}: integrations[signed].auth.hmac.secret: cannot read file {d}/hmac-secret: "
            "No such file or directory",
        ],
        id="missing-file-and-env",
    ),
]


@pytest.mark.parametrize(("change", "remove_file", "expected"), SECRET_PROBLEMS)
def test_secret_problems(
    rules_file: Path, change: dict[str, str | None], remove_file: bool, expected: list[str]
) -> None:
    env = environ()
    for name, value in change.items():
        if value is None:
            del env[name]
        else:
            env[name] = value
    if remove_file:
        (rules_file.parent / "hmac-secret").unlink()
    with pytest.raises(ConfigError) as caught:
        load_ruleset(rules_file, env)
    assert caught.value.problems == [p.format(f=rules_file, d=rules_file.parent) for p in expected]
    # The values of the secrets that did resolve are never in an error.
    for value in (TOKEN, PAGER_URL, HMAC_SECRET):
        assert value not in str(caught.value)


def test_secrets_are_not_resolved_when_not_asked(rules_file: Path) -> None:
    (rules_file.parent / "hmac-secret").unlink()
    ruleset = load_ruleset(rules_file, {}, resolve_secrets=False)
    assert ruleset.secrets == {}
    assert len(ruleset.rules) == 9


def test_secret_never_shows() -> None:
    secret = Secret("hunter2")
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert "hunter2" not in shown
    assert repr(secret) == "Secret('**********')"
    assert secret.reveal() == "hunter2"
    assert secret.matches("hunter2")
    assert not secret.matches("hunter3")


def test_ruleset_repr_shows_no_secret(rules: Ruleset) -> None:
    shown = repr(rules)
    assert "Secret('**********')" in shown
    for value in (TOKEN, PAGER_URL, HMAC_SECRET):
        assert value not in shown


class _RecordingLabels(Mapping[str, str]):
    """Labels that note every name looked up."""

    def __init__(self, labels: dict[str, str]) -> None:
        self._labels = labels
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._labels[name]

    def __contains__(self, name: object) -> bool:
        self.read.add(str(name))
        return name in self._labels

    def __iter__(self) -> Iterator[str]:
        self.read.update(self._labels)  # iterating reads them all
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)


@pytest.mark.parametrize(
    "labels",
    [
        {"alertname": "ApiDown", "severity": "critical", "instance": "a", "pod": "p"},
        {"alertname": "PgDown", "team": "db", "severity": "warning", "instance": "b"},
        {"alertname": "Watchdog", "instance": "c"},
        {"alertname": "X", "source": "grafana", "severity": "Critical", "env": "prod", "z": "1"},
    ],
)
def test_evaluation_reads_only_the_labels_its_cache_is_keyed_by(
    rules_without_group_by_all: Ruleset, labels: dict[str, str]
) -> None:
    # The decision cache is keyed by the labels the rules read; a rule feature that reads
    # another label must add it to `_labels_read`, or alerts would share a wrong decision.
    recording = _RecordingLabels(labels)
    rules_without_group_by_all.explain(recording)
    assert recording.read <= set(rules_without_group_by_all._projection or ())
