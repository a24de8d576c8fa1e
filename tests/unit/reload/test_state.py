"""TrustState: atomic swap, last-good kept on failure, degraded status, listeners."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from pullgate.common.clock import FixedClock
from pullgate.config import DaemonConfig
from pullgate.errors import Reason
from pullgate.trust.snapshot import HASH_TRUST_STORES, Snapshot, build_snapshot
from pullgate.trust.state import TrustState
from tests.support.pki import NOW as PKI_NOW
from tests.unit.reload.trustdirs import root_pem, write_trust_dir

CLOCK = FixedClock(PKI_NOW + timedelta(hours=12))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """(config path, trust dir), valid."""
    trust = write_trust_dir(tmp_path / "trust")
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "trust"\nhosts_dir = "certs.d"\n')
    return config_path, trust


def test_no_snapshot_before_first_reload_is_degraded(setup: tuple[Path, Path]) -> None:
    state = TrustState(setup[0], clock=CLOCK)
    assert state.current() is None
    status = state.status()
    assert status.degraded
    assert status.generation == 0
    assert status.last_reload is None


def test_first_reload_sets_generation_one(setup: tuple[Path, Path]) -> None:
    state = TrustState(setup[0], clock=CLOCK)
    result = state.reload("startup")
    assert result.ok
    assert result.generation == 1
    assert result.trigger == "startup"
    snapshot = state.current()
    assert snapshot is not None
    assert snapshot.generation == 1
    status = state.status()
    assert not status.degraded
    assert status.hashes == snapshot.hashes
    assert status.digest == snapshot.digest
    assert status.reloads_ok == 1


def test_failed_first_reload_leaves_no_snapshot(tmp_path: Path) -> None:
    state = TrustState(tmp_path / "absent.toml", clock=CLOCK)
    result = state.reload("startup")
    assert not result.ok
    assert result.reason is Reason.CONFIG
    assert state.current() is None
    status = state.status()
    assert status.degraded
    assert status.reloads_failed == 1


def test_invalid_policy_keeps_the_good_snapshot(setup: tuple[Path, Path]) -> None:
    config_path, trust = setup
    state = TrustState(config_path, clock=CLOCK)
    state.reload("startup")
    good = state.current()
    (trust / "trustpolicy.oci.json").write_bytes(b'{"version": "1.0", "trustPolicies": []}')
    result = state.reload("watch")
    assert not result.ok
    assert result.reason is Reason.CONFIG
    assert result.problems
    assert result.generation == 1
    assert state.current() is good
    status = state.status()
    assert status.degraded
    assert status.generation == 1
    assert status.last_reload == result
    assert status.reloads_failed == 1
    # fixing it
    write_trust_dir(trust)
    fixed = state.reload("watch")
    assert fixed.ok
    assert fixed.generation == 2
    assert not state.status().degraded
    assert state.current() is not good


def test_broken_trust_store_keeps_the_good_snapshot(setup: tuple[Path, Path]) -> None:
    config_path, trust = setup
    state = TrustState(config_path, clock=CLOCK)
    state.reload("startup")
    good = state.current()
    store_file = trust / "truststore" / "x509" / "ca" / "acme" / "root.pem"
    store_file.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert not state.reload("watch").ok
    kept = state.current()
    assert kept is not None
    assert good is not None
    # generation 1 stays in force, but not the CA whose file changed (tests/unit/reload/
    # test_withdrawal.py has the details)
    assert (kept.generation, kept.config) == (good.generation, good.config)
    assert kept.digest != good.digest
    assert state.status().degraded
    store_file.write_bytes(root_pem("replacement"))
    assert state.reload("watch").ok
    snapshot = state.current()
    assert snapshot is not None
    assert good is not None
    assert snapshot.generation == 2
    assert snapshot.hashes[HASH_TRUST_STORES] != good.hashes[HASH_TRUST_STORES]
    assert not state.status().degraded


def test_broken_docker_config_keeps_the_good_snapshot(setup: tuple[Path, Path]) -> None:
    config_path, _ = setup
    config_path.write_text(config_path.read_text() + '[registry]\nconfig_json = "docker.json"\n')
    docker_json = config_path.parent / "docker.json"
    state = TrustState(config_path, clock=CLOCK)
    missing = state.reload("startup")
    assert (missing.ok, missing.reason) == (False, Reason.CONFIG)
    docker_json.write_text('{"auths": {}}')
    assert state.reload("sighup").ok  # the fix is picked up
    good = state.current()
    docker_json.write_text("{")
    broken = state.reload("watch")
    assert (broken.ok, broken.reason) == (False, Reason.CONFIG)
    assert state.current() is good
    assert state.status().degraded
    docker_json.write_text('{"auths": {"r.example": {"username": "u", "password": "p"}}}')
    assert state.reload("watch").ok
    snapshot = state.current()
    assert snapshot is not None
    assert good is not None
    assert snapshot.digest != good.digest
    assert snapshot.docker is not None
    assert snapshot.docker.get("r.example") is not None


def test_certs_d_problem_is_not_fatal(setup: tuple[Path, Path]) -> None:
    config_path, _trust = setup
    state = TrustState(config_path, clock=CLOCK)
    state.reload("startup")
    host_dir = config_path.parent / "certs.d" / "_default"
    host_dir.mkdir(parents=True)
    (host_dir / "hosts.toml").write_bytes(b"[host.")
    result = state.reload("watch")
    assert result.ok
    assert result.generation == 2
    assert len(result.problems) == 1
    status = state.status()
    assert not status.degraded
    assert status.problems == result.problems


def test_listeners_run_after_swap_only(setup: tuple[Path, Path]) -> None:
    config_path, trust = setup
    state = TrustState(config_path, clock=CLOCK)
    seen: list[tuple[int, Snapshot | None]] = []

    def listener(snapshot: Snapshot) -> None:
        seen.append((snapshot.generation, state.current()))

    def broken(_snapshot: Snapshot) -> None:
        raise RuntimeError("listener bug")

    state.add_listener(broken)
    state.add_listener(listener)
    state.reload("startup")
    assert [gen for gen, _ in seen] == [1]
    assert seen[0][1] is not None
    assert seen[0][1].generation == 1  # already swapped when notified
    (trust / "trustpolicy.oci.json").write_bytes(b"{")
    state.reload("watch")
    assert len(seen) == 1
    state.remove_listener(listener)
    write_trust_dir(trust)
    state.reload("watch")
    assert len(seen) == 1


def test_unexpected_builder_crash_keeps_last_good(setup: tuple[Path, Path]) -> None:
    config_path, _trust = setup
    calls: list[int] = []

    def builder(path: Path | None, generation: int) -> Snapshot:
        calls.append(generation)
        if len(calls) > 1:
            raise RuntimeError("bug")
        return build_snapshot(path, generation, clock=CLOCK)

    state = TrustState(config_path, clock=CLOCK, builder=builder)
    assert state.reload("startup").ok
    result = state.reload("rpc")
    assert not result.ok
    assert result.reason is Reason.INTERNAL
    current = state.current()
    assert current is not None
    assert current.generation == 1


def test_base_config_without_file(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    state = TrustState(None, clock=CLOCK, base=DaemonConfig(trust_dir=trust, hosts_dirs=()))
    assert state.reload("startup").ok


def test_concurrent_reloads_are_serialised(setup: tuple[Path, Path]) -> None:
    config_path, _trust = setup
    active = 0
    overlap = False
    guard = threading.Lock()

    def builder(path: Path | None, generation: int) -> Snapshot:
        nonlocal active, overlap
        with guard:
            active += 1
            overlap = overlap or active > 1
        try:
            return build_snapshot(path, generation, clock=CLOCK)
        finally:
            with guard:
                active -= 1

    state = TrustState(config_path, clock=CLOCK, builder=builder)
    threads = [threading.Thread(target=state.reload, args=("rpc",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not overlap
    current = state.current()
    assert current is not None
    assert current.generation == 8
