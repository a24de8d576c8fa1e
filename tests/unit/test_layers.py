"""The import-linter contracts of ``pyproject.toml`` (package layers, no import cycle) hold, so a
``pytest`` run catches an import that climbs a layer as ``make lint`` does
(docs/architecture.md §2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"  # the dev extra installs it
    assert lint.exists(), "import-linter is missing: pip install -c constraints.txt -e '.[dev]'"
    done = subprocess.run(
        [str(lint), "--no-cache", "--no-logo"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "daemon")},  # this checkout's code
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
