"""Fixtures shared by the registry tests: in-process fake registries, one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_registry import FakeRegistry


@pytest.fixture
def reg() -> Iterator[FakeRegistry]:
    """A fake registry (plain HTTP, loopback) for one test."""
    with FakeRegistry() as registry:
        yield registry


@pytest.fixture
def reg2() -> Iterator[FakeRegistry]:
    """A second, independent fake registry (a mirror, another host)."""
    with FakeRegistry() as registry:
        yield registry
