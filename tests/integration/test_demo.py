"""``make demo``'s script runs to completion and shows one allow and one deny, with reasons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.docker_registry import registry_available
from tests.support.runtimes import runtimes_unavailable

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed"),
]


def test_demo_shows_allow_and_deny() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "daemon")},
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # The CLI's own lines: one ALLOW with VERIFIED and one JSON deny with NO_SIGNATURE.
    assert any(line.startswith("ALLOW ") and "VERIFIED" in line for line in out.splitlines())
    assert '"reason": "NO_SIGNATURE"' in out
    # The gRPC API's answers for both images, and the metrics families.
    assert "signed   ALLOW VERIFIED" in out
    assert "unsigned DENY  NO_SIGNATURE" in out
    assert "pullgate_decisions_total" in out
    if runtimes_unavailable("2.4") is None or runtimes_unavailable("1.6") is None:
        # The node's view: refusals as the kubelet shows them, from a real containerd.
        assert "ErrImagePull: SignatureValidationFailed: NO_SIGNATURE: " in out
        assert "CreateContainerError: SignatureValidationFailed: NO_SIGNATURE: " in out
        assert "hello from a verified image" in out
