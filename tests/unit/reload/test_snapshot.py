"""Snapshots: eager validation, hashes and digest, certs.d problems recorded, hosts lookup."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pullgate.common.clock import FixedClock
from pullgate.config import DaemonConfig, StatementSettings
from pullgate.errors import ConfigError, Reason
from pullgate.trust.snapshot import (
    HASH_CERTS_D,
    HASH_CONFIG,
    HASH_REGISTRY_CONFIG,
    HASH_TRUST_POLICY,
    HASH_TRUST_STORES,
    build_snapshot,
    combined_digest,
)
from pullgate.verification.truststore import StoreType
from tests.support.fake_registry import write_docker_config
from tests.support.pki import NOW as PKI_NOW
from tests.unit.reload.trustdirs import (
    STATEMENT,
    configmap_mount,
    configmap_swap,
    root_pem,
    trust_files,
    write_trust_dir,
)

NOW = PKI_NOW + timedelta(hours=12)
CLOCK = FixedClock(NOW)


def _config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'trust_dir = "trust"\nhosts_dir = "certs.d"\n{extra}')
    return path


def test_builds_from_file_with_relative_paths(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    config_path = _config_file(tmp_path)
    snapshot = build_snapshot(config_path, 7, clock=CLOCK)
    assert snapshot.generation == 7
    assert snapshot.loaded_at == NOW
    assert snapshot.config_path == config_path
    assert snapshot.config.trust_dir == tmp_path / "trust"
    assert snapshot.trust.oci_policy.statements[0].name == STATEMENT
    assert set(snapshot.hashes) == {
        HASH_CONFIG,
        HASH_TRUST_POLICY,
        HASH_TRUST_STORES,
        HASH_CERTS_D,
        HASH_REGISTRY_CONFIG,
    }
    assert snapshot.docker is None
    assert snapshot.digest == combined_digest(snapshot.hashes)
    assert snapshot.problems == ()


def test_stores_are_loaded_eagerly(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    snapshot = build_snapshot(_config_file(tmp_path), 1, clock=CLOCK)
    store_file = tmp_path / "trust" / "truststore" / "x509" / "ca" / "acme" / "root.pem"
    store_file.write_bytes(b"garbage")  # the snapshot keeps what it validated
    assert len(snapshot.trust.store.load(StoreType.CA, "acme")) == 1


def test_without_file_uses_base(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    base = DaemonConfig(trust_dir=trust, hosts_dirs=())
    snapshot = build_snapshot(None, 1, clock=CLOCK, base=base)
    assert snapshot.config is base
    other = build_snapshot(None, 1, clock=CLOCK, base=DaemonConfig(trust_dir=trust))
    assert other.hashes[HASH_CONFIG] != snapshot.hashes[HASH_CONFIG]


def test_same_content_same_digest(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    config_path = _config_file(tmp_path)
    first = build_snapshot(config_path, 1, clock=CLOCK)
    second = build_snapshot(config_path, 2, clock=CLOCK)
    assert first.digest == second.digest


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("ca", HASH_TRUST_STORES),
        ("policy", HASH_TRUST_POLICY),
        ("config", HASH_CONFIG),
        ("certs_d", HASH_CERTS_D),
    ],
)
def test_each_input_changes_its_hash_and_the_digest(tmp_path: Path, change: str, key: str) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    config_path = _config_file(tmp_path)
    before = build_snapshot(config_path, 1, clock=CLOCK)
    if change == "ca":
        (trust / "truststore" / "x509" / "ca" / "acme" / "root.pem").write_bytes(root_pem("new"))
    elif change == "policy":
        (trust / "trustpolicy.oci.json").write_text(
            (trust / "trustpolicy.oci.json").read_text() + "\n"
        )
    elif change == "config":
        config_path.write_text(config_path.read_text() + "reload_debounce = 0.3\n")
    else:
        (tmp_path / "certs.d" / "registry.example").mkdir(parents=True)
        (tmp_path / "certs.d" / "registry.example" / "ca.crt").write_bytes(root_pem("reg"))
    after = build_snapshot(config_path, 2, clock=CLOCK)
    assert after.hashes[key] != before.hashes[key]
    assert {k for k in after.hashes if after.hashes[k] != before.hashes[k]} == {key}
    assert after.digest != before.digest


def test_docker_config_json_is_loaded_and_hashed(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    config_path = _config_file(tmp_path, '[registry]\nconfig_json = "docker.json"\n')
    docker_json = tmp_path / "docker.json"
    write_docker_config(docker_json, {"r.example": {"username": "u", "password": "one"}})
    before = build_snapshot(config_path, 1, clock=CLOCK)
    assert before.docker is not None
    creds = before.docker.get("r.example")
    assert creds is not None
    assert creds.password == "one"
    write_docker_config(docker_json, {"r.example": {"username": "u", "password": "two"}})
    after = build_snapshot(config_path, 2, clock=CLOCK)
    assert {k for k in after.hashes if after.hashes[k] != before.hashes[k]} == {
        HASH_REGISTRY_CONFIG
    }
    assert after.digest != before.digest  # the decider's credentials are keyed by it
    assert after.docker is not None
    rotated = after.docker.get("r.example")
    assert rotated is not None
    assert rotated.password == "two"


@pytest.mark.parametrize("breakage", ["missing", "not-json", "malformed", "directory"])
def test_unusable_docker_config_json_is_a_config_error(tmp_path: Path, breakage: str) -> None:
    """Like a broken trust store: no snapshot (a reload keeps the last good one)."""
    write_trust_dir(tmp_path / "trust")
    config_path = _config_file(tmp_path, '[registry]\nconfig_json = "docker.json"\n')
    docker_json = tmp_path / "docker.json"
    if breakage == "not-json":
        docker_json.write_text("{")
    elif breakage == "malformed":
        docker_json.write_text('{"auths": []}')
    elif breakage == "directory":
        docker_json.mkdir()
    with pytest.raises(ConfigError) as info:
        build_snapshot(config_path, 1, clock=CLOCK)
    assert info.value.reason is Reason.CONFIG
    assert info.value.problems


@pytest.mark.parametrize(
    "breakage", ["policy-json", "policy-missing", "store-missing", "store-garbage", "no-dir"]
)
def test_invalid_trust_dir_is_a_config_error(tmp_path: Path, breakage: str) -> None:
    trust = write_trust_dir(tmp_path / "trust")
    if breakage == "policy-json":
        (trust / "trustpolicy.oci.json").write_bytes(b"{")
    elif breakage == "policy-missing":
        (trust / "trustpolicy.oci.json").unlink()
    elif breakage == "store-missing":
        (trust / "trustpolicy.oci.json").write_bytes(
            (trust / "trustpolicy.oci.json").read_bytes().replace(b"ca:acme", b"ca:other")
        )
    elif breakage == "store-garbage":
        (trust / "truststore" / "x509" / "ca" / "acme" / "root.pem").write_bytes(b"garbage")
    else:
        config_path = tmp_path / "config.toml"
        config_path.write_text('trust_dir = "absent"\n')
    with pytest.raises(ConfigError) as info:
        build_snapshot(
            tmp_path / "config.toml" if breakage == "no-dir" else _config_file(tmp_path),
            1,
            clock=CLOCK,
        )
    assert info.value.reason is Reason.CONFIG
    assert info.value.problems


def test_invalid_config_file_lists_every_problem(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    config_path = _config_file(tmp_path, "reload_debounce = 0\nbogus = 1\n")
    with pytest.raises(ConfigError) as info:
        build_snapshot(config_path, 1, clock=CLOCK)
    assert len(info.value.problems) == 2


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_snapshot(tmp_path / "absent.toml", 1, clock=CLOCK)
    assert info.value.reason is Reason.CONFIG


def test_certs_d_problem_is_recorded_not_fatal(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    host_dir = tmp_path / "certs.d" / "registry.example_5000_"
    host_dir.mkdir(parents=True)
    (host_dir / "hosts.toml").write_bytes(b"server = [")
    snapshot = build_snapshot(_config_file(tmp_path), 1, clock=CLOCK)
    assert len(snapshot.problems) == 1
    assert str(host_dir / "hosts.toml") in snapshot.problems[0]
    assert snapshot.certs_d_problems == snapshot.problems  # counted by the metric
    hosts = snapshot.hosts("registry.example:5000")
    assert hosts.directory == host_dir
    assert hosts.problems


def test_certs_d_root_that_is_a_file_is_recorded(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    (tmp_path / "certs.d").write_bytes(b"")
    snapshot = build_snapshot(_config_file(tmp_path), 1, clock=CLOCK)
    assert len(snapshot.problems) == 1


def test_unknown_statement_in_config_is_recorded(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    config_path = _config_file(tmp_path, '[statements.typo]\nmode = "audit"\n')
    snapshot = build_snapshot(config_path, 1, clock=CLOCK)
    assert len(snapshot.problems) == 1
    assert snapshot.config.statements["typo"] != StatementSettings()


def test_hosts_lookup_is_memoised_per_snapshot(tmp_path: Path) -> None:
    write_trust_dir(tmp_path / "trust")
    snapshot = build_snapshot(_config_file(tmp_path), 1, clock=CLOCK)
    first = snapshot.hosts("docker.io")
    assert snapshot.hosts("docker.io") is first
    assert first.endpoints


def test_configmap_mounted_trust_dir(tmp_path: Path) -> None:
    mount = tmp_path / "trust"
    configmap_mount(mount, "2026_11_23_01", trust_files(root_pem("one")))
    config_path = _config_file(tmp_path)
    first = build_snapshot(config_path, 1, clock=CLOCK)
    assert len(first.trust.store.load(StoreType.CA, "acme")) == 1
    configmap_swap(mount, "2026_11_23_02", trust_files(root_pem("two")))
    second = build_snapshot(config_path, 2, clock=CLOCK)
    assert second.hashes[HASH_TRUST_STORES] != first.hashes[HASH_TRUST_STORES]
    assert second.hashes[HASH_TRUST_POLICY] == first.hashes[HASH_TRUST_POLICY]
    assert second.trust.store.load(StoreType.CA, "acme") != first.trust.store.load(
        StoreType.CA, "acme"
    )


def test_configmap_trust_dir_refused_without_symlinks(tmp_path: Path) -> None:
    configmap_mount(tmp_path / "trust", "2026_11_23_01", trust_files(root_pem("one")))
    config_path = _config_file(tmp_path, "[verification]\nallow_symlinks = false\n")
    with pytest.raises(ConfigError):
        build_snapshot(config_path, 1, clock=CLOCK)
