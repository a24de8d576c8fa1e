"""Every hand-written module under daemon/ stays under 400 lines (generated protobuf code
excepted): a file past that is split along its responsibilities (docs/architecture.md §3.8)."""

from __future__ import annotations

import re
from pathlib import Path

MAX_LINES = 400
DAEMON = Path(__file__).resolve().parents[2] / "daemon"
_GENERATED = re.compile(r"_pb2(_grpc)?\.pyi?$")


def test_no_daemon_module_over_the_line_limit() -> None:
    files = [p for p in DAEMON.rglob("*.py") if not _GENERATED.search(p.name)]
    assert len(files) > 100  # the walk found the package
    too_long = {
        str(p.relative_to(DAEMON)): n
        for p in files
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}
