"""`sevrouter drill TEAM`: a marked test incident through the whole paging path."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support.http_receiver import Receiver, serve_receiver
from tests.support.rules import ALICE_TOKEN
from tests.support.worker import TestWorker


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


def test_drill_pages_the_team_end_to_end(
    client: httpx.Client, worker: TestWorker, sink: Receiver
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "router",
            "drill",
            "platform",
            "--url",
            str(client.base_url),
            "--token",
            ALICE_TOKEN,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "INC-1 opened for team platform (SEV2)" in done.stdout
    worker.drain()
    assert len(sink.requests) == 1
    page = json.loads(sink.requests[0].body)
    assert page["title"].startswith("[SEV2] INC-1 DRILL-paging-test")
    assert page["incident"]["alerts"][0]["labels"]["sevrouter_drill"] == "true"
    assert "Acknowledge it to complete the drill" in page["incident"]["summary"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        # A team the rules do not know.
        pytest.param({"team": "nope"}, 400, "team", id="unknown-team"),
        # A severity that does not exist.
        pytest.param({"team": "platform", "severity": "SEV9"}, 400, "severity", id="bad-severity"),
    ],
)
def test_drill_refusals(
    client: httpx.Client, body: dict[str, str], status: int, field: str
) -> None:
    response = client.post(
        "/api/v1/drill", json=body, headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
    )
    assert response.status_code == status
    assert response.json()["field"] == field
    assert client.post("/api/v1/drill", json={"team": "platform"}).status_code == 401
