"""ConfigWatcher on real files: CA replacement, editor renames, ConfigMap swaps, debounce, stop.

Asynchronous effects are awaited with bounded polls (:func:`_wait_for`); no test asserts on
elapsed time (the 1 s bound is measured in tests/integration/test_reload_latency.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pullgate.common.clock import FixedClock
from pullgate.trust.state import TrustState
from pullgate.trust.watcher import ConfigWatcher, WatchTarget, watch_targets
from tests.support.pki import NOW as PKI_NOW
from tests.unit.reload.trustdirs import (
    configmap_mount,
    configmap_swap,
    root_pem,
    trust_files,
    write_trust_dir,
)

# watchdog's inotify emitter warns (RuntimeWarning, "Callback with id ... already exists") when
# its recursive watch races with a fast nested mkdir -p and then overwrites the duplicate watch,
# which is harmless; under filterwarnings=error that warning would kill the emitter thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

CLOCK = FixedClock(PKI_NOW + timedelta(hours=12))
BOUND = 5.0  # seconds: generous upper bound for asynchronous effects (not an assertion)
DEBOUNCE = 0.1


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _generation(state: TrustState) -> int:
    snapshot = state.current()
    return snapshot.generation if snapshot is not None else 0


def _digest(state: TrustState) -> str:
    snapshot = state.current()
    assert snapshot is not None
    return snapshot.digest


def _settle(watcher: ConfigWatcher) -> None:
    """Wait until no reload is pending or running; fails if reloads never stop (a loop)."""
    deadline = time.monotonic() + BOUND
    before = -1
    while before != watcher.reloads:
        assert time.monotonic() < deadline, "reloads keep firing: the watcher reacts to itself"
        before = watcher.reloads
        time.sleep(6 * DEBOUNCE)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    write_trust_dir(tmp_path / "trust")
    path = tmp_path / "config.toml"
    path.write_text('trust_dir = "trust"\nhosts_dir = "certs.d"\n')
    return path


@pytest.fixture
def state(config_path: Path) -> TrustState:
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    return state


@pytest.fixture
def watcher(state: TrustState) -> Iterator[ConfigWatcher]:
    with ConfigWatcher(state, debounce=DEBOUNCE) as running:
        yield running


def test_watch_targets_are_directories(config_path: Path, state: TrustState) -> None:
    snapshot = state.current()
    assert snapshot is not None
    targets = watch_targets(config_path, snapshot.config)
    assert targets == (
        WatchTarget(path=config_path.parent, recursive=False),
        WatchTarget(path=config_path.parent / "trust", recursive=True),
        WatchTarget(path=config_path.parent / "certs.d", recursive=True),
    )


def test_replacing_the_ca_reloads_with_new_digest(
    config_path: Path, state: TrustState, watcher: ConfigWatcher
) -> None:
    before = _digest(state)
    store = config_path.parent / "trust" / "truststore" / "x509" / "ca" / "acme"
    (store / "root.pem").write_bytes(root_pem("rotated"))
    assert _wait_for(lambda: _digest(state) != before)
    assert _generation(state) >= 2
    assert not state.status().degraded


def test_editor_style_write_temp_then_rename(
    config_path: Path, state: TrustState, watcher: ConfigWatcher
) -> None:
    before = _digest(state)
    store = config_path.parent / "trust" / "truststore" / "x509" / "ca" / "acme"
    temp = store / ".root.pem.swp"
    temp.write_bytes(root_pem("edited"))
    os.replace(temp, store / "root.pem")
    assert _wait_for(lambda: _digest(state) != before)


def test_config_file_rename_on_save_is_seen(
    config_path: Path, state: TrustState, watcher: ConfigWatcher
) -> None:
    temp = config_path.with_name("config.toml~")
    temp.write_text(config_path.read_text() + "reload_debounce = 0.1\n")
    os.replace(temp, config_path)
    assert _wait_for(
        lambda: (snap := state.current()) is not None and snap.config.reload_debounce == 0.1
    )


def test_invalid_write_keeps_good_snapshot_and_degrades(
    config_path: Path, state: TrustState, watcher: ConfigWatcher
) -> None:
    good = state.current()
    (config_path.parent / "trust" / "trustpolicy.oci.json").write_bytes(b"{")
    assert _wait_for(lambda: state.status().degraded)
    assert state.current() is good


def test_configmap_data_swap(tmp_path: Path) -> None:
    mount = tmp_path / "trust"
    configmap_mount(mount, "2026_11_23_01", trust_files(root_pem("one")))
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "trust"\nhosts_dir = ""\n')
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    before = _digest(state)
    with ConfigWatcher(state, debounce=DEBOUNCE):
        configmap_swap(mount, "2026_11_23_02", trust_files(root_pem("two")))
        assert _wait_for(lambda: _digest(state) != before)
    assert not state.status().degraded


def test_burst_of_writes_is_debounced(
    config_path: Path, state: TrustState, watcher: ConfigWatcher
) -> None:
    _settle(watcher)
    start_reloads = watcher.reloads
    start_generation = _generation(state)
    store_file = config_path.parent / "trust" / "truststore" / "x509" / "ca" / "acme" / "root.pem"
    pems = [root_pem(f"burst {i % 2}") for i in range(2)]
    for i in range(20):
        store_file.write_bytes(pems[i % 2])
    assert _wait_for(lambda: watcher.reloads > start_reloads)
    _settle(watcher)
    reloads = watcher.reloads - start_reloads
    assert 1 <= reloads <= 3
    assert _generation(state) - start_generation == reloads


def test_missing_directory_is_watched_through_its_parent(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "trust"\nhosts_dir = "later/certs.d"\n')
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    with ConfigWatcher(state, debounce=DEBOUNCE) as watcher:
        assert tmp_path / "later" / "certs.d" not in watcher.watched
        before = _digest(state)
        host_dir = tmp_path / "later" / "certs.d" / "registry.example"
        host_dir.mkdir(parents=True)
        assert _wait_for(lambda: tmp_path / "later" / "certs.d" in watcher.watched)
        (host_dir / "ca.crt").write_bytes(root_pem("registry"))
        assert _wait_for(lambda: _digest(state) != before)


def test_reload_that_moves_trust_dir_moves_the_watch(
    config_path: Path, state: TrustState, watcher: ConfigWatcher
) -> None:
    other = write_trust_dir(config_path.parent / "other", ca=root_pem("other"))
    config_path.write_text('trust_dir = "other"\nhosts_dir = "certs.d"\n')
    assert _wait_for(lambda: other in watcher.watched)
    before = _digest(state)
    (other / "truststore" / "x509" / "ca" / "acme" / "root.pem").write_bytes(root_pem("o2"))
    assert _wait_for(lambda: _digest(state) != before)


def test_change_before_start_is_caught_up(config_path: Path, state: TrustState) -> None:
    """A CA rotated between the start-up load and start() raised no event: start() catches up."""
    before = _digest(state)
    store = config_path.parent / "trust" / "truststore" / "x509" / "ca" / "acme"
    (store / "root.pem").write_bytes(root_pem("rotated before the watches"))
    with ConfigWatcher(state, debounce=DEBOUNCE):
        assert _wait_for(lambda: _digest(state) != before), "the rotated CA was never loaded"
    assert _generation(state) == 2
    assert not state.status().degraded


def test_fix_before_start_is_caught_up(tmp_path: Path) -> None:
    """No valid configuration at start-up, fixed before start(): start() loads it."""
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "trust"\nhosts_dir = "certs.d"\n')
    state = TrustState(config_path, clock=CLOCK)
    assert not state.reload("startup").ok
    write_trust_dir(tmp_path / "trust")
    with ConfigWatcher(state, debounce=DEBOUNCE):
        assert _wait_for(lambda: state.current() is not None), "the fix was never loaded"


def test_the_configured_trust_dir_is_watched_before_any_configuration_loaded(
    tmp_path: Path,
) -> None:
    """No valid configuration yet (the configured trust_dir does not exist): creating it is
    seen, although only the config file names it (not the defaults)."""
    config_path = tmp_path / "config.toml"
    config_path.write_text('trust_dir = "site/trust"\nhosts_dir = "certs.d"\n')
    state = TrustState(config_path, clock=CLOCK)
    assert not state.reload("startup").ok
    with ConfigWatcher(state, debounce=DEBOUNCE) as watcher:
        _settle(watcher)
        assert state.current() is None
        write_trust_dir(tmp_path / "site" / "trust")
        assert _wait_for(lambda: state.current() is not None), "the new trust dir was not seen"


def test_no_catch_up_reload_when_nothing_changed(state: TrustState) -> None:
    with ConfigWatcher(state, debounce=DEBOUNCE) as watcher:
        _settle(watcher)
        assert watcher.reloads == 0
    assert _generation(state) == 1


def test_docker_config_json_change_reloads(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    docker_json = secrets / "config.json"
    docker_json.write_text('{"auths": {}}')
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        'trust_dir = "trust"\nhosts_dir = ""\n[registry]\nconfig_json = "secrets/config.json"\n'
    )
    state = TrustState(config_path, clock=CLOCK)
    assert state.reload("startup").ok
    with ConfigWatcher(state, debounce=DEBOUNCE) as watcher:
        assert secrets in watcher.watched
        assert watcher.relevant([str(docker_json)])
        assert not watcher.relevant([str(secrets / "notes.txt")])
        before = _digest(state)
        docker_json.write_text('{"auths": {"r.example": {"username": "u", "password": "p"}}}')
        assert _wait_for(lambda: _digest(state) != before), "the rotated config.json was ignored"


def test_reload_reads_do_not_trigger_reloads(state: TrustState, watcher: ConfigWatcher) -> None:
    _settle(watcher)
    start = watcher.reloads
    state.reload("rpc")  # reads every file under the watched directories
    state.reload("rpc")
    time.sleep(6 * DEBOUNCE)
    assert watcher.reloads == start


def test_stop_leaves_no_threads(state: TrustState) -> None:
    before = set(threading.enumerate())
    watcher = ConfigWatcher(state, debounce=DEBOUNCE)
    watcher.start()
    assert set(threading.enumerate()) - before
    watcher.stop()
    watcher.stop()  # idempotent
    assert set(threading.enumerate()) - before == set()


def test_fixed_paths(config_path: Path, state: TrustState) -> None:
    trust = config_path.parent / "trust"
    with ConfigWatcher(state, [WatchTarget(path=trust, recursive=True)], debounce=DEBOUNCE) as w:
        assert w.watched == (trust,)
        before = _digest(state)
        (trust / "truststore" / "x509" / "ca" / "acme" / "root.pem").write_bytes(root_pem("f"))
        assert _wait_for(lambda: _digest(state) != before)


def test_unrelated_files_next_to_the_config_do_not_reload(
    config_path: Path, state: TrustState, watcher: ConfigWatcher
) -> None:
    _settle(watcher)
    reloads = watcher.reloads
    log = config_path.parent / "daemon.log"
    for i in range(20):  # e.g. a log an operator keeps next to config.toml
        with log.open("a") as fh:
            fh.write(f"line {i}\n")
        (config_path.parent / "config.toml.bak").write_text(f"backup {i}\n")
    _settle(watcher)
    assert watcher.reloads == reloads
    # ...while the config file itself still counts.
    config_path.write_text(config_path.read_text() + "# touched\n")
    assert _wait_for(lambda: watcher.reloads > reloads)


def test_relevance_rules(config_path: Path, state: TrustState, watcher: ConfigWatcher) -> None:
    here = config_path.parent
    assert watcher.relevant([str(config_path)])
    assert watcher.relevant([str(here / "..data")])  # ConfigMap swap
    assert watcher.relevant([str(here / "trust" / "truststore" / "x509" / "ca" / "acme" / "x")])
    assert watcher.relevant([str(here / "certs.d" / "reg.example" / "hosts.toml")])
    assert not watcher.relevant([str(here / "daemon.log")])
    assert watcher.relevant([str(here / "tmp123"), str(config_path)])  # rename onto the file
