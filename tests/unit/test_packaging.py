"""The Debian package's shipped samples: packaging/config.toml and packaging/trust/."""

from __future__ import annotations

import shutil
from pathlib import Path

from pullgate.config import load_config
from pullgate.verification.policy import check_trust_dir

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def test_sample_config_is_valid_and_uses_the_unit_directories() -> None:
    config = load_config(PACKAGING / "config.toml")
    assert config.trust_dir == Path("/etc/pullgate/trust")
    assert config.api.socket.parent == Path("/run/pullgate")  # RuntimeDirectory=pullgate
    assert config.api.socket_mode == 0o660
    assert config.verification.crl_cache_dir.parent == Path("/var/cache/pullgate")
    assert config.cri is None  # the CRI proxy is opt-in: it needs kubelet/containerd wiring
    assert config.metrics.address.startswith("127.0.0.1:")


def test_sample_trust_policy_passes_policy_check(tmp_path: Path) -> None:
    shutil.copytree(PACKAGING / "trust", tmp_path / "trust")
    assert check_trust_dir(tmp_path / "trust") == []
