"""Severity levels SEV1 (worst) to SEV4."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"

    @property
    def rank(self) -> int:
        """1 for SEV1 ... 4 for SEV4: lower is more severe."""
        return int(self.value[3])

    @classmethod
    def from_rank(cls, rank: int) -> Severity:
        return cls(f"SEV{rank}")

    def is_higher_than(self, other: Severity) -> bool:
        return self.rank < other.rank
