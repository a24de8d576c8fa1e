"""The daemon imports an optional front end's code only when its configuration has that front
end, and then while it starts (docs/decisions.md, "The daemon: configuration, reload, memory"):
a daemon without ``[runtime]`` does not carry the RuntimeService gate and its HTTP/2 transport
(``hpack``) in its memory, and one with ``[runtime]`` meets an import error at start, not at its
first request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from pullgate.config import DaemonConfig, RuntimeConfig
from pullgate.service import compose
from pullgate.service.servicer import ServerParts

ROOT = Path(__file__).resolve().parents[3]
RUNTIME_GATE = ("hpack", "pullgate.cri.splice", "pullgate.cri.runtime_proxy")


def _loaded_by(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "daemon")},  # this checkout's code
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert isinstance(loaded, list)
    return [str(name) for name in loaded]


def _within(names: list[str], packages: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(n == p or n.startswith(f"{p}.") for p in packages)]


def test_the_daemon_without_runtime_does_not_import_the_runtime_gate() -> None:
    loaded = _loaded_by("import pullgate.service.app")
    assert "pullgate.service.compose" in loaded  # the import set was really taken
    assert _within(loaded, RUNTIME_GATE) == []


def test_the_runtime_gate_is_imported_when_the_daemon_builds_it() -> None:
    assert set(_within(_loaded_by("import pullgate.cri.runtime_proxy"), RUNTIME_GATE)) >= {
        "hpack",
        "pullgate.cri.splice.server",
    }


def test_a_broken_runtime_gate_import_fails_the_build_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # serve() builds every configured front end before it reports ready
    monkeypatch.setitem(sys.modules, "pullgate.cri.runtime_proxy", None)
    parts = cast(ServerParts, SimpleNamespace(gate=object()))
    with pytest.raises(ImportError):
        compose.runtime_gate(DaemonConfig(runtime=RuntimeConfig()), parts)
    assert compose.runtime_gate(DaemonConfig(), parts) is None  # no [runtime]: no import
