"""Reloading rules in every process: SIGHUP, `POST /-/reload`, and a watcher of the files.

A new rule set is built and validated completely before it replaces the old one; an invalid
one is refused and the old one keeps running, with the error logged, shown on `/readyz` and
counted in `sevrouter_rules_reload_failures_total`. A reload asked of one process is published
on Redis so every receiver and worker reloads (each from its own copy of the files, as in
Kubernetes where every pod mounts the ConfigMap). Escalations in flight keep their snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from prometheus_client import Counter, Gauge

from router.errors import ConfigError
from router.rulefile import rule_paths
from router.ruleset import Ruleset, load_ruleset
from router.settings import Settings

log = structlog.get_logger(__name__)

RELOADS = Counter("sevrouter_rules_reloads_total", "Rule reloads that succeeded.")
RELOAD_FAILURES = Counter(
    "sevrouter_rules_reload_failures_total", "Rule reloads refused because the rules are invalid."
)
RELOAD_OK = Gauge(
    "sevrouter_rules_last_reload_successful", "1 if the last rule reload succeeded, else 0."
)


@dataclass(slots=True)
class Rules:
    """The current rule set of a process, and how the last reload went."""

    settings: Settings
    current: Ruleset
    last_error: list[str] = field(default_factory=list)
    fingerprint: tuple[tuple[str, float, int], ...] = ()
    listeners: list[Callable[[Ruleset], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.fingerprint = files_fingerprint(self.settings.rules_path)
        RELOAD_OK.set(1)

    def reload(self, reason: str) -> bool:
        """Build the rules from disk; swap them in only if valid. Returns whether it did."""
        with self._lock:
            fingerprint = files_fingerprint(self.settings.rules_path)
            try:
                ruleset = load_ruleset(self.settings.rules_path, self.settings.environ)
            except ConfigError as exc:
                self.last_error = exc.problems
                self.fingerprint = fingerprint  # do not retry the same broken files forever
                RELOAD_FAILURES.inc()
                RELOAD_OK.set(0)
                # No traceback: the problems list is the whole story, file by file.
                log.error("rules_reload_refused", reason=reason, problems=exc.problems)  # noqa: TRY400
                return False
            self.current = ruleset
            self.last_error = []
            self.fingerprint = fingerprint
            RELOADS.inc()
            RELOAD_OK.set(1)
            log.info("rules_reloaded", reason=reason, rules=len(ruleset.rules))
            for listener in self.listeners:
                listener(ruleset)
            return True

    def changed_on_disk(self) -> bool:
        return files_fingerprint(self.settings.rules_path) != self.fingerprint


def files_fingerprint(path: Path) -> tuple[tuple[str, float, int], ...]:
    """Names, modification times and sizes of the rule files (and templates)."""
    try:
        files = list(rule_paths(path))
    except ConfigError:
        return ()
    templates = (path if path.is_dir() else path.parent) / "templates"
    if templates.is_dir():
        files += sorted(p for p in templates.rglob("*") if p.is_file())
    found = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        found.append((str(file), stat.st_mtime, stat.st_size))
    return tuple(found)


def watch(rules: Rules, stop: threading.Event, interval: float) -> None:
    """Poll the files every `interval` seconds and reload when they change.

    Polling rather than inotify: Kubernetes updates ConfigMap volumes by swapping a symlink,
    which inotify watchers routinely miss; a stat every few seconds always sees it.
    """
    while not stop.wait(interval):
        if rules.changed_on_disk():
            rules.reload("files changed")


def reload_channel(prefix: str) -> str:
    return f"{prefix}:reload"
