"""Process settings, read once from the environment at start-up.

Everything that is about *routing* (integrations, severities, teams, rules) lives in `rules/`;
this module holds only what a process needs to start: where Redis is, where the rules are, how to
log. No other module reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from router.secrets import Secret

DEFAULT_PORT = 9095
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Replicas that must confirm a webhook's writes before it is acknowledged (Redis WAIT);
    # 0 does not wait. With Sentinel, 1 keeps a failover from losing acknowledged alerts.
    redis_wait_replicas: int = 0
    rules_path: Path = Path("rules")
    # Every Redis key starts with this, so one Redis can serve several installations.
    key_prefix: str = "sevrouter"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"
    log_format: str = "json"
    # The URL responders and senders reach us at; used in printed instructions and links.
    public_url: str = ""
    queue_name: str = "sevrouter"
    # API tokens -> the person they act as (SEVROUTER_API_TOKENS / _FILE). Never printed.
    api_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Key for the signed one-click acknowledge/resolve links in pages; None disables them.
    link_secret: Secret | None = field(default=None, repr=False)
    link_ttl_seconds: int = 24 * 3600
    # Secrets of PagerDuty v3 webhook subscriptions (several during rotation).
    pagerduty_webhook_secrets: tuple[Secret, ...] = field(default=(), repr=False)
    # Seconds between checks of the rule files for changes (0: only SIGHUP and /-/reload).
    rules_watch_interval: float = 5.0
    # The environment handed to rule files for `{env: NAME}` secret references.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        defaults = cls()
        if "REDIS_URL" in env:
            # A typo in the URL is a clear start-up error, not a traceback at the first request.
            from router.redisurl import RedisURLError, parse_url

            try:
                parse_url(env["REDIS_URL"])
            except RedisURLError as exc:
                raise ValueError(f"REDIS_URL: {exc}") from None
        return cls(
            redis_url=env.get("REDIS_URL", defaults.redis_url),
            redis_wait_replicas=_replica_count(env, "SEVROUTER_REDIS_WAIT_REPLICAS"),
            rules_path=Path(env.get("SEVROUTER_RULES", str(defaults.rules_path))),
            key_prefix=env.get("SEVROUTER_KEY_PREFIX", defaults.key_prefix),
            max_body_bytes=_positive_int(env, "SEVROUTER_MAX_BODY_BYTES", defaults.max_body_bytes),
            log_level=env.get("SEVROUTER_LOG_LEVEL", defaults.log_level).lower(),
            log_format=env.get("SEVROUTER_LOG_FORMAT", defaults.log_format).lower(),
            public_url=env.get("SEVROUTER_PUBLIC_URL", ""),
            queue_name=env.get("SEVROUTER_QUEUE", defaults.queue_name),
            api_tokens=_api_tokens(env),
            link_secret=Secret(env["SEVROUTER_LINK_SECRET"])
            if env.get("SEVROUTER_LINK_SECRET")
            else None,
            pagerduty_webhook_secrets=tuple(
                Secret(part.strip())
                for part in env.get("SEVROUTER_PAGERDUTY_WEBHOOK_SECRETS", "").split(",")
                if part.strip()
            ),
            rules_watch_interval=float(env.get("SEVROUTER_RULES_WATCH_INTERVAL", "5")),
            environ=env,
        )


def _api_tokens(env: Mapping[str, str]) -> dict[str, str]:
    """`person:token` pairs, comma separated (SEVROUTER_API_TOKENS), and/or a file of
    `person token` lines (SEVROUTER_API_TOKENS_FILE, # comments allowed)."""
    pairs: list[tuple[str, str]] = []
    for item in env.get("SEVROUTER_API_TOKENS", "").split(","):
        person, separator, token = item.strip().partition(":")
        if item.strip() and (not separator or not person or not token):
            raise ValueError("SEVROUTER_API_TOKENS entries must be person:token, comma separated")
        if separator:
            pairs.append((person, token))
    path = env.get("SEVROUTER_API_TOKENS_FILE")
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(
                f"SEVROUTER_API_TOKENS_FILE: cannot read {path}: {exc.strerror}"
            ) from None
        for number, line in enumerate(lines, start=1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 'person token'")
            pairs.append((fields[0], fields[1]))
    return {token: person for person, token in pairs}


def _replica_count(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ValueError(f"{name} must be a number of replicas (0 or more), got {raw!r}")
    return int(raw)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of bytes, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value
