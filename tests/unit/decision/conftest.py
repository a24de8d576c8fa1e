"""Fixtures of the decision-layer tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.decision.world import HttpWorld, MemWorld, make_world, memory_world


def _no_network(sock: socket.socket, address: object) -> None:
    raise AssertionError(f"a decision-layer test over the in-memory store connected to {address}")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemWorld:
    """A fresh world over the in-memory store (nothing signed); any network connection made
    while it is in use fails the test."""
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _no_network)
    return memory_world(tmp_path)


@pytest.fixture
def http_world(tmp_path: Path) -> Iterator[HttpWorld]:
    """A fresh world over the in-process HTTP fake registry, running (nothing signed): for the
    tests of the registry store's wire behaviour under the engine."""
    with make_world(tmp_path) as value:
        yield value
