"""Fixtures for the end-to-end tests: the paging sink, the environment our child processes run
with, and a log directory whose tails are printed when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.e2e.helpers import tail
from tests.support.http_receiver import Receiver, serve_receiver


@pytest.fixture
def sink() -> Iterator[Receiver]:
    """Where the test rules' `pager` channel posts: a recording HTTP server answering 200."""
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    """One log file per child process. Their tails are printed on the way out, which pytest
    shows only for a failed test."""
    directory = tmp_path / "logs"
    directory.mkdir()
    yield directory
    for log in sorted(directory.glob("*.log")):
        print(f"--- {log.name} (last lines) ---\n{tail(log)}")


@pytest.fixture
def stack_env(
    redis_url: str, redis: Redis, rules_path: Path, environ: dict[str, str]
) -> dict[str, str]:
    """Environment for `sevrouter serve` / `sevrouter worker` against the suite's Redis, which
    the `redis` fixture has just emptied."""
    return {"REDIS_URL": redis_url, "SEVROUTER_RULES": str(rules_path), **environ}
