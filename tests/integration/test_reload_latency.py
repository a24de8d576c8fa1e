"""Reload-to-effect latency on real files: a change must be in force within 1 s.

The unit tests (tests/unit/reload/test_watcher.py) prove *that* changes are picked up; this
integration test measures *how fast*, with the daemon's default debounce (0.2 s), from just
before the write to the moment the new snapshot is current (``time.monotonic``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from pullgate.common.clock import FixedClock
from pullgate.trust.state import TrustState
from pullgate.trust.watcher import ConfigWatcher
from pullgate.verification.truststore import StoreType
from tests.support.pki import NOW as PKI_NOW
from tests.unit.reload.trustdirs import (
    configmap_mount,
    configmap_swap,
    root_pem,
    trust_files,
    write_trust_dir,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]

CLOCK = FixedClock(PKI_NOW + timedelta(hours=12))
LIMIT = 1.0  # seconds: the acceptance bound
GIVE_UP = 5.0


def _measure(state: TrustState, change: Callable[[], object]) -> float:
    """Seconds from just before ``change()`` until the generation moves on."""
    snapshot = state.current()
    assert snapshot is not None
    generation = snapshot.generation
    start = time.monotonic()
    change()
    while time.monotonic() - start < GIVE_UP:
        current = state.current()
        if current is not None and current.generation > generation:
            return time.monotonic() - start
        time.sleep(0.005)
    pytest.fail("the change was never picked up")


def test_replacing_the_trusted_ca_takes_effect_within_one_second(tmp_path: Path) -> None:
    old_ca, new_ca = root_pem("old"), root_pem("new")
    trust = write_trust_dir(tmp_path / "trust", ca=old_ca)
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "trust"\nhosts_dir = ""\n')
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    store_file = trust / "truststore" / "x509" / "ca" / "acme" / "root.pem"
    with ConfigWatcher(state):  # default debounce from the config (0.2 s)
        time.sleep(0.5)  # let the startup reads' events (if any) flush
        elapsed = _measure(state, lambda: store_file.write_bytes(new_ca))
    assert elapsed <= LIMIT, f"reload took {elapsed:.3f} s"
    snapshot = state.current()
    assert snapshot is not None
    (cert,) = snapshot.trust.store.load(StoreType.CA, "acme")
    assert cert.public_bytes(Encoding.PEM) == new_ca != old_ca  # the old CA is no longer trusted


def test_configmap_swap_takes_effect_within_one_second(tmp_path: Path) -> None:
    mount = tmp_path / "trust"
    configmap_mount(mount, "2026_11_23_01", trust_files(root_pem("one")))
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "trust"\nhosts_dir = ""\n')
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    with ConfigWatcher(state):
        time.sleep(0.5)
        elapsed = _measure(
            state,
            lambda: configmap_swap(mount, "2026_11_23_02", trust_files(root_pem("two"))),
        )
    assert elapsed <= LIMIT, f"reload took {elapsed:.3f} s"
