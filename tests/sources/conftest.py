"""Fixtures for the source tests: the shared payload captures, and a hostile-body checker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from router.alert import Alert
from router.errors import PayloadError
from router.sources import SourceKind, parse

# CI checks the repo out with `shared/` beside it, as on a workstation (/work/main, /work/shared).
PAYLOADS = (Path(__file__).resolve().parents[2] / ".." / "shared" / "payloads").resolve()

# Stand-ins substituted for every value of a real payload; together they hit every JSON type.
SUBSTITUTES: tuple[Any, ...] = (None, True, 0, 1.5, "", "x", [], {}, [[1]], {"k": "v"})

Path_ = tuple[str | int, ...]


@pytest.fixture(scope="session")
def payloads_dir() -> Path:
    if not PAYLOADS.is_dir():
        pytest.fail(
            f"payload captures not found at {PAYLOADS} (expected <repo>/../shared/payloads)"
        )
    return PAYLOADS


@pytest.fixture
def payload(payloads_dir: Path) -> Callable[[str], bytes]:
    """Raw bytes of one capture in shared/payloads, by file name."""

    def read(name: str) -> bytes:
        return (payloads_dir / name).read_bytes()

    return read


def _paths(value: Any, at: Path_ = ()) -> Iterator[Path_]:
    yield at
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*at, index))


def _replaced(document: Any, at: Path_, new: Any) -> Any:
    if not at:
        return new
    copy = json.loads(json.dumps(document))
    parent = copy
    for part in at[:-1]:
        parent = parent[part]
    parent[at[-1]] = new
    return copy


def variants(body: bytes) -> Iterator[tuple[bytes, str | None]]:
    """Mangled variants of a valid JSON body: cut at every byte (dotted path None), then every
    value replaced by each of SUBSTITUTES (with the dotted path of the replaced value)."""
    for end in range(len(body)):
        yield body[:end], None
    document = json.loads(body)
    for at in _paths(document):
        dotted = ".".join(str(part) for part in at)
        for new in SUBSTITUTES:
            yield json.dumps(_replaced(document, at, new)).encode(), dotted


def _parse(kind: SourceKind, body: bytes) -> list[Alert] | PayloadError:
    try:
        return parse(kind, body, integration="fuzz", now=datetime(2024, 6, 1, tzinfo=UTC))
    except PayloadError as exc:
        return exc


@pytest.fixture
def assert_hostile_safe() -> Callable[[SourceKind, bytes], int]:
    """Check that mangled variants of a valid body only ever fail with a well-placed PayloadError.

    Variants: the body cut at every byte, and every value replaced by each of SUBSTITUTES. A
    substitution may be accepted (an ignored key, a null map); if it is rejected, the error must
    name the replaced value or something inside it, never an unrelated place. Returns the number
    of variants tried, so a caller can tell the check did run.
    """

    def check(kind: SourceKind, body: bytes) -> int:
        tried = 0
        for variant, dotted in variants(body):
            outcome = _parse(kind, variant)
            tried += 1
            if dotted is None:
                # A valid JSON prefix only exists if the body ends in whitespace.
                if isinstance(outcome, PayloadError):
                    assert outcome.field == "", (len(variant), outcome)
            elif isinstance(outcome, PayloadError) and dotted:
                inside = outcome.field == dotted or outcome.field.startswith(dotted + ".")
                assert inside, (dotted, variant, outcome)
            elif not isinstance(outcome, PayloadError):
                assert all(isinstance(alert, Alert) for alert in outcome)
        return tried

    return check
