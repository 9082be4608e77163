"""Fixtures shared by the suite: a real redis-server started once, a clean database per test,
the test rule set, the receiver app and an in-process rq worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from router.app import create_app
from router.jobs import queue_depth
from router.keys import Keys
from router.ruleset import Ruleset, load_ruleset
from router.settings import Settings
from tests.support.processes import redis_server
from tests.support.rules import rules_env, write_rules
from tests.support.server import serve_app
from tests.support.worker import TestWorker, start_worker

PAYLOADS = Path(__file__).resolve().parents[1].parent / "shared" / "payloads"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def page_url() -> str:
    """Where the test rules' `pager` channel posts; tests that check pages override this."""
    return "http://127.0.0.1:9/unused"


@pytest.fixture
def environ(page_url: str) -> dict[str, str]:
    return rules_env(page_url)


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "rules")


@pytest.fixture
def ruleset(rules_path: Path, environ: dict[str, str]) -> Ruleset:
    return load_ruleset(rules_path, environ)


@pytest.fixture
def settings(redis_url: str, rules_path: Path, environ: dict[str, str]) -> Settings:
    return Settings.from_env(
        {"REDIS_URL": redis_url, "SEVROUTER_RULES": str(rules_path), **environ}
    )


@pytest.fixture
def client(settings: Settings, ruleset: Ruleset, redis: Redis) -> Iterator[httpx.Client]:
    """An HTTP client pointed at the receiver, served for real by uvicorn."""
    depth = queue_depth(redis, Keys(settings.key_prefix), settings.queue_name)
    app = create_app(settings, ruleset, queue_depth=depth)
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


@pytest.fixture
def worker(settings: Settings, ruleset: Ruleset, redis: Redis) -> Iterator[TestWorker]:
    test_worker = start_worker(settings, ruleset, redis)
    yield test_worker
    test_worker.context.http.close()


def pytest_report_header() -> str:
    return f"shared payloads: {PAYLOADS} ({'found' if PAYLOADS.is_dir() else 'MISSING'})"
