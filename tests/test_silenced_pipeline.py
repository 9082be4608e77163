"""Silences in the ingest path: silenced alerts are recorded but page no one, and a silence can
end itself when the alert it muted resolves."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.payloads import alertmanager_body
from tests.support.rules import ALICE_TOKEN, TOKEN

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
DISK = {"alertname": "DiskFull", "severity": "critical", "cluster": "eu-1"}


def post(client: httpx.Client, status: str = "firing", **labels: str) -> dict[str, Any]:
    ends = "2026-11-26T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    body = alertmanager_body([DISK | labels], status=status, ends_at=ends)
    response = client.post(AM, content=body, headers=HEADERS)
    assert response.status_code == 202
    answer: dict[str, Any] = response.json()
    return answer


def silence(client: httpx.Client, **extra: Any) -> str:
    body = {
        "matchers": 'alertname="DiskFull",cluster="eu-1"',
        "duration": "2h",
        "comment": "disk swap",
    }
    response = client.post("/api/v1/silences", json=body | extra, headers=ALICE)
    assert response.status_code == 201, response.text
    silence_id: str = response.json()["id"]
    return silence_id


def test_silenced_alert_is_recorded_not_paged(client: httpx.Client) -> None:
    silence_id = silence(client)
    answer = post(client)  # takes effect at once on this receiver: the cache was invalidated
    assert answer["outcomes"] == {"muted": 1}
    assert answer["muted"] == {f"silence:{silence_id}": 1}
    assert client.get("/api/v1/incidents").json()["incidents"] == []
    assert post(client, cluster="us-1")["outcomes"] == {"opened": 1}


def test_expired_silence_lets_the_next_delivery_page(client: httpx.Client) -> None:
    silence_id = silence(client)
    assert post(client)["outcomes"] == {"muted": 1}
    assert client.delete(f"/api/v1/silences/{silence_id}", headers=ALICE).status_code == 200
    # Alertmanager re-sends the still-firing alert: now it opens an incident.
    assert post(client)["outcomes"] == {"opened": 1}


def test_silence_expires_when_its_alert_resolves(client: httpx.Client) -> None:
    silence_id = silence(client, expire_on_resolve=True)
    assert post(client)["outcomes"] == {"muted": 1}
    assert post(client, status="resolved")["outcomes"] == {"muted": 1}
    state = client.get(f"/api/v1/silences/{silence_id}").json()["state"]
    assert state == "expired"
