"""``pullgate doctor`` as a user runs it: the installed console script, its options, and a
``version = 4`` config written by the real containerd 2.4 (``containerd config migrate``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pullgate.doctor import SHIM_NAME, Code
from tests.support.runtimes import SHARED_RUNTIMES, runtime_binaries

CONSOLE_SCRIPT = Path(sys.executable).parent / "pullgate"

V3_SKELETON = """version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '{certs_d}'
[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = '{bin_dir}'
"""


def _doctor(*argv: str) -> subprocess.CompletedProcess[str]:
    assert CONSOLE_SCRIPT.is_file(), f"console script missing: {CONSOLE_SCRIPT}"
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "doctor", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A node directory: certs.d, a bin_dir holding the shim, a kubelet config using the proxy."""
    (tmp_path / "certs.d").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / SHIM_NAME
    shim.write_text("#!/bin/sh\nexit 0\n")
    shim.chmod(0o755)
    (tmp_path / "kubelet.yaml").write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        f"imageServiceEndpoint: unix://{tmp_path / 'cri.sock'}\n"
    )
    return tmp_path


def _node_args(node: Path, config: Path) -> list[str]:
    return [
        "--containerd-config",
        str(config),
        "--kubelet-config",
        str(node / "kubelet.yaml"),
        "--kubelet-flags",
        str(node / "kubelet.env"),
        "--cri-socket",
        str(node / "cri.sock"),
        "--no-socket-check",
    ]


@pytest.fixture(scope="module")
def containerd24() -> Path:
    if not (SHARED_RUNTIMES / "unpack").is_file():
        pytest.skip(f"{SHARED_RUNTIMES} is absent (containerd 2.4 comes from there)")
    return runtime_binaries() / "containerd"


def test_help_lists_the_options() -> None:
    result = _doctor("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--containerd-config", "--output", "--containerd-version", "--no-socket-check"):
        assert option in result.stdout


def test_bad_option_is_a_usage_error() -> None:
    assert _doctor("--no-such-option").returncode == 2


def test_options_and_json_output(node: Path) -> None:
    config = node / "config.toml"
    config.write_text(V3_SKELETON.format(certs_d=node / "certs.d", bin_dir=node / "bin"))
    args = _node_args(node, config)
    result = _doctor(*args, "--containerd-version", "2.3", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    config.write_text(config.read_text() + "  max_verifiers = 0\n")
    result = _doctor(*args, "--containerd-version", "2.3", "-o", "json")
    codes = {doc["code"] for doc in json.loads(result.stdout)}
    assert result.returncode == 1
    assert Code.CONTAINERD_CONFIG_INVALID not in codes
    assert codes


def test_version_4_config_from_containerd_config_migrate(node: Path, containerd24: Path) -> None:
    v3 = node / "v3.toml"
    v3.write_text(V3_SKELETON.format(certs_d=node / "certs.d", bin_dir=node / "bin"))
    migrated = subprocess.run(
        [str(containerd24), "--config", str(v3), "config", "migrate"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert migrated.startswith("version = 4")
    config = node / "config.toml"
    config.write_text(migrated)
    args = _node_args(node, config)
    result = _doctor(*args, "--containerd-version", "2.4", "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []
    # The v4 file is read, not skipped: a setting in it that disables verifiers is reported.
    local_pull = migrated.replace("use_local_image_pull = false", "use_local_image_pull = true")
    config.write_text(local_pull)
    result = _doctor(*args, "--containerd-version", "2.4", "--output", "json")
    codes = {doc["code"] for doc in json.loads(result.stdout)}
    assert result.returncode == 1
    assert Code.LOCAL_IMAGE_PULL in codes


def test_gate_configured_but_bypassed_by_the_kubelet(node: Path) -> None:
    """``[runtime]`` in pullgate's config (``--config``) and a kubelet on containerd's socket:
    an error; the same kubelet on the gate, in any spelling the kubelet accepts, is not."""
    config = node / "config.toml"
    config.write_text(V3_SKELETON.format(certs_d=node / "certs.d", bin_dir=node / "bin"))
    gate = node / "runtime.sock"
    own = node / "pullgate.toml"
    own.write_text(
        f'[cri]\nsocket = "{node / "cri.sock"}"\nupstream = "unix:///run/c.sock"\n'
        f'[runtime]\nsocket = "{gate}"\nupstream = "unix:///run/c.sock"\n'
    )
    args = [*_node_args(node, config), "--config", str(own), "--containerd-version", "2.3"]
    kubelet = node / "kubelet.yaml"
    base = kubelet.read_text()
    kubelet.write_text(base + "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n")
    result = _doctor(*args, "--output", "json")
    codes = {doc["code"] for doc in json.loads(result.stdout)}
    assert result.returncode == 1, result.stderr
    assert Code.RUNTIME_GATE_BYPASSED in codes
    for spelling in (f"unix://{gate}", f"unix:{gate}", str(gate)):
        kubelet.write_text(base + f"containerRuntimeEndpoint: {spelling}\n")
        result = _doctor(*args, "--output", "json")
        codes = {doc["code"] for doc in json.loads(result.stdout)}
        assert Code.RUNTIME_GATE_BYPASSED not in codes, result.stdout + result.stderr
        assert Code.PULLGATE_CONFIG_INVALID not in codes


def test_gate_upstream_loop_and_down(node: Path) -> None:
    """``[runtime] upstream`` naming the gate itself, or a socket nothing listens at."""
    config = node / "config.toml"
    config.write_text(V3_SKELETON.format(certs_d=node / "certs.d", bin_dir=node / "bin"))
    gate = node / "runtime.sock"
    own = node / "pullgate.toml"
    args = [*_node_args(node, config), "--config", str(own), "--containerd-version", "2.3"]
    for upstream, code, extra in (
        (f"unix://{gate}", Code.RUNTIME_UPSTREAM_LOOP, ["--no-socket-check"]),
        (f"unix://{node / 'containerd.sock'}", Code.RUNTIME_UPSTREAM_DOWN, []),
    ):
        own.write_text(f'[runtime]\nsocket = "{gate}"\nupstream = "{upstream}"\n')
        argv = [a for a in args if a != "--no-socket-check"] + extra
        result = _doctor(*argv, "--output", "json")
        codes = {doc["code"] for doc in json.loads(result.stdout)}
        assert result.returncode == 1, result.stderr
        assert code in codes
