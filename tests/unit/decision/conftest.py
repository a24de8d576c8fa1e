"""Fixtures of the decision-layer tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.decision.world import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A fresh :class:`World` (fake registry running, nothing signed)."""
    with make_world(tmp_path) as value:
        yield value
