"""Rule-file validation: each file in `bad/` fails with exactly one problem that names file, path
and offending value; problems across files are reported together and name every file involved.

Each bad file is loaded on its own (`load_ruleset` accepts a file): it is a complete rule set,
`bad_rules.BASE`, with one defect, so the single problem reported is caused by that defect alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from router.errors import ConfigError
from router.rulefile import load_rules
from router.ruleset import load_ruleset
from tests.rules.bad_rules import BAD_DIR, BASE, DEFECTS, ENVIRON, render

BAD_FILES = [
    # Unknown keys are errors; the key is named in the path.
    pytest.param(
        "unknown-key.yaml",
        "unknown-key.yaml: rules[critical].matchers: unknown key",
        id="unknown-key",
    ),
    # A rule's team must be defined.
    pytest.param(
        "undefined-team.yaml",
        "undefined-team.yaml: rules[web].team: unknown team 'frontend'",
        id="undefined-team",
    ),
    # defaults.team must be defined; the problem names the file holding `defaults`.
    pytest.param(
        "undefined-default-team.yaml",
        "undefined-default-team.yaml: defaults.team: unknown team 'platfrom'",
        id="undefined-default-team",
    ),
    # A team's notification channel must be defined.
    pytest.param(
        "undefined-team-channel.yaml",
        "undefined-team-channel.yaml: teams[web].channel: unknown channel 'slack'",
        id="undefined-team-channel",
    ),
    # Every channel an escalation step notifies must be defined; steps are indexed from 0.
    pytest.param(
        "undefined-channel-in-escalation.yaml",
        "undefined-channel-in-escalation.yaml: teams[platform].escalation[0].notify: "
        "unknown channel 'pagerduty'",
        id="undefined-channel-in-escalation",
    ),
    # Matchers are parsed when rules load; the error says what was expected and where.
    pytest.param(
        "bad-matcher.yaml",
        "bad-matcher.yaml: rules[critical].match[0]: expected one of =, !=, =~, !~ after label "
        "name \"severity\" at column 10 (got 'severity > critical')",
        id="bad-matcher",
    ),
    # Regexes are compiled when rules load.
    pytest.param(
        "bad-regex.yaml",
        'bad-regex.yaml: rules[critical].match[0]: invalid regex "crit(ical" in matcher '
        'severity=~"crit(ical": missing ), unterminated subpattern',
    ),
    # An empty matcher string would match every alert; it is an error, not a silent catch-all.
    pytest.param(
        "empty-matcher.yaml",
        "empty-matcher.yaml: rules[critical].match[1]: empty matcher, which would match every "
        "alert; to match every alert, leave out match (got '')",
        id="empty-matcher",
    ),
    # Severities are SEV1..SEV4, not label values.
    pytest.param(
        "bad-severity.yaml",
        "bad-severity.yaml: rules[critical].severity: Input should be 'SEV1', 'SEV2', 'SEV3' or "
        "'SEV4' (got 'critical')",
        id="bad-severity",
    ),
    # severity_from_label compares case-insensitively, so keys equal but for case must agree.
    pytest.param(
        "severity-values-differ-in-case.yaml",
        "severity-values-differ-in-case.yaml: rules[by-label].severity_from_label.values: "
        "'critical' and 'Critical' differ only in case",
        id="severity-values-differ-in-case",
    ),
    # Durations are a number and a unit.
    pytest.param(
        "bad-duration.yaml",
        "bad-duration.yaml: teams[platform].escalation[0].wait: invalid duration '5 minutes'",
        id="bad-duration",
    ),
    # A YAML boolean is not a duration (float() would read `yes` as 1 second).
    pytest.param(
        "bad-duration-bool.yaml",
        "bad-duration-bool.yaml: teams[platform].escalation[0].wait: invalid duration: use a "
        "number and a unit, like 30s, 5m, 1h or 1h30m (got True)",
        id="bad-duration-bool",
    ),
    # Rule names are unique (they are in group keys, traces and incidents).
    pytest.param(
        "duplicate-rule-name.yaml",
        "duplicate-rule-name.yaml: rules[critical]: duplicate name 'critical' (first defined in ",
    ),
    # A key given twice in one mapping is an error, not "the last one wins".
    pytest.param(
        "duplicate-key.yaml",
        "duplicate-key.yaml: not valid YAML: line 44, column 5: duplicate key 'severity'",
        id="duplicate-key",
    ),
    # Every severity level needs a policy.
    pytest.param(
        "missing-sev-policy.yaml",
        "missing-sev-policy.yaml: severities: missing SEV4 (every level needs a policy)",
        id="missing-sev-policy",
    ),
    # A route to a paging severity needs a team whose escalation pages someone.
    pytest.param(
        "sev1-route-without-paging.yaml",
        "sev1-route-without-paging.yaml: rules[web]: routes SEV1 alerts to team 'web', whose "
        "escalation pages no channel",
        id="sev1-route-without-paging",
    ),
    # The default route (alerts no rule matches) is held to the same paging check.
    pytest.param(
        "default-route-without-paging.yaml",
        "default-route-without-paging.yaml: defaults: routes SEV2 alerts to team 'web', whose "
        "escalation pages no channel",
        id="default-route-without-paging",
    ),
    # '...' (every label) cannot be mixed with label names.
    pytest.param(
        "group-by-wildcard-with-labels.yaml",
        "group-by-wildcard-with-labels.yaml: defaults.group_by: '...' groups by every label; it "
        "cannot be combined with others ['...', 'cluster']",
        id="group-by-wildcard-with-labels",
    ),
    # Templates are compiled when rules load; the source is shown.
    pytest.param(
        "template-syntax-error.yaml",
        "template-syntax-error.yaml: rules[critical].title: template syntax error on line 1: "
        "unexpected '}' (got '{{ labels.alertname } is critical')",
        id="template-syntax-error",
    ),
    # A secret must be a reference, and the error must not repeat it.
    pytest.param(
        "secret-inline.yaml",
        "secret-inline.yaml: integrations[alertmanager].auth.bearer: a secret is never written "
        "in a rule file; reference it as {env: NAME} or {file: /path}",
        id="secret-inline",
    ),
    # An integration without credentials must say `none: true`; silence is not consent.
    pytest.param(
        "auth-missing.yaml",
        "auth-missing.yaml: integrations[alertmanager].auth: Field required",
        id="auth-missing",
    ),
    # A drop rule routes nothing, so routing keys on it are a mistake; they are named.
    pytest.param(
        "drop-with-severity.yaml",
        "drop-with-severity.yaml: rules[heartbeat]: a drop rule only has name and match; "
        "remove severity",
        id="drop-with-severity",
    ),
    # A file that is not YAML is reported with line and column.
    pytest.param(
        "not-yaml.yaml",
        "not-yaml.yaml: not valid YAML: line 44, column 35: expected <block end>, "
        "but found '<scalar>'",
        id="not-yaml",
    ),
]


@pytest.mark.parametrize(("name", "expected"), BAD_FILES)
def test_bad_file_fails_with_exactly_its_defect(name: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_ruleset(BAD_DIR / name, ENVIRON)
    assert len(caught.value.problems) == 1, caught.value.problems
    problem = caught.value.problems[0]
    assert expected in problem
    assert problem.startswith(f"{BAD_DIR / name}: ")


def test_every_bad_file_is_generated_and_tested() -> None:
    on_disk = sorted(path.name for path in BAD_DIR.glob("*.yaml"))
    tested = sorted(str(param.values[0]) for param in BAD_FILES)
    assert on_disk == sorted(DEFECTS)
    assert tested == sorted(DEFECTS)


@pytest.mark.parametrize("name", sorted(DEFECTS), ids=lambda v: v.removesuffix(".yaml"))
def test_bad_file_is_the_base_with_one_defect(name: str) -> None:
    # Regenerate with `python -m tests.rules.bad_rules` after changing BASE or a defect.
    text = (BAD_DIR / name).read_text(encoding="utf-8")
    assert text == render(name)
    assert text.startswith("# ")


def test_base_is_a_complete_valid_rule_set(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    ruleset = load_ruleset(tmp_path / "base.yaml", ENVIRON)
    assert [rule.name for rule in ruleset.rules] == ["heartbeat", "critical", "by-label", "web"]


def test_inline_secret_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_rules(BAD_DIR / "secret-inline.yaml")
    assert "s3cr3t-written-inline" not in str(caught.value)


def test_unknown_key_values_are_not_shown(tmp_path: Path) -> None:
    # The value under an unknown key may be a credential (e.g. `token:` beside `env:`).
    text = BASE.replace("bearer: {env: BAD_RULES_TOKEN}", "bearer: {env: X, value: hunter2}")
    (tmp_path / "rules.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path / "rules.yaml")
    assert caught.value.problems == [
        f"{tmp_path / 'rules.yaml'}: integrations[alertmanager].auth.bearer.value: unknown key"
    ]


# --------------------------------------------------------------------------------------------
# Several files: BASE split into one file per top-level section, plus an extra file.
# --------------------------------------------------------------------------------------------


def split_base(directory: Path) -> Path:
    """BASE as `10-integrations.yaml`, `20-severities.yaml`, ... (file order is rule order)."""
    directory.mkdir(parents=True, exist_ok=True)
    document = yaml.safe_load(BASE)
    for number, (section, value) in enumerate(document.items(), start=1):
        path = directory / f"{number * 10}-{section}.yaml"
        path.write_text(yaml.safe_dump({section: value}, sort_keys=False), encoding="utf-8")
    return directory


CROSS_FILE = [
    # A rule name defined in two files: the second file is named, and where the first was.
    pytest.param(
        "rules: [{name: web, match: 'x=\"y\"'}]",
        [
            "{d}/99-extra.yaml: rules[web]: duplicate name 'web' "
            "(first defined in {d}/60-rules.yaml)"
        ],
        id="duplicate-rule-across-files",
    ),
    # Channel and team names are unique across files too.
    pytest.param(
        "channels: [{name: chat, type: log}]\nteams: [{name: web}]",
        [
            "{d}/99-extra.yaml: channels[chat]: duplicate name 'chat' "
            "(first defined in {d}/30-channels.yaml)",
            "{d}/99-extra.yaml: teams[web]: duplicate name 'web' "
            "(first defined in {d}/40-teams.yaml)",
        ],
        id="duplicate-channel-and-team-across-files",
    ),
    # One severity table: a level defined in a second file is an error, not an override.
    pytest.param(
        "severities: {SEV4: {response_time: 1h, paging: notify_business_hours}}",
        ["{d}/99-extra.yaml: severities.SEV4: defined in more than one file"],
        id="severity-in-two-files",
    ),
    # `defaults` is a singleton.
    pytest.param(
        "defaults: {team: web}",
        ["{d}/99-extra.yaml: defaults: already defined in {d}/50-defaults.yaml"],
        id="defaults-in-two-files",
    ),
    # Problems from several files are all reported, each naming its own file.
    pytest.param(
        "rules: [{name: extra, team: nobody}]\nteams: [{name: ops, channel: nowhere}]",
        [
            "{d}/99-extra.yaml: teams[ops].channel: unknown channel 'nowhere'",
            "{d}/99-extra.yaml: rules[extra].team: unknown team 'nobody'",
        ],
        id="several-problems-reported-together",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), CROSS_FILE)
def test_cross_file_problems(tmp_path: Path, extra: str, expected: list[str]) -> None:
    directory = split_base(tmp_path / "rules")
    (directory / "99-extra.yaml").write_text(extra, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(directory)
    assert caught.value.problems == [line.format(d=directory) for line in expected]


def test_schema_problems_in_several_files_are_all_reported(tmp_path: Path) -> None:
    directory = split_base(tmp_path / "rules")
    (directory / "97-a.yaml").write_text("rules: [{name: a, severty: SEV2}]", encoding="utf-8")
    (directory / "98-b.yaml").write_text("incidents: {flap_window: soon}", encoding="utf-8")
    (directory / "99-c.yaml").write_text("rules: [", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(directory)
    assert caught.value.problems == [
        f"{directory}/97-a.yaml: rules[a].severty: unknown key",
        f"{directory}/98-b.yaml: incidents.flap_window: invalid duration 'soon': use a number "
        "and a unit, like 30s, 5m, 1h or 1h30m (got 'soon')",
        f"{directory}/99-c.yaml: not valid YAML: line 1, column 9: expected the node content, "
        "but found '<stream end>'",
    ]


def test_split_base_loads_with_rules_in_file_order(tmp_path: Path) -> None:
    directory = split_base(tmp_path / "rules")
    (directory / "05-first.yaml").write_text(
        "rules: [{name: first, match: 'a=\"b\"', team: web}]", encoding="utf-8"
    )
    config = load_rules(directory)
    assert [rule.name for rule in config.rules] == [
        "first",
        "heartbeat",
        "critical",
        "by-label",
        "web",
    ]
    assert config.rule_files["first"] == str(directory / "05-first.yaml")
    assert config.rule_files["web"] == str(directory / "60-rules.yaml")


def test_no_severities_anywhere(tmp_path: Path) -> None:
    directory = split_base(tmp_path / "rules")
    (directory / "20-severities.yaml").unlink()
    with pytest.raises(ConfigError) as caught:
        load_rules(directory)
    assert caught.value.problems == [
        "(no file has a severities section): severities: missing SEV1, SEV2, SEV3, SEV4 "
        "(every level needs a policy)"
    ]


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        # A path that does not exist.
        pytest.param("missing", "{d}/missing: no such file or directory", id="missing"),
        # A directory without a single .yaml file.
        pytest.param(".", "{d}: no .yaml rule files found", id="empty-directory"),
    ],
)
def test_nothing_to_load(tmp_path: Path, relative: str, expected: str) -> None:
    (tmp_path / "README.md").write_text("not a rule file", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path / relative)
    assert caught.value.problems == [expected.format(d=tmp_path)]
