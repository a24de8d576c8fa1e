"""Audit and metrics have one place (docs/architecture.md §3.9): a grep over the daemon's
sources that fails when a second scrubber, a second audit-record builder, a second sink or a
front end counting decisions by itself comes back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "pullgate"
GENERATED = ("v1/", "cri/runtime/", "nri/wire/")

# pattern -> the only modules (relative to the package) allowed to contain it
ONLY_IN: dict[str, frozenset[str]] = {
    r"def _?scrub\w*\(": frozenset({"decision/audit_log.py"}),
    r"\.observe_decision\(": frozenset({"decision/record.py"}),
    r"\.observe_denial\(": frozenset({"decision/record.py"}),
    r"\baudit_record\(": frozenset({"decision/audit.py", "decision/record.py"}),
    r"\bAuditLog\(": frozenset({"service/compose.py"}),
    r"\bDecisionRecorder\(": frozenset({"service/compose.py"}),
    r"[\"']pullgate\.audit[\"']": frozenset({"decision/audit_log.py"}),
    r"\bUrllib3Fetcher\(": frozenset({"service/engine.py"}),
}


def _sources() -> dict[str, str]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if not name.startswith(GENERATED):
            found[name] = path.read_text()
    return found


@pytest.mark.parametrize("pattern", sorted(ONLY_IN))
def test_pattern_lives_in_one_place(pattern: str) -> None:
    sources = _sources()
    where = {name for name, text in sources.items() if re.search(pattern, text)}
    assert where <= ONLY_IN[pattern], f"{pattern} also in {sorted(where - ONLY_IN[pattern])}"
    assert where, f"{pattern} found nowhere: the check is stale"
