"""Only the composition root builds collaborators (docs/architecture.md §3.4): a walk over the
syntax of every module of ``daemon/pullgate`` outside ``service/`` (the root) and ``cli/`` (the
command line's one-shot wiring) that fails on a constructor or function making a default of
its own for something it could be given:

* ``param or SomeClass(...)``;
* ``if param is None: param = SomeClass(...)`` (or ``self.x = SomeClass(...)``);
* ``param if param is not None else SomeClass(...)`` (and the mirrored form);
* ``def f(x=SomeClass(...))`` and ``field(default_factory=SomeClass)`` (or a lambda making one).

``SomeClass`` is any capitalised callable; ``param`` is a parameter of the enclosing function
(a local found empty, like a cache miss, is not a default). Configuration models (``config/``)
are value objects with documented defaults and are not walked; the few value objects elsewhere
are on :data:`VALUE_OBJECTS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "pullgate"
NOT_WALKED = ("service/", "cli/", "config/", "v1/", "cri/runtime/", "nri/wire/")

# Immutable values, not collaborators: an empty read-only mapping and the daemon configuration
# (its defaults are the documented ones, docs/architecture.md §4).
VALUE_OBJECTS = frozenset({"MappingProxyType", "DaemonConfig"})


def _class_called(node: ast.expr | None) -> str | None:
    """The name of the capitalised callable ``node`` calls (or a lambda returns a call of)."""
    if isinstance(node, ast.Lambda):
        node = node.body
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if name is None or not name[:1].isupper() or name in VALUE_OBJECTS:
        return None
    return name


def _none_test(test: ast.expr, params: set[str]) -> tuple[str, bool] | None:
    """(parameter, is-None) when ``test`` is ``param is None`` / ``param is not None``."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    left, right = test.left, test.comparators[0]
    if not (isinstance(right, ast.Constant) and right.value is None):
        return None
    if not (isinstance(left, ast.Name) and left.id in params):
        return None
    if isinstance(test.ops[0], ast.Is):
        return left.id, True
    if isinstance(test.ops[0], ast.IsNot):
        return left.id, False
    return None


def _in_function(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[int, str]]:
    args = func.args
    params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)} - {"self"}
    found: list[tuple[int, str]] = []
    for default in (*args.defaults, *args.kw_defaults):
        name = _class_called(default)
        if name is not None:
            found.append((func.lineno, f"default argument {name}(...)"))
    for node in ast.walk(func):
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            first = node.values[0]
            if isinstance(first, ast.Name) and first.id in params:
                for value in node.values[1:]:
                    name = _class_called(value)
                    if name is not None:
                        found.append((node.lineno, f"{first.id} or {name}(...)"))
        elif isinstance(node, ast.IfExp):
            tested = _none_test(node.test, params)
            if tested is not None:
                fallback = node.body if tested[1] else node.orelse
                name = _class_called(fallback)
                if name is not None:
                    found.append((node.lineno, f"{tested[0]} if ... else {name}(...)"))
        elif isinstance(node, ast.If):
            tested = _none_test(node.test, params)
            if tested is not None and tested[1]:
                for statement in node.body:
                    if isinstance(statement, ast.Assign | ast.AnnAssign):
                        name = _class_called(statement.value)
                        if name is not None:
                            found.append((node.lineno, f"if {tested[0]} is None: {name}(...)"))
    return found


def _default_factories(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "field":
            for keyword in node.keywords:
                if keyword.arg != "default_factory":
                    continue
                value = keyword.value
                name = value.id if isinstance(value, ast.Name) else _class_called(value)
                if name is not None and name[:1].isupper() and name not in VALUE_OBJECTS:
                    found.append((node.lineno, f"field(default_factory={name})"))
    return found


def defaults_built(source: str) -> list[tuple[int, str]]:
    """Every default collaborator ``source`` builds for itself, as (line, what)."""
    tree = ast.parse(source)
    found = _default_factories(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.extend(_in_function(node))
    return sorted(set(found))


def test_no_module_outside_the_root_builds_a_default_collaborator() -> None:
    offenders: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name.startswith(NOT_WALKED):
            continue
        offenders.extend(
            f"{name}:{line}: {what}" for line, what in defaults_built(path.read_text())
        )
    assert offenders == []


def test_the_check_sees_every_form() -> None:
    source = """
from dataclasses import dataclass, field

class Part:
    def __init__(self, clock=None, pool=None, memo=None, log=None, cache=Lru(3)):
        self.clock = clock or SystemClock()
        if pool is None:
            pool = urllib3.PoolManager()
        self.memo = memo if memo is not None else CertMemo()
        self.log = Logger() if log is None else log

@dataclass
class Held:
    budget: object = field(default_factory=lambda: ByteBudget(1, 2.0))
    health: object = field(default_factory=EndpointHealth)
"""
    assert [what for _, what in defaults_built(source)] == [
        "default argument Lru(...)",
        "clock or SystemClock(...)",
        "if pool is None: PoolManager(...)",
        "memo if ... else CertMemo(...)",
        "log if ... else Logger(...)",
        "field(default_factory=ByteBudget)",
        "field(default_factory=EndpointHealth)",
    ]


def test_locals_found_empty_and_value_objects_are_not_defaults() -> None:
    source = """
def get(self, key, text=None):
    repos = self._images.get(key)
    if repos is None:
        repos = Lru(8)
    names = text or MappingProxyType({})
    return self._base or DaemonConfig()
"""
    assert defaults_built(source) == []


def _names_called(tree: ast.AST) -> set[str]:
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name is not None and name[:1].isupper():
                called.add(name)
    return called


def test_the_engine_builds_none_of_its_collaborators() -> None:
    """``Decider.__init__`` takes its stores, pool, resolver and threads (``EngineParts``) and
    builds only its own bookkeeping: the single-flight table and a lock."""
    tree = ast.parse((PACKAGE / "decision" / "decider.py").read_text())
    init = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "Decider"
        for node in node.body
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    assert _names_called(init) <= {"SingleFlight", "Lock"}
