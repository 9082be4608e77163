"""The postmortem draft against golden files (regenerate: see tests/test_comms.py), and the
timeline it is built from."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from router.comms import CommsRenderer, StatusUpdate, UpdateStatus
from router.incidents import TimelineEntry
from router.postmortem import Moment, default_author, render_postmortem, timeline
from tests.test_comms import (
    H0,
    M0,
    S0,
    SEV1_UPDATES,
    assert_golden,
    assert_no_injected_structure,
    at,
    hostile_view,
    minimal_view,
    sev1_view,
    sev3_view,
)

NOW = datetime(2024, 5, 15, 9, 30, 0, tzinfo=UTC)
HEADINGS = [
    "### Summary",
    "### Impact",
    "### Timeline",
    "### Roles",
    "### Root Cause",
    "### Contributing Factors",
    "### What Went Well",
    "### What Could Be Improved",
    "### Action Items",
]


def section(text: str, heading: str) -> list[str]:
    """The lines under `### heading`, up to the next heading or the closing note, blank lines
    dropped."""
    lines = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0].splitlines()
    return [line for line in lines if line and not line.startswith("_Draft generated")]


# --- golden files ----------------------------------------------------------------------------


def test_sev1_postmortem() -> None:
    text = render_postmortem(sev1_view(), now=NOW)
    assert_golden("postmortem_sev1.md", text)
    # The parts the brief spells out, checked here too so a regenerated golden cannot drop them.
    assert "**Author**: alice\n" in text  # the Incident Commander
    assert "**Duration**: 2024-05-14 13:58 UTC - 2024-05-14 15:20 UTC (1h 22m)\n" in text
    assert section(text, "Action Items") == [
        "- [ ] Add canary analysis to checkout deploys - Owner: bob - Due: 2024-05-28",
        "- [x] Alert on payments gateway pool saturation - Owner: alice - Due: 2024-05-21",
    ]
    assert section(text, "Contributing Factors") == ["- _(to be written)_"]
    assert section(text, "What Went Well")[0] == "- Paged and acknowledged within 7 minutes"


def test_sev3_auto_mitigated_postmortem() -> None:
    text = render_postmortem(sev3_view(), now=at("09:00:00", S0))
    assert_golden("postmortem_sev3.md", text)
    # Nobody commanded or resolved it: the author is left for a person to fill in.
    assert "**Author**: _(unassigned)_\n" in text
    assert section(text, "Roles")[2:] == [
        "| Incident Commander | _(unassigned)_ |",
        "| Tech Lead | _(unassigned)_ |",
        "| Communications | _(unassigned)_ |",
        "| Scribe | _(unassigned)_ |",
    ]


def test_minimal_postmortem() -> None:
    text = render_postmortem(minimal_view(), now=M0 + timedelta(hours=2))
    assert_golden("postmortem_minimal.md", text)
    assert "**Duration**: 2024-06-03 09:15 UTC - ongoing\n" in text
    assert section(text, "Timeline") == ["- _(nothing recorded)_"]


def test_hostile_postmortem() -> None:
    text = render_postmortem(hostile_view(), now=H0 + timedelta(hours=1))
    assert_golden("postmortem_hostile.md", text)
    title = (
        r"## Incident Postmortem: INC-666 &lt;img src=x onerror=alert(1)&gt; \*\*URGENT\*\* "
        r"\| \[click\](http://evil.example)"
    )
    # The only headings are the template's: the summary's "# Injected heading" is not one.
    assert_no_injected_structure(text, [title, *HEADINGS])
    # Table rows keep their two cells: every pipe from the input is escaped.
    for row in section(text, "Roles"):
        assert len(re.findall(r"(?<!\\)\|", row)) == 3, row
    # One line per item, whatever newlines and fake list markers the item's text held.
    assert len(section(text, "Action Items")) == 1
    assert len(section(text, "Contributing Factors")) == 2


# --- the timeline ----------------------------------------------------------------------------


def test_timeline_milestones_and_order() -> None:
    moments = timeline(sev1_view())
    milestones = [(m.at, m.milestone) for m in moments if m.milestone]
    assert milestones == [
        (at("13:58:12"), "First alert"),
        (at("13:58:21"), "Team engaged"),  # the first page delivered, not the later ones
        (at("14:04:30"), "Acknowledged"),
        (at("14:35:10"), "Mitigated (service restored)"),
        (at("15:20:00"), "Resolved (root cause fixed)"),
    ]
    assert [m.at for m in moments] == sorted(m.at for m in moments)
    texts = [m.text for m in moments]
    # Alert-by-alert joins and resolutions stay out; the counts are in the impact section.
    assert not any("joined the incident" in t or t.endswith(" resolved") for t in texts)
    assert sum("Status update" in t for t in texts) == 2
    assert sum(" is " in t for t in texts) == 3  # the role changes


def test_fields_fill_in_milestones_the_timeline_lacks() -> None:
    # A view built without the timeline still has its milestones, from the incident's stamps.
    view = replace(sev1_view(), timeline=())
    moments = timeline(view)
    assert [(m.milestone, m.text) for m in moments if m.milestone] == [
        ("First alert", "CheckoutHighErrorRate {namespace=prod, service=checkout} fired"),
        ("Acknowledged", "Acknowledged by alice"),
        ("Mitigated (service restored)", "Mitigated by bob"),
        ("Resolved (root cause fixed)", "Resolved by alice"),
    ]
    # Status updates come from the updates themselves when the timeline has none.
    assert [m for m in moments if not m.milestone] == [
        Moment(
            at("14:08:00"),
            "Status update (investigating) posted by carol; next update 2024-05-14 14:23 UTC",
        ),
        Moment(
            at("14:23:00"),
            "Status update (mitigating) posted by carol; next update 2024-05-14 14:38 UTC",
        ),
    ]


def test_timeline_says_who_when_the_text_does_not() -> None:
    view = replace(
        minimal_view(),
        timeline=(
            TimelineEntry(M0, "severity_changed", "Severity changed from SEV4 to SEV3", "dana"),
            TimelineEntry(M0, "escalation", "team channel notified"),
        ),
        updates=(StatusUpdate(M0, UpdateStatus.INVESTIGATING),),
    )
    assert [m.text for m in timeline(view)] == [
        "Severity changed from SEV4 to SEV3 (by dana)",
        "team channel notified",
        "Status update (investigating)",
    ]


def test_author() -> None:
    view = sev1_view()
    assert default_author(view) == "alice"  # the Incident Commander
    assert default_author(replace(view, roles={}, resolved_by="bob")) == "bob"  # who resolved
    assert default_author(sev3_view()) == ""
    text = render_postmortem(view, author="Dana Scully", now=NOW)
    assert "**Author**: Dana Scully\n" in text


def test_updates_given_do_not_duplicate_timeline_updates() -> None:
    view = sev1_view()
    assert view.updates == SEV1_UPDATES
    assert sum(m.text.startswith("Status update") for m in timeline(view)) == 2


def test_postmortem_override(tmp_path: Path) -> None:
    (tmp_path / "postmortem.md.j2").write_text(
        "# {{ view.id }} review ({{ author }})\n"
        "{% for moment in timeline if moment.milestone %}\n"
        "* {{ moment.at|utc('%H:%M') }} {{ moment.milestone }}\n"
        "{% endfor %}\n",
        encoding="utf-8",
    )
    text = render_postmortem(sev1_view(), now=NOW, renderer=CommsRenderer(tmp_path))
    assert text == (
        "# INC-42 review (alice)\n"
        "* 13:58 First alert\n"
        "* 13:58 Team engaged\n"
        "* 14:04 Acknowledged\n"
        "* 14:35 Mitigated (service restored)\n"
        "* 15:20 Resolved (root cause fixed)\n"
    )
