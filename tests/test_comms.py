"""The seed's "Incident Started" and "Status Update" messages, against golden files.

Golden files live in tests/golden/. After an intended change to a template, regenerate them with
`SEVROUTER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_comms.py tests/test_postmortem.py` and
read the diff before committing: the diff is the review.

The scenarios built here (a full SEV1, a SEV3 that mitigated itself, an incident with nothing
optional, one full of hostile text) are shared with tests/test_postmortem.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from router.comms import (
    ActionItem,
    AlertView,
    CommsRenderer,
    Findings,
    IncidentView,
    StatusUpdate,
    UpdateStatus,
    code_span,
    format_duration,
    incident_started,
    md_escape,
    md_lines,
    role_name,
    status_update,
    timeline_entry,
)
from router.incidents import Incident, IncidentState, TimelineEntry
from router.severity import Severity

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("SEVROUTER_UPDATE_GOLDEN") == "1"


def assert_golden(name: str, actual: str) -> None:
    """`actual` equals tests/golden/`name`; with SEVROUTER_UPDATE_GOLDEN=1, (re)write the file."""
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path} is missing: run with SEVROUTER_UPDATE_GOLDEN=1 and review it")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs (if intended: SEVROUTER_UPDATE_GOLDEN=1)"


# --- scenarios -------------------------------------------------------------------------------

T0 = datetime(2024, 5, 14, 13, 58, 12, tzinfo=UTC)  # the SEV1's first alert starts


def at(hhmmss: str, day: datetime = T0) -> datetime:
    hours, minutes, seconds = (int(part) for part in hhmmss.split(":"))
    return day.replace(hour=hours, minute=minutes, second=seconds, microsecond=0)


def ms(when: datetime) -> str:
    return str(int(when.timestamp() * 1000))


def alert_record(
    labels: Mapping[str, str],
    summary: str,
    starts: datetime,
    ends: datetime | None,
    fingerprint: str,
    **annotations: str,
) -> dict[str, Any]:
    """An alert as `router.alert.record_json` stores it with the incident."""
    return {
        "status": "resolved" if ends else "firing",
        "labels": dict(labels),
        "annotations": {"summary": summary, **annotations},
        "starts_at": starts.isoformat(),
        "ends_at": ends.isoformat() if ends else None,
        "fingerprint": fingerprint,
        "source": "alertmanager",
        "integration": "alertmanager",
    }


def stored(*entries: TimelineEntry) -> list[dict[str, Any]]:
    """Timeline entries as the store hands them back: through their JSON."""
    decoded: list[dict[str, Any]] = [json.loads(entry.to_json()) for entry in entries]
    return decoded


CHECKOUT = {"alertname": "CheckoutHighErrorRate", "namespace": "prod", "service": "checkout"}
LATENCY = {"alertname": "CheckoutLatencyHigh", "namespace": "prod", "service": "checkout"}
GATEWAY = {"alertname": "PaymentsGatewayErrors", "job": "payments-gateway", "namespace": "prod"}
GATEWAY_NAME = "PaymentsGatewayErrors {job=payments-gateway, namespace=prod}"
PAGER = {"channel": "sre-pager", "target": "person:alice", "step": 1, "attempt": 1}

SEV1_UPDATES = (
    StatusUpdate(
        at("14:08:00"),
        UpdateStatus.INVESTIGATING,
        "carol",
        facts=(
            "Checkout returns 5xx for about 38% of requests since 13:58 UTC",
            "The payments gateway answers 502 to most calls",
        ),
        actions=("Bob is checking the 13:40 payments gateway config push",),
        next_update=at("14:23:00"),
    ),
    StatusUpdate(
        at("14:23:00"),
        UpdateStatus.MITIGATING,
        "carol",
        facts=("The 13:40 config push cut the gateway connection pool from 200 to 5",),
        actions=("Rolling the config back", "Watching checkout error rate recover"),
        next_update=at("14:38:00"),
    ),
)


def sev1_view() -> IncidentView:
    """A full SEV1: three alerts, pages, a severity raise, an ack, roles, two status updates,
    mitigation and resolution by hand, two action items (one done), some findings written."""
    incident = Incident(
        id="INC-42",
        title="Checkout API returning 5xx",
        summary="Checkout error ratio is 38% (threshold 2%).\nOrders cannot be placed.",
        runbook="https://runbooks.example.com/checkout",
        severity=Severity.SEV1,
        state=IncidentState.RESOLVED,
        team="payments",
        rule="checkout-errors",
        group_key="checkout-errors:checkout",
        opened_at=at("13:58:20"),
        updated_at=at("15:20:00"),
        mitigated_at=at("14:35:10"),
        reopen_count=0,
        alerts_firing=0,
        alerts=[
            alert_record(
                CHECKOUT,
                "5xx ratio 38% on checkout-api",
                T0,
                at("14:41:05"),
                "a1",
                description="Ratio of 5xx responses over 5m.\nSee the checkout dashboard.",
            ),
            alert_record(LATENCY, "p99 latency 4.2s", at("14:00:40"), at("14:40:30"), "a2"),
            alert_record(
                GATEWAY, "gateway answers 502 to 61% of calls", at("14:03:02"), at("14:39:00"), "a3"
            ),
        ],
        timeline=stored(
            TimelineEntry(
                at("13:58:20"),
                "opened",
                "Incident opened: Checkout API returning 5xx (SEV2, team payments, "
                "rule checkout-errors)",
                data={"fingerprint": "a1"},
            ),
            TimelineEntry(
                at("13:58:20"),
                "escalation",
                "paging step 1: schedule payments-primary; "
                "next step at 14:13:20 UTC unless acknowledged",
            ),
            TimelineEntry(
                at("13:58:21"),
                "page_sent",
                "trigger page to person:alice via sre-pager delivered (attempt 1)",
                data=PAGER | {"kind": "trigger"},
            ),
            TimelineEntry(
                at("13:58:21"),
                "page_sent",
                "notify page to payments-incidents delivered (attempt 1)",
                data={"channel": "payments-slack", "target": "channel:payments-incidents"},
            ),
            TimelineEntry(
                at("14:00:41"),
                "added",
                "Alert CheckoutLatencyHigh {namespace=prod, service=checkout} joined the incident",
            ),
            TimelineEntry(at("14:03:03"), "added", f"Alert {GATEWAY_NAME} joined the incident"),
            TimelineEntry(
                at("14:03:03"),
                "severity_raised",
                f"Severity raised from SEV2 to SEV1 by alert {GATEWAY_NAME}",
            ),
            TimelineEntry(at("14:03:03"), "escalation", "severity raised to SEV1; deadline reset"),
            TimelineEntry(
                at("14:03:04"),
                "page_sent",
                "raised-SEV1 page to person:alice via sre-pager delivered (attempt 1)",
                data=PAGER | {"kind": "raised-SEV1"},
            ),
            TimelineEntry(at("14:04:30"), "acknowledged", "Acknowledged by alice", "alice"),
            TimelineEntry(
                at("14:05:10"),
                "role_assigned",
                "alice is Incident Commander",
                "alice",
                {"role": "commander", "person": "alice"},
            ),
            TimelineEntry(
                at("14:05:40"),
                "role_assigned",
                "bob is Tech Lead",
                "alice",
                {"role": "tech_lead", "person": "bob"},
            ),
            TimelineEntry(
                at("14:06:05"),
                "role_assigned",
                "carol is Communications",
                "alice",
                {"role": "communications", "person": "carol"},
            ),
            TimelineEntry(
                at("14:08:00"),
                "status_update",
                "Status update: investigating; next update 14:23 UTC",
                "carol",
            ),
            TimelineEntry(
                at("14:23:00"),
                "status_update",
                "Status update: mitigating; next update 14:38 UTC",
                "carol",
            ),
            TimelineEntry(at("14:35:10"), "mitigated_by_hand", "Marked mitigated by bob", "bob"),
            TimelineEntry(at("14:39:01"), "resolved", f"Alert {GATEWAY_NAME} resolved"),
            TimelineEntry(
                at("14:40:31"),
                "resolved",
                "Alert CheckoutLatencyHigh {namespace=prod, service=checkout} resolved",
            ),
            TimelineEntry(
                at("14:41:06"),
                "resolved",
                "Alert CheckoutHighErrorRate {namespace=prod, service=checkout} resolved",
            ),
            TimelineEntry(at("15:20:00"), "resolved_by_hand", "Resolved by alice", "alice"),
        ),
    )
    fields = {
        "acknowledged_at": ms(at("14:04:30")),
        "acknowledged_by": "alice",
        "mitigated_at": ms(at("14:35:10")),
        "mitigated_by": "bob",
        "resolved_at": ms(at("15:20:00")),
        "resolved_by": "alice",
    }
    return IncidentView.from_incident(
        incident,
        fields,
        roles={"commander": "alice", "tech_lead": "bob", "communications": "carol"},
        updates=SEV1_UPDATES,
        actions=[
            ActionItem("Add canary analysis to checkout deploys", "bob", date(2024, 5, 28)),
            ActionItem(
                "Alert on payments gateway pool saturation", "alice", date(2024, 5, 21), True
            ),
        ],
        findings=Findings(
            root_cause="A config push at 13:40 set the payments gateway connection pool to 5.\n"
            "Checkout calls queued behind it until they timed out.",
            went_well=("Paged and acknowledged within 7 minutes", "The rollback took 4 minutes"),
        ),
    )


S0 = datetime(2024, 5, 18, 2, 11, 0, tzinfo=UTC)  # the SEV3's alert starts (a Saturday night)
DISK = {
    "alertname": "DiskWillFillIn4Hours",
    "instance": "db-3:9100",
    "job": "node",
    "mountpoint": "/var/lib/postgresql",
}
DISK_NAME = "DiskWillFillIn4Hours {instance=db-3:9100, job=node, mountpoint=/var/lib/postgresql}"


def sev3_view() -> IncidentView:
    """A SEV3 nobody touched: the team channel heard, the alert resolved on its own (auto
    mitigation), the quiet period resolved it; no roles, no updates, no action items."""
    incident = Incident(
        id="INC-57",
        title="Disk on db-3 fills within 4 hours",
        summary="Filesystem /var/lib/postgresql on db-3 fills in about 4 hours at this rate.",
        runbook="",
        severity=Severity.SEV3,
        state=IncidentState.RESOLVED,
        team="storage",
        rule="disk-fill",
        group_key="disk-fill:db-3:9100",
        opened_at=at("02:11:05", S0),
        updated_at=at("03:57:31", S0),
        mitigated_at=at("02:57:31", S0),
        reopen_count=0,
        alerts_firing=0,
        alerts=[
            alert_record(
                DISK,
                "Filesystem /var/lib/postgresql on db-3 fills in ~4h",
                S0,
                at("02:57:30", S0),
                "d1",
            )
        ],
        timeline=stored(
            TimelineEntry(
                at("02:11:05", S0),
                "opened",
                "Incident opened: Disk on db-3 fills within 4 hours (SEV3, team storage, "
                "rule disk-fill)",
            ),
            TimelineEntry(
                at("02:11:05", S0),
                "escalation",
                "team channel notified; paging at 03:11 UTC if unacknowledged",
            ),
            TimelineEntry(
                at("02:11:06", S0),
                "page_sent",
                "notify page to storage-alerts delivered (attempt 1)",
                data={"channel": "storage-slack", "target": "channel:storage-alerts"},
            ),
            TimelineEntry(at("02:57:31", S0), "resolved", f"Alert {DISK_NAME} resolved"),
            TimelineEntry(
                at("02:57:31", S0), "all_resolved", "Every alert resolved: incident mitigated"
            ),
        ),
    )
    # Resolved by the quiet period: a stamp, but no timeline entry and nobody who resolved it.
    return IncidentView.from_incident(incident, {"resolved_at": ms(at("03:57:31", S0))})


M0 = datetime(2024, 6, 3, 9, 15, 0, tzinfo=UTC)


def minimal_view() -> IncidentView:
    """Only what every incident has: no alerts, summary, timeline, stamps, roles or items."""
    return IncidentView(
        id="INC-7",
        title="Typo on the status page footer",
        severity=Severity.SEV4,
        state=IncidentState.TRIGGERED,
        team="web",
        opened_at=M0,
    )


H0 = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)
HOSTILE_LABELS = {
    "alertname": "Evil`Alert",
    "service": "check|out <b>",
    "namespace": "prod\n# ns",
}
HOSTILE_NAME = "Evil`Alert {namespace=prod\n# ns, service=check|out <b>}"


def hostile_view() -> IncidentView:
    """Markdown and HTML everywhere text comes from alerts or people."""
    return IncidentView(
        id="INC-666",
        title="<img src=x onerror=alert(1)> **URGENT** | [click](http://evil.example)",
        summary="# Injected heading\n\n- fake item\n```\nrm -rf /\n```\n| a | b |\n"
        "1. numbered\n<script>alert(1)</script>\n---",
        severity=Severity.SEV2,
        state=IncidentState.RESOLVED,
        team="red <team>",
        opened_at=H0,
        mitigated_at=H0 + timedelta(minutes=20),
        resolved_at=H0 + timedelta(minutes=50),
        resolved_by="mallory",
        alerts=(
            AlertView(
                labels=HOSTILE_LABELS,
                annotations={
                    "summary": "</details><script>alert(1)</script> [x](javascript:alert(1)) "
                    "![i](http://e.example/i.png) ``` ~~~ &copy; **b** _i_ @here <!channel>",
                    "description": "# not shown",
                },
                status="resolved",
                starts_at=H0,
                ends_at=H0 + timedelta(minutes=19),
                fingerprint="h1",
            ),
        ),
        timeline=(
            TimelineEntry(H0 + timedelta(seconds=5), "added", f"Alert {HOSTILE_NAME} joined"),
            TimelineEntry(
                H0 + timedelta(minutes=2),
                "role_assigned",
                "eve | admin\n## owned is Incident Commander",
                "eve | admin\n## owned",
            ),
            TimelineEntry(
                H0 + timedelta(minutes=3),
                "severity_changed",
                "```\nSeverity changed\n```",
                "<script>",
            ),
        ),
        roles={"commander": "eve | admin\n## owned", "scribe": "<b>mallory</b>", "x|y": "z"},
        actions=(ActionItem("Fix it\n- [x] fake done item", "<script>", None, False),),
        findings=Findings(
            root_cause="Line one\n---\n# H\n    indented code\n> quote",
            contributing_factors=("***", "| table | row |"),
            business_impact="<iframe src=//evil>",
        ),
    )


HOSTILE_FACTS = ["line one\n## Heading\n- item", "| x | y |", "1) ordered", "```"]
HOSTILE_ACTIONS = ["```\nrm -rf /\n```", "<a href='x'>link</a>"]


# --- structure checks for hostile output -----------------------------------------------------

_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")


def outside_code(text: str) -> str:
    """`text` with inline code spans removed: what a Markdown renderer would parse."""
    return _CODE_SPAN.sub("", text)


def assert_no_injected_structure(text: str, allowed_headings: list[str]) -> None:
    """Nothing from the hostile input became Markdown or HTML structure."""
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == allowed_headings
    plain = outside_code(text)
    assert "<" not in plain, "raw HTML outside a code span"
    assert "&copy;" not in plain, "an entity would render as a character"
    for line in text.splitlines():
        assert not line.startswith(("```", "~~~", "    ", "\t", ">", "---", "***", "1.", "1)"))
        assert line == line.rstrip(), "trailing whitespace (a Markdown hard break)"
    # Every unescaped `[` is a task-list box we wrote; no link or image survived.
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", plain)


# --- golden files ----------------------------------------------------------------------------


def test_sev1_incident_started() -> None:
    view = sev1_view()
    text = incident_started(view, now=at("14:05:10"), next_update=at("14:20:00"))
    assert_golden("sev1_incident_started.md", text)


@pytest.mark.parametrize("index", [0, 1], ids=["investigating", "mitigating"])
def test_sev1_status_updates(index: int) -> None:
    update = SEV1_UPDATES[index]
    text = status_update(
        sev1_view(),
        now=update.at,
        status=update.status,
        facts=update.facts,
        actions=update.actions,
        next_update=update.next_update,
    )
    assert_golden(f"sev1_status_update_{index + 1}.md", text)


def test_sev1_resolved_update_promises_no_next_update() -> None:
    text = status_update(
        sev1_view(),
        now=at("15:20:00"),
        status="resolved",
        facts=["Checkout has served normally since 14:41 UTC"],
        actions=["A postmortem is due by 2024-05-16"],
        next_update=None,
    )
    assert_golden("sev1_status_update_resolved.md", text)


def test_sev3_incident_started() -> None:
    text = incident_started(sev3_view(), now=at("02:11:06", S0), next_update=at("03:11:06", S0))
    assert_golden("sev3_incident_started.md", text)


def test_minimal_incident_started() -> None:
    # No alerts: the start is when the incident opened; no summary or services to list.
    text = incident_started(minimal_view(), now=M0, next_update=M0 + timedelta(hours=1))
    assert_golden("minimal_incident_started.md", text)


def test_minimal_status_update_with_nothing_to_say() -> None:
    text = status_update(
        minimal_view(),
        now=M0,
        status=UpdateStatus.INVESTIGATING,
        facts=[],
        actions=[],
        next_update=M0 + timedelta(hours=1),
    )
    assert_golden("minimal_status_update.md", text)


def test_hostile_incident_started() -> None:
    text = incident_started(hostile_view(), now=H0, next_update=H0 + timedelta(minutes=30))
    assert_golden("hostile_incident_started.md", text)
    assert_no_injected_structure(text, [])
    assert len(text.splitlines()) == 5, "the seed's five lines, whatever the title holds"


def test_hostile_status_update() -> None:
    text = status_update(
        hostile_view(),
        now=H0,
        status="mitigating",
        facts=HOSTILE_FACTS,
        actions=HOSTILE_ACTIONS,
        next_update=H0 + timedelta(minutes=30),
    )
    assert_golden("hostile_status_update.md", text)
    assert_no_injected_structure(text, [])
    items = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(items) == len(HOSTILE_FACTS) + len(HOSTILE_ACTIONS), "one line per fact/action"


# --- behaviour -------------------------------------------------------------------------------


def test_status_update_needs_next_update_unless_resolved() -> None:
    # DESIGN section 4: every status update carries a next-update time.
    with pytest.raises(ValueError, match="next one is due"):
        status_update(
            minimal_view(), now=M0, status="mitigating", facts=[], actions=[], next_update=None
        )


def test_status_update_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="'fixed'"):
        status_update(minimal_view(), now=M0, status="fixed", facts=[], actions=[], next_update=M0)


def test_from_incident_reads_the_stamps_from_the_fields() -> None:
    view = sev1_view()
    assert (view.acknowledged_at, view.acknowledged_by) == (at("14:04:30"), "alice")
    assert (view.mitigated_at, view.mitigated_by) == (at("14:35:10"), "bob")
    assert (view.resolved_at, view.resolved_by) == (at("15:20:00"), "alice")
    assert view.closed_at is None
    assert view.first_alert_at == T0
    assert view.services == ("checkout (prod)", "payments-gateway (prod)")
    assert view.timeline[0] == TimelineEntry(
        at("13:58:20"), "opened", view.timeline[0].text, data={"fingerprint": "a1"}
    )


def test_naive_times_are_taken_as_utc() -> None:
    naive = replace(minimal_view(), opened_at=M0.replace(tzinfo=None))
    text = incident_started(
        naive, now=M0, next_update=(M0 + timedelta(hours=1)).replace(tzinfo=None)
    )
    assert "**Incident Started**: 2024-06-03 09:15 UTC" in text
    assert "**Next Update**: 2024-06-03 10:15 UTC" in text


def test_stored_forms_parse() -> None:
    update = StatusUpdate.from_json(
        {
            "at": "2024-05-14T14:08:00+00:00",
            "status": "investigating",
            "author": "carol",
            "facts": ["a"],
            "next_update": "2024-05-14T14:23:00Z",
        }
    )
    assert update == StatusUpdate(
        at("14:08:00"), UpdateStatus.INVESTIGATING, "carol", ("a",), (), at("14:23:00")
    )
    item = ActionItem.from_json({"text": "Fix", "owner": "bob", "due": "2024-05-28", "done": True})
    assert item == ActionItem("Fix", "bob", date(2024, 5, 28), True)
    assert ActionItem.from_json({"text": "Fix"}) == ActionItem("Fix")
    entry = timeline_entry({"at": "2024-05-14T14:08:00+00:00", "kind": "x", "text": "t"})
    assert entry == TimelineEntry(at("14:08:00"), "x", "t")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        # Inline structure is backslash-escaped so it reads as typed.
        pytest.param("a *b* _c_ `d` ~e~", r"a \*b\* \_c\_ \`d\` \~e\~", id="emphasis-code"),
        pytest.param("[x](http://e) ![i](j)", r"\[x\](http://e) !\[i\](j)", id="links"),
        pytest.param("a | b", r"a \| b", id="table-pipe"),
        pytest.param("back\\slash", r"back\\slash", id="backslash"),
        # HTML becomes entities: Markdown renders them as the characters, browsers too.
        pytest.param("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;", id="html"),
        pytest.param("&copy; R&D", "&amp;copy; R&D", id="entity-only"),
        # Block structure can only start a line: newlines fold, leading markers are escaped.
        pytest.param("# h\n- i\n\n> q", r"\# h - i &gt; q", id="fold-lines"),
        pytest.param("- item", r"\- item", id="list"),
        pytest.param("+ item", r"\+ item", id="plus-list"),
        pytest.param("12. item", r"12\. item", id="ordered"),
        pytest.param("3) item", r"3\) item", id="ordered-paren"),
        pytest.param("===", r"\===", id="setext"),
        pytest.param("    code", "code", id="indent"),
        pytest.param("a\x1b[31mb\x00", r"a\[31mb", id="control-chars"),
        pytest.param("api-gateway 5.2", "api-gateway 5.2", id="plain-untouched"),
    ],
)
def test_md_escape(raw: str, escaped: str) -> None:
    assert md_escape(raw) == escaped


def test_md_lines_keeps_lines_and_drops_blank_ones() -> None:
    assert md_lines("# a\n\n  - b  \n") == "\\# a\n\\- b"


@pytest.mark.parametrize(
    ("raw", "span"),
    [
        pytest.param("x=1", "`x=1`", id="plain"),
        # The fence is longer than any backtick run inside, so the value cannot close it.
        pytest.param("a`b", "``a`b``", id="backtick"),
        pytest.param("a``b`", "``` a``b` ```", id="trailing-backtick"),
        pytest.param("a\nb", "`a b`", id="one-line"),
        pytest.param("", "", id="empty"),
    ],
)
def test_code_span(raw: str, span: str) -> None:
    assert code_span(raw) == span


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(40, "40s", id="seconds"),
        pytest.param(45 * 60 + 29, "45m", id="minutes"),
        pytest.param(45 * 60 + 30, "46m", id="minutes-rounded"),
        pytest.param(59 * 60 + 45, "1h", id="rounded-up-to-hour"),
        pytest.param(82 * 60, "1h 22m", id="hours"),
        pytest.param(3600, "1h", id="whole-hour"),
        pytest.param(2 * 86400 + 3 * 3600, "2d 3h", id="days"),
        pytest.param(-5, "0s", id="clock-skew"),
    ],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(T0, T0 + timedelta(seconds=seconds)) == text


def test_role_names() -> None:
    assert role_name("commander") == "Incident Commander"
    assert role_name("customer liaison") == "customer liaison"


# --- overrides -------------------------------------------------------------------------------


def test_override_directory_wins_and_stays_escaped(tmp_path: Path) -> None:
    (tmp_path / "incident_started.md.j2").write_text(
        ":rotating_light: {{ view.id }} {{ view.severity }} {{ view.title }}"
        " ({{ view.first_alert.name|code }}), next update {{ next_update|utc('%H:%M') }}\n",
        encoding="utf-8",
    )
    renderer = CommsRenderer(tmp_path)
    view = replace(sev1_view(), title="Checkout *down*")
    text = incident_started(view, now=T0, next_update=at("14:20:00"), renderer=renderer)
    # The override's own text is used; values in it are escaped all the same.
    assert text == (
        r":rotating_light: INC-42 SEV1 Checkout \*down\* (`CheckoutHighErrorRate`), "
        "next update 14:20\n"
    )
    # A template the directory does not override still comes from the package.
    update = status_update(
        view, now=T0, status="resolved", facts=[], actions=[], next_update=None, renderer=renderer
    )
    assert update.startswith("**Status Update - 2024-05-14 13:58 UTC**\n")


def test_missing_override_directory_uses_the_package(tmp_path: Path) -> None:
    renderer = CommsRenderer(tmp_path / "absent")
    text = incident_started(sev1_view(), now=T0, next_update=T0, renderer=renderer)
    assert text == incident_started(sev1_view(), now=T0, next_update=T0)


def test_broken_override_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "incident_started.md.j2").write_text("{{ view.nope }}", encoding="utf-8")
    (tmp_path / "status_update.md.j2").write_text("{% if %}", encoding="utf-8")
    renderer = CommsRenderer(tmp_path)
    with pytest.raises(jinja2.UndefinedError):
        incident_started(minimal_view(), now=M0, next_update=M0, renderer=renderer)
    with pytest.raises(jinja2.TemplateSyntaxError):
        status_update(
            minimal_view(),
            now=M0,
            status="resolved",
            facts=[],
            actions=[],
            next_update=None,
            renderer=renderer,
        )


def test_override_runs_in_the_sandbox(tmp_path: Path) -> None:
    # Rule files are edited by many hands: a template cannot reach Python internals.
    (tmp_path / "incident_started.md.j2").write_text(
        "{{ view.__class__.__init__.__globals__ }}", encoding="utf-8"
    )
    with pytest.raises(SecurityError):
        incident_started(minimal_view(), now=M0, next_update=M0, renderer=CommsRenderer(tmp_path))
