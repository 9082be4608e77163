"""POST /api/v1/webhooks/{integration}: every answer the receiver gives, against real Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis
from structlog.testing import capture_logs

from router.app import create_app
from router.ruleset import Ruleset
from router.settings import Settings
from tests.support.payloads import alertmanager_body, shared
from tests.support.processes import free_port
from tests.support.rules import HMAC_SECRET, TOKEN
from tests.support.server import serve_app

AM = "/api/v1/webhooks/alertmanager"
BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}", "Content-Type": "application/json"}


def grafana_signed(
    body: bytes, *, secret: str = HMAC_SECRET, at: int | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time()) if at is None else at)
    signature = hmac.new(secret.encode(), timestamp.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Grafana-Alerting-Signature": signature.hexdigest(),
        "X-Grafana-Alerting-Timestamp": timestamp,
    }


def test_accepts_alertmanager_webhook_with_receipt(client: httpx.Client) -> None:
    # The first delivery opens one incident for the group; the receipt says so.
    response = client.post(AM, content=shared("alertmanager_v4_firing.json"), headers=BEARER)
    assert response.status_code == 202
    receipt = response.json()
    assert receipt["alerts"] == 2
    assert receipt["outcomes"] == {"opened": 1, "added": 1}
    assert receipt["incidents"] == {"opened": ["INC-1"], "touched": []}
    assert receipt["duplicates"] == 0


def test_repeat_delivery_is_all_duplicates(client: httpx.Client) -> None:
    # Alertmanager re-sends each group every group_interval/repeat_interval: nothing changes.
    body = shared("alertmanager_v4_firing.json")
    client.post(AM, content=body, headers=BEARER)
    again = client.post(AM, content=body, headers=BEARER).json()
    assert again["duplicates"] == 2
    assert again["incidents"] == {"opened": [], "touched": []}
    incidents = client.get("/api/v1/incidents").json()["incidents"]
    assert [i["id"] for i in incidents] == ["INC-1"]


def test_resolved_delivery_mitigates(client: httpx.Client) -> None:
    client.post(AM, content=shared("alertmanager_v4_firing.json"), headers=BEARER)
    receipt = client.post(
        AM, content=shared("alertmanager_v4_resolved.json"), headers=BEARER
    ).json()
    assert receipt["outcomes"] == {"resolved": 1, "all_resolved": 1}
    incident = client.get("/api/v1/incidents/INC-1").json()
    assert incident["state"] == "mitigated"
    assert incident["alerts_firing"] == 0


@pytest.mark.parametrize(
    ("path", "headers", "status", "message"),
    [
        # An integration not declared in rules/ does not exist.
        pytest.param(
            "/api/v1/webhooks/nope",
            BEARER,
            404,
            "unknown integration 'nope'",
            id="unknown-integration",
        ),
        # No Authorization header at all.
        pytest.param(
            AM, {"Content-Type": "application/json"}, 401, "missing bearer token", id="no-token"
        ),
        # The right scheme with the wrong token.
        pytest.param(
            AM,
            {"Authorization": "Bearer wrong", "Content-Type": "application/json"},
            401,
            "invalid bearer token",
            id="wrong-token",
        ),
        # Basic credentials offered to a bearer integration.
        pytest.param(AM, basic("am", TOKEN), 401, "missing bearer token", id="basic-for-bearer"),
        # Basic auth integration: wrong password.
        pytest.param(
            "/api/v1/webhooks/basic",
            basic("am", "nope"),
            401,
            "invalid basic auth credentials",
            id="basic-wrong-password",
        ),
        # Basic auth integration: wrong user, right password.
        pytest.param(
            "/api/v1/webhooks/basic",
            basic("root", TOKEN),
            401,
            "invalid basic auth credentials",
            id="basic-wrong-user",
        ),
        # Garbage after "Basic".
        pytest.param(
            "/api/v1/webhooks/basic",
            {"Authorization": "Basic %%%", "Content-Type": "application/json"},
            401,
            "malformed basic auth credentials",
            id="basic-malformed",
        ),
        # Authenticated, but a form post is not JSON.
        pytest.param(
            AM,
            {**BEARER, "Content-Type": "application/x-www-form-urlencoded"},
            415,
            "expected Content-Type: application/json",
            id="form-content-type",
        ),
        # Authenticated, no content type at all.
        pytest.param(
            AM,
            {"Authorization": f"Bearer {TOKEN}", "Content-Type": ""},
            415,
            "expected Content-Type: application/json",
            id="no-content-type",
        ),
    ],
)
def test_refusals_before_the_body(
    client: httpx.Client, path: str, headers: dict[str, str], status: int, message: str
) -> None:
    response = client.post(path, content=shared("alertmanager_v4_firing.json"), headers=headers)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_unauthorized_answers_with_www_authenticate(client: httpx.Client) -> None:
    response = client.post(AM, content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_basic_auth_accepted(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/webhooks/basic",
        content=shared("alertmanager_v4_firing.json"),
        headers=basic("am", TOKEN),
    )
    assert response.status_code == 202


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    # The default limit is 1 MiB; a padded annotation pushes a valid body past it.
    body = alertmanager_body([{"alertname": "Big"}], annotations={"blob": "x" * (1024 * 1024)})
    response = client.post(AM, content=body, headers=BEARER)
    assert response.status_code == 413
    assert "1048576-byte limit" in response.json()["error"]


def test_body_over_limit_without_content_length_is_413(client: httpx.Client) -> None:
    # A chunked upload has no Content-Length; the limit holds while reading.
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = client.post(AM, content=chunks(), headers=BEARER)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        # Not JSON at all.
        pytest.param(b"not json", "", "body is not JSON", id="not-json"),
        # JSON, but a list instead of the message object.
        pytest.param(b"[]", "", "object", id="json-array"),
        # A time that is not RFC 3339 names the exact alert and field.
        pytest.param(
            alertmanager_body([{"alertname": "A"}], starts_at="yesterday"),
            "alerts.0.startsAt",
            "",
            id="bad-starts-at",
        ),
        # A custom payload template (Alertmanager >= 0.32) is not the v4 format.
        pytest.param(b'{"version":"5","alerts":[]}', "version", "", id="wrong-version"),
    ],
)
def test_malformed_body_is_400_naming_the_field(
    client: httpx.Client, body: bytes, field: str, message: str
) -> None:
    response = client.post(AM, content=body, headers=BEARER)
    assert response.status_code == 400
    answer = response.json()
    assert answer["field"] == field
    assert message.lower() in answer["error"].lower()


def test_grafana_hmac_signed_body_accepted(client: httpx.Client) -> None:
    body = shared("grafana_firing.json")
    response = client.post("/api/v1/webhooks/grafana", content=body, headers=grafana_signed(body))
    assert response.status_code == 202
    assert response.json()["alerts"] == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # A signature made with another secret.
        pytest.param(
            lambda b: grafana_signed(b, secret="other"), "invalid signature", id="wrong-secret"
        ),
        # A correctly signed body replayed ten minutes later.
        pytest.param(
            lambda b: grafana_signed(b, at=int(time.time()) - 600), "replay window", id="stale"
        ),
        # No signature header.
        pytest.param(
            lambda b: {"Content-Type": "application/json"},
            "missing X-Grafana-Alerting-Signature",
            id="unsigned",
        ),
        # A signature over different bytes than were sent.
        pytest.param(lambda b: grafana_signed(b + b" "), "invalid signature", id="body-changed"),
    ],
)
def test_grafana_bad_signature_is_401(client: httpx.Client, mutate: object, message: str) -> None:
    body = shared("grafana_firing.json")
    headers = mutate(body)  # type: ignore[operator]
    response = client.post("/api/v1/webhooks/grafana", content=body, headers=headers)
    assert response.status_code == 401
    assert message in response.json()["error"]


def test_grafana_test_notification_opens_nothing(client: httpx.Client) -> None:
    # Grafana's "Test" button proves the contact point works; it must not page anyone. Its
    # group key is `<contact point>-<fingerprint>-<unix seconds>`, unique per click.
    message = json.loads(shared("grafana_firing_integration_test.json"))
    message["groupKey"] = "test-57c6d9296de2ad39-1704985443"
    message["alerts"] = [
        message["alerts"][0]
        | {
            "labels": {"alertname": "TestAlert", "instance": "Grafana"},
            "annotations": {"summary": "Notification test"},
            "values": None,
        }
    ]
    response = client.post(
        "/api/v1/webhooks/open",
        content=json.dumps(message).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202
    answer = response.json()
    assert answer["tests"] == 1
    assert answer["incidents"] == {"opened": [], "touched": []}
    assert client.get("/api/v1/incidents").json()["incidents"] == []


def test_legacy_grafana_accepted(client: httpx.Client) -> None:
    body = shared("grafana_legacy_alerting.json")
    response = client.post(
        "/api/v1/webhooks/open", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 202
    assert response.json()["incidents"]["opened"] == ["INC-1"]


def test_dropped_alerts_are_counted_not_stored(client: httpx.Client) -> None:
    body = alertmanager_body([{"alertname": "Watchdog", "severity": "none"}])
    receipt = client.post(AM, content=body, headers=BEARER).json()
    assert receipt["dropped"] == 1
    assert client.get("/api/v1/incidents").json()["incidents"] == []


@pytest.fixture
def dead_redis_client(settings: Settings, ruleset: Ruleset, redis: Redis) -> Iterator[httpx.Client]:
    """The receiver pointed at a Redis that is not there."""
    from dataclasses import replace

    down = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(down, ruleset, queue_depth=lambda: {})
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def test_redis_down_is_503_with_retry_after(dead_redis_client: httpx.Client) -> None:
    # Alertmanager retries 5xx only: the answer must be a 503 so nothing accepted is lost.
    response = dead_redis_client.post(
        AM, content=shared("alertmanager_v4_firing.json"), headers=BEARER
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


def test_readyz_reports_redis(client: httpx.Client, dead_redis_client: httpx.Client) -> None:
    assert client.get("/readyz").status_code == 200
    down = dead_redis_client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["problems"] == ["redis: ConnectionError"]
    assert dead_redis_client.get("/healthz").status_code == 200


def test_metrics_count_webhooks_and_incidents(client: httpx.Client) -> None:
    client.post(AM, content=shared("alertmanager_v4_firing.json"), headers=BEARER)
    text = client.get("/metrics").text
    assert 'sevrouter_webhook_requests_total{code="202",integration="alertmanager"}' in text
    assert 'sevrouter_dedupe_outcomes_total{outcome="opened"}' in text
    assert 'sevrouter_incidents{severity="SEV2",state="triggered"} 1.0' in text
    assert 'sevrouter_queue_depth{queue="events"} 1.0' in text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("state=open", "state", id="bad-state"),
        pytest.param("severity=SEV9", "severity", id="bad-severity"),
        pytest.param("limit=0", "limit", id="limit-zero"),
        pytest.param("limit=abc", "limit", id="limit-text"),
        pytest.param("colour=red", "colour", id="unknown-parameter"),
    ],
)
def test_incident_list_rejects_bad_queries(client: httpx.Client, query: str, field: str) -> None:
    response = client.get(f"/api/v1/incidents?{query}")
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_incident_list_filters(client: httpx.Client) -> None:
    client.post(
        AM, content=alertmanager_body([{"alertname": "A", "severity": "critical"}]), headers=BEARER
    )
    client.post(
        AM, content=alertmanager_body([{"alertname": "B", "severity": "warning"}]), headers=BEARER
    )
    client.post(AM, content=alertmanager_body([{"alertname": "C", "team": "db"}]), headers=BEARER)

    def ids(query: str) -> list[str]:
        return [i["id"] for i in client.get(f"/api/v1/incidents?{query}").json()["incidents"]]

    assert ids("") == ["INC-3", "INC-2", "INC-1"]
    assert ids("severity=SEV2") == ["INC-3", "INC-1"]
    assert ids("severity=sev3") == ["INC-2"]
    assert ids("team=db") == ["INC-3"]
    assert ids("state=triggered&limit=1") == ["INC-3"]
    assert ids("state=mitigated") == []
    assert client.get("/api/v1/incidents/INC-99").status_code == 404


# --- the bare ASGI path's own edges -------------------------------------------------------------


def test_other_methods_are_405_with_allow(client: httpx.Client) -> None:
    response = client.get(AM, headers=BEARER)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, PUT"
    assert response.json() == {"error": "use POST or PUT"}
    # PUT is what some proxies and old Grafana versions send: accepted like POST.
    put = client.put(AM, content=shared("alertmanager_v4_firing.json"), headers=BEARER)
    assert put.status_code == 202


def test_paths_below_an_integration_are_404(client: httpx.Client) -> None:
    # Only /api/v1/webhooks/<name> is the webhook path; anything deeper is Starlette's 404.
    for path in (f"{AM}/extra", "/api/v1/webhooks/", "/api/v1/webhooks//"):
        response = client.post(path, content=b"{}", headers=BEARER)
        assert response.status_code == 404, path


def test_a_trailing_slash_is_the_same_webhook(client: httpx.Client) -> None:
    # `url: http://sevrouter:9095/api/v1/webhooks/alertmanager/` in alertmanager.yml works too.
    body = shared("alertmanager_v4_firing.json")
    response = client.post(f"{AM}/", content=body, headers=BEARER)
    assert response.status_code == 202
    assert response.json()["incidents"]["opened"] == ["INC-1"]


def test_an_unexpected_failure_is_a_json_500_and_logged(
    settings: Settings, ruleset: Ruleset, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug on the hot path must still answer (5xx: the sender retries) and say so in the log.
    app = create_app(settings, ruleset, queue_depth=lambda: {})

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.services.deduper, "ingest", broken)
    with (
        capture_logs() as logs,
        serve_app(app) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        response = http.post(AM, content=shared("alertmanager_v4_firing.json"), headers=BEARER)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["webhook_failed"]
