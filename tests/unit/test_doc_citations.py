"""Code, tests, benches, fuzz targets, scripts, packaging, docs and the README cite only what a
clone contains.

Comments and docstrings cite ``docs/…`` or upstream specifications, never documents outside the
repository nor project issue numbers (docs/architecture.md §3.8). The patterns are assembled at
run time so that this file does not match them itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
_TREES = ("daemon", "bench", "tests", "fuzz", "protos", "scripts", "packaging", "systemd", "docs")
_SUFFIXES = frozenset(
    {".py", ".pyi", ".proto", ".md", ".toml", ".txt", ".sh", ".yaml", ".service", ".conf"}
)

_OUTSIDE_DOCS = ("STYLE", "ARCHITECTURE", "notary-verification", "containerd-integration")
_OUTSIDE_DOCS_LOWER = ("container-start",)


def _forbidden() -> tuple[re.Pattern[str], ...]:
    md = r"\." + "md"
    upper = "|".join(re.escape(name) for name in _OUTSIDE_DOCS)
    lower = "|".join(re.escape(name) for name in _OUTSIDE_DOCS_LOWER)
    return (
        re.compile(r"(?<![\w/-])(?:" + upper + ")" + md),
        re.compile(r"(?<![\w/])(?:" + lower + ")" + md),
        re.compile("shared" + "/" + "reference"),
        re.compile(r"\b" + "issues?" + r" [0-9]", re.IGNORECASE),
    )


def _files() -> list[Path]:
    found: list[Path] = [_REPO / "README.md"]
    for tree in _TREES:
        root = _REPO / tree
        if not root.is_dir():
            continue
        found.extend(
            p
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in _SUFFIXES and "__pycache__" not in p.parts
        )
    return found


def _hits(text: str, patterns: tuple[re.Pattern[str], ...]) -> list[str]:
    return [m.group(0) for pattern in patterns for m in pattern.finditer(text)]


def test_sources_cite_nothing_outside_the_repository() -> None:
    files = _files()
    assert files, "no source files found: the test would pass vacuously"
    patterns = _forbidden()
    offenders = []
    for path in files:
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            hits = _hits(line, patterns)
            if hits:
                offenders.append(f"{path.relative_to(_REPO)}:{lineno}: {', '.join(hits)}")
    assert not offenders, "cite docs/… instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "line",
    [
        "see " + "STYLE" + ".md §2",
        "(" + "ARCHITECTURE" + '.md "decision")',
        "notary-verification" + ".md §8.5",
        "``../shared/" + "reference/" + "containerd-integration" + ".md`` §1",
        "container-start" + ".md",
        "(issue" + " 5 item 6)",
        "Issue" + " 5 acceptance",
    ],
)
def test_the_check_catches_each_kind(line: str) -> None:
    assert _hits(line, _forbidden())


@pytest.mark.parametrize(
    "line",
    [
        "docs/architecture.md §3.1",
        "docs/notation.md §8.5",
        "docs/containerd.md §7.4",
        "upstream nri #316",
        "tissue 5",
    ],
)
def test_the_check_lets_docs_citations_through(line: str) -> None:
    assert not _hits(line, _forbidden())
