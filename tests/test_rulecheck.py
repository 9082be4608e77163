"""`router.rulecheck.warnings`: legal rule sets that may still fail someone at 3 a.m.

Each case starts from a small rule set that draws no warning and replaces some of its sections:
channels `pager` (a webhook) and `ops-log` (a log channel); alice and bob, reachable on
`pager`; schedule `primary` rotating weekly between them since 2026-01-05 (Mondays 09:00
Europe/Berlin); team `platform` paging `pager`, then whoever is on call in `primary`; one rule
routing `severity` labels page/critical/warning to SEV1/SEV2/SEV3, and SEV3 by default.
The checks run at NOW, a Monday in March 2026 (still CET, UTC+1) and look 28 days ahead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.rulecheck import HORIZON, warnings
from router.ruleset import Ruleset, load_ruleset
from tests.support.rules import rules_env

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DB_NEVER_PAGED = (
    "teams[db]: no route sends paging severities here; its escalation steps are never used"
)
SEV1_LOG_ONLY = (
    "rules[alerts]: routes SEV1 to team platform, whose escalation never reaches a channel "
    "that pages a human (only log channels)"
)


def weekly(members: list[str], start: str = "2026-01-05") -> dict[str, Any]:
    return {"rotation": "weekly", "handoff": "mon 09:00", "start": start, "members": members}


def schedule(*layers: dict[str, Any], overrides: list[dict[str, str]] | None = None) -> Any:
    return [
        {
            "name": "primary",
            "timezone": "Europe/Berlin",
            "layers": list(layers),
            "overrides": overrides or [],
        }
    ]


def person(name: str, *channels: str) -> dict[str, Any]:
    return {
        "name": name,
        "contacts": [{"channel": c, "address": f"{name}@example.com"} for c in channels],
    }


def platform(*steps: list[Any]) -> dict[str, Any]:
    return {
        "name": "platform",
        "channel": "ops-log",
        "escalation": [{"notify": step, "wait": "5m"} for step in steps],
    }


BASE: dict[str, Any] = {
    "integrations": [
        {
            "name": "alertmanager",
            "type": "alertmanager",
            "auth": {"bearer": {"env": "TEST_WEBHOOK_TOKEN"}},
        }
    ],
    "severities": {
        "SEV1": {"response_time": "0s", "paging": "page"},
        "SEV2": {"response_time": "15m", "paging": "page"},
        "SEV3": {"response_time": "1h", "paging": "notify_then_page"},
        "SEV4": {"response_time": "next_business_day", "paging": "notify_business_hours"},
    },
    "channels": [
        {"name": "pager", "type": "webhook", "url": {"env": "TEST_PAGE_URL"}},
        {"name": "ops-log", "type": "log"},
    ],
    "people": [person("alice", "pager"), person("bob", "pager")],
    "schedules": schedule(weekly(["alice", "bob"])),
    "teams": [platform(["pager"], [{"schedule": "primary"}])],
    "defaults": {"team": "platform", "severity": "SEV3", "group_by": ["alertname"]},
    "rules": [
        {"name": "heartbeat", "match": 'alertname="Watchdog"', "drop": True},
        {
            "name": "alerts",
            "severity_from_label": {
                "label": "severity",
                "values": {"page": "SEV1", "critical": "SEV2", "warning": "SEV3"},
            },
        },
    ],
}


def load(directory: Path, sections: dict[str, Any]) -> Ruleset:
    directory.mkdir()
    (directory / "rules.yaml").write_text(yaml.safe_dump(BASE | sections, sort_keys=False))
    return load_ruleset(directory, rules_env("http://127.0.0.1:9/unused"))


def test_horizon_is_four_weeks() -> None:
    # The gap cases below are written against it.
    assert HORIZON.days == 28


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        # The base rule set: everyone reachable, the rotation covers every hour, SEV1 pages a
        # webhook.
        pytest.param({}, [], id="clean"),
        # --- people ---
        # Someone with no contact at all, even if no step names them.
        pytest.param(
            {"people": [person("alice", "pager"), person("bob", "pager"), person("carol")]},
            ["people[carol]: no contact channel; pages to them go nowhere"],
            id="person-without-contacts",
        ),
        # --- schedules ---
        # A rotation that starts in two weeks leaves nobody on call until its first handoff
        # (Mon 16 Mar 09:00 CET = 08:00 UTC).
        pytest.param(
            {"schedules": schedule(weekly(["alice", "bob"], start="2026-03-16"))},
            ["schedules[primary]: nobody on call from 2026-03-02 12:00 to 2026-03-16 08:00 UTC"],
            id="layer-starts-in-two-weeks",
        ),
        # One that starts after the horizon: a hole over the whole 28 days checked.
        pytest.param(
            {"schedules": schedule(weekly(["alice", "bob"], start="2026-06-01"))},
            ["schedules[primary]: nobody on call from 2026-03-02 12:00 to 2026-03-30 12:00 UTC"],
            id="layer-starts-after-horizon",
        ),
        # The start date need not be a Monday: the first handoff is the next Monday 09:00
        # (after summer time began on Mar 29: 07:00 UTC).
        pytest.param(
            {"schedules": schedule(weekly(["alice", "bob"], start="2026-03-26"))},
            ["schedules[primary]: nobody on call from 2026-03-02 12:00 to 2026-03-30 07:00 UTC"],
            id="layer-starts-thursday-across-dst",
        ),
        # An override covering the time before the rotation starts closes the hole.
        pytest.param(
            {
                "schedules": schedule(
                    weekly(["alice", "bob"], start="2026-03-09"),
                    overrides=[
                        {"person": "bob", "start": "2026-03-01T00:00", "end": "2026-03-09T09:00"}
                    ],
                )
            },
            [],
            id="override-fills-gap",
        ),
        # An override ending an hour early (08:00 local) leaves that hour open.
        pytest.param(
            {
                "schedules": schedule(
                    weekly(["alice", "bob"], start="2026-03-09"),
                    overrides=[
                        {"person": "bob", "start": "2026-03-01T00:00", "end": "2026-03-09T08:00"}
                    ],
                )
            },
            ["schedules[primary]: nobody on call from 2026-03-09 07:00 to 2026-03-09 08:00 UTC"],
            id="override-an-hour-short",
        ),
        # A higher layer starting later does not open a hole: the lower one still covers.
        pytest.param(
            {
                "schedules": schedule(
                    weekly(["alice", "bob"]), weekly(["bob", "alice"], start="2026-03-16")
                )
            },
            [],
            id="upper-layer-later",
        ),
        # --- escalation steps ---
        # Step 2 names a person nobody can reach: it reaches nobody.
        pytest.param(
            {
                "people": [person("alice", "pager"), person("bob", "pager"), person("carol")],
                "teams": [platform(["pager"], [{"person": "carol"}])],
            },
            [
                "people[carol]: no contact channel; pages to them go nowhere",
                "teams[platform].escalation[1]: reaches nobody",
            ],
            id="step-person-without-contacts",
        ),
        # Step 2 pages a schedule none of whose members can be reached.
        pytest.param(
            {
                "people": [person("alice"), person("bob")],
                "teams": [platform(["pager"], [{"schedule": "primary"}])],
            },
            [
                "people[alice]: no contact channel; pages to them go nowhere",
                "people[bob]: no contact channel; pages to them go nowhere",
                "teams[platform].escalation[1]: reaches nobody",
            ],
            id="step-schedule-without-contacts",
        ),
        # One reachable member is enough for the step (the other is still reported).
        pytest.param(
            {"people": [person("alice", "pager"), person("bob")]},
            ["people[bob]: no contact channel; pages to them go nowhere"],
            id="schedule-half-reachable",
        ),
        # A step that reaches someone by one target and nobody by the other is fine.
        pytest.param(
            {
                "people": [person("alice", "pager"), person("bob", "pager"), person("carol")],
                "teams": [platform(["pager", {"person": "carol"}])],
            },
            ["people[carol]: no contact channel; pages to them go nowhere"],
            id="step-with-one-good-target",
        ),
        # --- teams never paged ---
        # A team with an escalation that only ever gets SEV4 (business-hours notices).
        pytest.param(
            {
                "teams": [
                    platform(["pager"], [{"schedule": "primary"}]),
                    {"name": "db", "channel": "ops-log", "escalation": [{"notify": ["pager"]}]},
                ],
                "rules": [
                    {"name": "db", "match": 'team="db"', "team": "db", "severity": "SEV4"},
                    *BASE["rules"],
                ],
            },
            [DB_NEVER_PAGED],
            id="team-only-sev4",
        ),
        # A team no rule routes to at all.
        pytest.param(
            {
                "teams": [
                    platform(["pager"], [{"schedule": "primary"}]),
                    {"name": "db", "escalation": [{"notify": ["pager"]}]},
                ]
            },
            [DB_NEVER_PAGED],
            id="team-without-route",
        ),
        # A team without escalation steps is not warned about: it only ever gets notices.
        pytest.param(
            {
                "teams": [
                    platform(["pager"], [{"schedule": "primary"}]),
                    {"name": "db", "channel": "ops-log"},
                ],
                "rules": [
                    {"name": "db", "match": 'team="db"', "team": "db", "severity": "SEV4"},
                    *BASE["rules"],
                ],
            },
            [],
            id="team-without-escalation",
        ),
        # SEV3 (notify, then page after an hour) counts as paging the team.
        pytest.param(
            {
                "teams": [
                    platform(["pager"], [{"schedule": "primary"}]),
                    {"name": "db", "escalation": [{"notify": ["pager"]}]},
                ],
                "rules": [
                    {"name": "db", "match": 'team="db"', "team": "db", "severity": "SEV3"},
                    *BASE["rules"],
                ],
            },
            [],
            id="team-sev3",
        ),
        # --- SEV1 that wakes nobody ---
        # The only channel SEV1 reaches is a log channel.
        pytest.param(
            {"teams": [platform(["ops-log"])]},
            [SEV1_LOG_ONLY],
            id="sev1-to-log-channel",
        ),
        # Through people whose only contact is a log channel: the same.
        pytest.param(
            {
                "people": [person("alice", "ops-log"), person("bob", "ops-log")],
                "teams": [platform(["ops-log"], [{"schedule": "primary"}])],
            },
            [SEV1_LOG_ONLY],
            id="sev1-to-people-on-log",
        ),
        # A fixed `severity: SEV1` rule is caught as well as one mapped from a label.
        pytest.param(
            {
                "teams": [platform(["ops-log"])],
                "rules": [{"name": "alerts", "severity": "SEV1"}],
            },
            [SEV1_LOG_ONLY],
            id="sev1-fixed-severity",
        ),
        # The default rule is checked too (shown as rules[default]).
        pytest.param(
            {
                "teams": [platform(["ops-log"])],
                "rules": [],
                "defaults": {"team": "platform", "severity": "SEV1"},
            },
            [
                "rules[default]: routes SEV1 to team platform, whose escalation never reaches a "
                "channel that pages a human (only log channels)"
            ],
            id="sev1-default-rule",
        ),
        # SEV2 only to a log channel is not this warning's business (only SEV1 is checked).
        pytest.param(
            {
                "teams": [platform(["ops-log"])],
                "rules": [{"name": "alerts", "severity": "SEV2"}],
            },
            [],
            id="sev2-to-log-channel",
        ),
        # --- several at once, in order: people, schedules, teams, rules ---
        pytest.param(
            {
                "people": [person("alice"), person("bob", "pager")],
                "schedules": schedule(weekly(["alice"], start="2026-03-16")),
                "teams": [platform(["ops-log"], [{"schedule": "primary"}])],
            },
            [
                "people[alice]: no contact channel; pages to them go nowhere",
                "schedules[primary]: nobody on call from 2026-03-02 12:00 to 2026-03-16 08:00 UTC",
                "teams[platform].escalation[1]: reaches nobody",
                SEV1_LOG_ONLY,
            ],
            id="everything",
        ),
    ],
)
def test_warnings(tmp_path: Path, sections: dict[str, Any], expected: list[str]) -> None:
    ruleset = load(tmp_path / "rules", sections)
    assert warnings(ruleset, NOW) == expected


def test_gap_window_moves_with_now(tmp_path: Path) -> None:
    ruleset = load(tmp_path / "rules", {"schedules": schedule(weekly(["alice"], "2026-03-16"))})
    # Once the rotation has started there is no hole left.
    assert warnings(ruleset, datetime(2026, 3, 16, 8, 0, tzinfo=UTC)) == []
    # A minute before, one minute of it.
    assert warnings(ruleset, datetime(2026, 3, 16, 7, 59, tzinfo=UTC)) == [
        "schedules[primary]: nobody on call from 2026-03-16 07:59 to 2026-03-16 08:00 UTC"
    ]


def test_naive_now_is_refused(tmp_path: Path) -> None:
    ruleset = load(tmp_path / "rules", {})
    with pytest.raises(ValueError, match="must be an aware datetime"):
        warnings(ruleset, datetime(2026, 3, 2, 12, 0))  # naive on purpose
