"""Time is injected: every component that needs "now" takes a :class:`Clock`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Source of the current time (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A clock stuck at one instant (tests, conformance runs, reproducible benchmarks)."""

    instant: datetime

    def now(self) -> datetime:
        return self.instant
