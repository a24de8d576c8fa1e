"""The reason table: one row per reason, and no error class or front end that disagrees with it."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import grpc
import pytest

import pullgate
from pullgate import shim
from pullgate.cri.denial import Denial, DenialKind
from pullgate.errors import (
    CRI_DEFINITIVE_PREFIX,
    CRI_INCONCLUSIVE_PREFIX,
    REASONS,
    PullgateError,
    Reason,
    ReasonKind,
    VerificationFailed,
    VerificationInconclusive,
)
from pullgate.service.status import REASON_CODES
from pullgate.shim.vocabulary import ShimReason

DAEMON = Path(pullgate.__file__).parent
README = DAEMON.parents[1] / "README.md"


def test_every_reason_has_a_row() -> None:
    assert set(REASONS) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason))
def test_row_is_complete_and_coherent(reason: Reason) -> None:
    row = REASONS[reason]
    assert row.fix.strip()
    code = grpc.StatusCode[row.grpc_code]
    assert (code is grpc.StatusCode.OK) == (row.kind is ReasonKind.ALLOW)
    assert REASON_CODES[reason] is code
    expected = CRI_INCONCLUSIVE_PREFIX if row.inconclusive else CRI_DEFINITIVE_PREFIX
    assert row.cri_prefix == expected
    assert Denial(reason=reason, message="m").kind is DenialKind(expected)


@pytest.mark.parametrize(
    ("cls", "reason"),
    [(VerificationInconclusive, r) for r in Reason if not REASONS[r].inconclusive]
    + [(VerificationFailed, r) for r in Reason if REASONS[r].inconclusive],
)
def test_an_error_class_that_disagrees_with_its_reason_cannot_be_built(
    cls: type[PullgateError], reason: Reason
) -> None:
    with pytest.raises(TypeError):
        cls(reason, "detail")


@pytest.mark.parametrize("reason", list(Reason))
def test_an_error_is_inconclusive_exactly_when_its_row_says(reason: Reason) -> None:
    assert PullgateError(reason, "d").inconclusive is REASONS[reason].inconclusive


# ------------------------------------------------------------------------ construction sites


def _error_classes() -> dict[str, type[PullgateError]]:
    for info in pkgutil.walk_packages([str(DAEMON)], "pullgate."):
        if ".v1." not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: dict[str, type[PullgateError]] = {}
    todo: list[type[PullgateError]] = [PullgateError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _literal_reason(node: ast.expr) -> Reason | None:
    if isinstance(node, ast.Attribute) and node.attr in Reason.__members__:
        return Reason[node.attr]
    return None


def _class_sites() -> list[tuple[str, str, Reason]]:
    """(site, class name, reason) for every ``Cls(Reason.X, …)`` / ``super().__init__(Reason.X``."""
    sites: list[tuple[str, str, Reason]] = []
    for path in sorted(DAEMON.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for cls_node in [None, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]:
            body = tree if cls_node is None else cls_node
            for node in ast.walk(body):
                if not isinstance(node, ast.Call):
                    continue
                values = [*node.args, *(k.value for k in node.keywords)]
                reason = next((r for v in values if (r := _literal_reason(v))), None)
                if reason is None:
                    continue
                func = node.func
                where = f"{path.relative_to(DAEMON)}:{node.lineno}"
                if isinstance(func, ast.Name):
                    sites.append((where, func.id, reason))
                elif (
                    cls_node is not None
                    and isinstance(func, ast.Attribute)
                    and func.attr == "__init__"
                ):
                    sites.append((where, cls_node.name, reason))
        sites += _default_sites(tree, path)
    return sites


def _default_sites(tree: ast.Module, path: Path) -> list[tuple[str, str, Reason]]:
    """``class C(...): def __init__(self, ..., reason: Reason = Reason.X)`` defaults."""
    sites: list[tuple[str, str, Reason]] = []
    for cls_node in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for fn in cls_node.body:
            if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
                defaults = [*fn.args.defaults, *(d for d in fn.args.kw_defaults if d)]
                for default in defaults:
                    reason = _literal_reason(default)
                    if reason is not None:
                        where = f"{path.relative_to(DAEMON)}:{default.lineno}"
                        sites.append((where, cls_node.name, reason))
    return sites


def test_no_source_builds_an_error_whose_class_disagrees_with_its_reason() -> None:
    classes = _error_classes()
    sites = _class_sites()
    assert len(sites) > 50  # the scan sees the daemon's error constructions
    bad = []
    for where, name, reason in sites:
        cls = classes.get(name)
        if cls is None:
            continue
        inconclusive = REASONS[reason].inconclusive
        if issubclass(cls, VerificationInconclusive) and not inconclusive:
            bad.append((where, name, reason))
        if issubclass(cls, VerificationFailed) and inconclusive:
            bad.append((where, name, reason))
    assert bad == []


def test_shim_reasons_follow_the_table() -> None:
    """DaemonUnavailable (exit UNAVAILABLE) carries inconclusive reasons, other ShimErrors not."""
    names = {n for n in vars(ShimReason) if not n.startswith("_")}
    assert all(Reason(getattr(ShimReason, n)) is Reason[n] for n in names)
    pattern = re.compile(r"\b(DaemonUnavailable|ShimError)\(\s*ShimReason\.(\w+)")
    seen = set()
    for path in Path(shim.__file__).parent.glob("*.py"):
        for cls, name in pattern.findall(path.read_text()):
            seen.add(cls)
            assert REASONS[Reason[name]].inconclusive is (cls == "DaemonUnavailable"), (path, name)
    assert seen == {"DaemonUnavailable", "ShimError"}


def test_readme_reason_table_lists_every_reason_with_its_class() -> None:
    text = README.read_text()
    section = text.split("\n## Reasons\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\w+) \|", section, re.MULTILINE)
    assert {name for name, _ in rows} == {r.value for r in Reason}
    assert len(rows) == len(Reason)
    for name, kind in rows:
        assert REASONS[Reason(name)].kind.value == kind, name
