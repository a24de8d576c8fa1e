"""``pullgate policy check`` from the console script: scopes no reference can select are
warnings (exit 0) that name the spelling to write instead."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.pki import Pki, write_store

CONSOLE_SCRIPT = Path(sys.executable).parent / "pullgate"
DEAD = {
    "registry.example.com:443/app": "registry.example.com/app",
    "registry.example.com:0443/app2": "registry.example.com/app2",
    "REGISTRY.example.com/app3": "registry.example.com/app3",
    "localhost:05000/x": "localhost:5000/x",
    "index.docker.io/library/nginx": "docker.io/library/nginx",
    "docker.io/busybox": "docker.io/library/busybox",
}
LIVE = ["registry.example.com/ok", "localhost:5000/y", "docker.io/library/redis"]


def _trust_dir(tmp: Path, scopes: list[str]) -> Path:
    trust = tmp / "trust"
    write_store(trust, "ca", "main", [Pki(name="policy check").root().cert])
    statement = {
        "name": "s",
        "registryScopes": scopes,
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:main"],
        "trustedIdentities": ["*"],
    }
    doc = {"version": "1.0", "trustPolicies": [statement]}
    (trust / "trustpolicy.oci.json").write_text(json.dumps(doc))
    return trust


def _check(trust: Path) -> subprocess.CompletedProcess[str]:
    assert CONSOLE_SCRIPT.is_file(), f"console script missing: {CONSOLE_SCRIPT}"
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "policy", "check", "--trust-dir", str(trust)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dead_scopes_are_warnings_naming_the_fix(tmp_path: Path) -> None:
    result = _check(_trust_dir(tmp_path, [*DEAD, *LIVE]))
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(DEAD)
    for dead, fixed in DEAD.items():
        [line] = [w for w in warnings if f'"{dead}"' in w]
        assert f'write "{fixed}"' in line
    assert not any(f'"{live}"' in w for w in warnings for live in LIVE)


def test_no_warning_for_selectable_scopes(tmp_path: Path) -> None:
    result = _check(_trust_dir(tmp_path, LIVE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert result.stdout.rstrip().endswith("are valid")
