"""What a target may and may not do with hostile input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Target = Callable[[bytes], None]


class OracleViolation(AssertionError):
    """A parser accepted something it must refuse, or returned something it must not."""


def check(condition: bool, what: str) -> None:
    """Raise :class:`OracleViolation` (``what``) unless ``condition`` holds."""
    if not condition:
        raise OracleViolation(what)


@dataclass(frozen=True, slots=True)
class FuzzTarget:
    """One fuzz target: its name, the parser it drives and the function taking the input."""

    name: str
    parser: str  # the public entry point(s) under test
    run: Target
