"""Every endpoint that reads a body: within the size limit, and a clear 4xx (never a 500) for a
body that is not JSON, however hostile, through the receiver served for real."""

from __future__ import annotations

import httpx
import pytest

from tests.support.rules import ALICE_TOKEN

ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}", "Content-Type": "application/json"}
ENDPOINTS = [
    pytest.param("/api/v1/silences", id="silences"),
    pytest.param("/api/v1/incidents/INC-1/roles", id="workflow"),
    pytest.param("/api/v1/drill", id="drill"),
    pytest.param("/api/v1/explain", id="explain"),
]
DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than any JSON decoder recurses


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "body", [pytest.param(DEEP, id="deep"), pytest.param(b"\xff{", id="not-utf8")]
)
def test_a_body_that_is_not_json_is_a_400(client: httpx.Client, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers=ALICE)
    assert response.status_code == 400
    assert response.json() == {"error": "body is not JSON", "field": ""}


@pytest.mark.parametrize(
    "path", [*ENDPOINTS, pytest.param("/api/v1/pagerduty/webhook", id="pagerduty")]
)
def test_a_body_over_the_limit_is_a_413(client: httpx.Client, path: str) -> None:
    # The default limit is 1 MiB; PagerDuty's is read before its signature can be checked.
    response = client.post(path, content=b" " * (1024 * 1024 + 1), headers=ALICE)
    assert response.status_code == 413
    assert "1048576-byte limit" in response.json()["error"]
