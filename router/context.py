"""What a worker process shares between jobs: rules, Redis, channels, clock, and a way to
schedule follow-up work. Built once at worker start (`router/jobs.py`) and passed down."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from router.comms import CommsRenderer, default_renderer
from router.incidents import IncidentStore
from router.keys import Keys
from router.notify.base import Channel, ThreadStore
from router.notify.factory import build_channel
from router.notify.render import Renderer
from router.notify.retry import RetryPolicy
from router.ruleset import Ruleset
from router.settings import Settings

# schedule(run_at, job_name, args, job_id): run a job at `run_at` (None: now), at most once per
# job_id. Times come from the context's clock, so tests that move the clock move the schedule.
Scheduler = Callable[[datetime | None, str, tuple[Any, ...], str], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class WorkerContext:
    settings: Settings
    ruleset: Ruleset
    redis: Redis
    keys: Keys
    store: IncidentStore
    channels: Mapping[str, Channel]
    schedule: Scheduler
    # The pooled HTTP client every channel shares; closed when the worker stops.
    http: httpx.Client
    clock: Callable[[], datetime] = utc_now
    # links(incident, person) -> {"ack": url, "resolve": url, "incident": url}, signed
    links: Callable[[str, str], Mapping[str, str]] = lambda incident, person: {}
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    # Incident Started / Status Update / postmortem templates (rules/templates overrides).
    comms: CommsRenderer = field(default_factory=default_renderer)


def build_channels(
    ruleset: Ruleset, http: httpx.Client, threads: ThreadStore, templates: Path | None
) -> dict[str, Channel]:
    """One channel object per channel in the rules, secrets resolved; message templates in
    `templates` (the rules' templates/ directory) override the shipped ones."""
    renderer = Renderer(templates)
    return {
        config.name: build_channel(config, ruleset.secret, http, threads, renderer)
        for config in ruleset.config.channels
    }
