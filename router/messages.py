"""The `Message` a channel renders for one page: titles, text and the incident document."""

from __future__ import annotations

from collections.abc import Mapping

from router.incidents import Incident
from router.notify.base import Message


def build_message(
    incident: Incident,
    record: Mapping[str, str],
    page_key: str,
    links: Mapping[str, str],
) -> Message:
    state = incident.state.value
    title = f"[{incident.severity.value}] {incident.id} {incident.title} ({state})"
    lines = [
        f"{incident.severity.value} incident {incident.id} for team {incident.team}: {state}",
        f"Opened {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC; "
        f"{incident.alerts_firing} alert(s) firing",
    ]
    if incident.summary:
        lines.append(incident.summary)
    if incident.runbook:
        lines.append(f"Runbook: {incident.runbook}")
    payload = incident.to_json()
    payload.pop("timeline")
    payload["page"] = {
        "kind": record["kind"],
        "step": int(record["step"]),
        "channel": record["channel"],
        "target": record.get("target", ""),
    }
    return Message(
        idempotency_key=page_key.replace(" ", "_"),
        event=record["event"],
        title=title,
        text=record.get("body") or "\n".join(lines),
        payload=payload,
        incident=incident.id,
        severity=incident.severity.value,
        recipient=record.get("recipient") or None,
        links=links,
    )
