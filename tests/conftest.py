"""Shared pytest fixtures (fixtures only; helpers live in ``tests/support``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.support.crl_server import CrlServer
from tests.support.pki import Pki
from tests.support.tsa import TestTsa


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    """A running CRL HTTP server on 127.0.0.1 (routes empty; stopped after the test)."""
    with CrlServer() as server:
        yield server


@pytest.fixture
def test_tsa() -> TestTsa:
    """An in-process RFC 3161 TSA with a fresh TSA leaf -> root chain."""
    return TestTsa(Pki().tsa_chain())


@pytest.fixture(autouse=True)
def _thawed_heap() -> Iterator[None]:
    """A daemon run in-process freezes the heap (``pullgate.common.heap``); the next test starts
    with every object back under the collector."""
    yield
    gc.unfreeze()
