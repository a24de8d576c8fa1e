"""A failed reload never keeps a deleted or changed trust anchor trusted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from pullgate.common.clock import FixedClock
from pullgate.trust.snapshot import Snapshot
from pullgate.trust.state import TrustState
from pullgate.trust.withdrawal import HASH_WITHDRAWN
from pullgate.verification.truststore import StoreProblem, StoreType, TrustStoreError
from tests.support.pki import NOW as PKI_NOW
from tests.unit.reload.trustdirs import (
    configmap_mount,
    configmap_swap,
    root_pem,
    trust_files,
    write_trust_dir,
)

CLOCK = FixedClock(PKI_NOW + timedelta(hours=12))
BROKEN_POLICY = b'{"version": "1.0", "trustPolicies": []}'


def _store_dir(trust: Path, store: str = "acme") -> Path:
    return trust / "truststore" / "x509" / "ca" / store


def _state(tmp_path: Path, trust_dir: str = "trust") -> TrustState:
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'trust_dir = "{trust_dir}"\nhosts_dir = ""\n')
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    return state


def _current(state: TrustState) -> Snapshot:
    snapshot = state.current()
    assert snapshot is not None
    return snapshot


def _assert_withdrawn(state: TrustState, good: Snapshot) -> None:
    kept = _current(state)
    assert kept.generation == good.generation
    assert kept.digest != good.digest
    assert HASH_WITHDRAWN in kept.hashes
    with pytest.raises(TrustStoreError) as info:
        kept.trust.store.load(StoreType.CA, "acme")
    assert info.value.problem is StoreProblem.WITHDRAWN
    status = state.status()
    assert status.degraded
    assert status.last_reload is not None
    assert not status.last_reload.ok
    assert status.digest == kept.digest
    assert any("acme" in problem for problem in status.problems)
    # the snapshot that loaded the anchor still trusts it: it is no longer the one in force
    assert good.trust.store.load(StoreType.CA, "acme")


def test_deleting_the_only_ca_withdraws_its_store(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    state = _state(tmp_path)
    good = _current(state)
    (_store_dir(trust) / "root.pem").unlink()
    assert not state.reload("watch").ok  # an empty store is invalid
    _assert_withdrawn(state, good)


def test_replacing_the_only_ca_with_garbage_withdraws_its_store(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    state = _state(tmp_path)
    good = _current(state)
    (_store_dir(trust) / "root.pem").write_bytes(b"not a certificate")
    assert not state.reload("watch").ok
    _assert_withdrawn(state, good)


def test_removing_the_store_directory_withdraws_it(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    state = _state(tmp_path)
    good = _current(state)
    (_store_dir(trust) / "root.pem").unlink()
    _store_dir(trust).rmdir()
    assert not state.reload("watch").ok
    _assert_withdrawn(state, good)


def test_only_the_changed_file_is_withdrawn(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    second = root_pem("second")
    (_store_dir(trust) / "second.pem").write_bytes(second)
    state = _state(tmp_path)
    good = _current(state)
    assert len(good.trust.store.load(StoreType.CA, "acme")) == 2
    (_store_dir(trust) / "root.pem").unlink()
    (trust / "trustpolicy.oci.json").write_bytes(BROKEN_POLICY)  # the reload fails elsewhere
    assert not state.reload("watch").ok
    kept = _current(state)
    [remaining] = kept.trust.store.load(StoreType.CA, "acme")
    assert remaining.public_bytes(Encoding.PEM) == second
    assert kept.digest != good.digest


def test_a_failed_reload_with_unchanged_trust_files_keeps_the_good_snapshot(
    tmp_path: Path,
) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    state = _state(tmp_path)
    good = _current(state)
    (trust / "trustpolicy.oci.json").write_bytes(BROKEN_POLICY)
    assert not state.reload("watch").ok
    assert state.current() is good


def test_a_restored_file_is_trusted_again_and_a_fix_loads(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    state = _state(tmp_path)
    good = _current(state)
    original = (_store_dir(trust) / "root.pem").read_bytes()
    (_store_dir(trust) / "root.pem").unlink()
    (trust / "trustpolicy.oci.json").write_bytes(BROKEN_POLICY)
    assert not state.reload("watch").ok
    assert _current(state) is not good
    (_store_dir(trust) / "root.pem").write_bytes(original)
    assert not state.reload("watch").ok  # the policy is still broken
    assert state.current() is good  # the very bytes it loaded are back
    write_trust_dir(trust, ca=original)
    assert state.reload("watch").ok
    assert _current(state).generation == good.generation + 1
    assert not state.status().degraded


def test_a_configmap_swap_that_drops_the_ca_withdraws_it(tmp_path: Path) -> None:
    mount = tmp_path / "trust"
    files = trust_files(root_pem("acme"))
    configmap_mount(mount, "2024_01_01", files)
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "trust"\nhosts_dir = ""\n')
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    good = _current(state)
    emptied = {k: v for k, v in files.items() if not k.endswith(".pem")}
    configmap_swap(mount, "2024_01_02", emptied)
    assert not state.reload("watch").ok
    _assert_withdrawn(state, good)


def test_a_withdrawal_notifies_the_listeners_of_the_snapshot_in_force(tmp_path: Path) -> None:
    """Listeners (the NRI audit and its evictions, the node audit) learn of a withdrawal as of
    any other change of the snapshot in force; a failed reload that changes nothing is silent."""
    trust = write_trust_dir(tmp_path / "trust")
    state = _state(tmp_path)
    good = _current(state)
    seen: list[Snapshot] = []
    state.add_listener(seen.append)
    (trust / "trustpolicy.oci.json").write_bytes(BROKEN_POLICY)
    assert not state.reload("watch").ok
    assert seen == []  # nothing withdrawn: the same snapshot stays in force
    (_store_dir(trust) / "root.pem").unlink()
    assert not state.reload("watch").ok
    assert [s.digest for s in seen] == [_current(state).digest]
    assert seen[0].digest != good.digest
    assert not state.reload("watch").ok  # the same withdrawal again: no new notification
    assert len(seen) == 1
