"""No mutable module-level state: every global of every ``pullgate`` module is a constant.

Caches, memos, registries and locks belong to objects the composition root builds
(docs/architecture.md §3.3), so two daemons (or two tests) in one process never share them and
a reload can drop them. The test imports every module and inspects its globals; a mutable one
fails it unless it is on :data:`ALLOWED` with its justification.
"""

from __future__ import annotations
import __future__

import dataclasses
import datetime
import decimal
import enum
import importlib
import logging
import pathlib
import pkgutil
import re
import struct
import types
import typing
import uuid
from collections.abc import Iterator

from cryptography import x509

import pullgate

# (module, name) -> why a mutable-looking global is acceptable. Keep it short.
ALLOWED: dict[tuple[str, str], str] = {
    (
        "pullgate.common.heap",
        "_lock",
    ): "serialises gc.freeze/unfreeze, which act on the whole interpreter",
    (
        "pullgate.verification.envelope.jws",
        "_STRICT_JSON",
    ): "a configured JSONDecoder: no state across calls",
    ("pullgate.net.deadline", "_current"): (
        "the exchange in flight on this thread: urllib3 creates and hands out connections inside "
        "its pools, and its connection classes receive no per-request argument that could carry "
        "it (the watchdog itself is injected by the owner of the transports)"
    ),
}

# Generated protobuf/gRPC code keeps protobuf's own registries; console entry points run once.
_SKIPPED = re.compile(r"(^|\.)__main__$|_pb2(_grpc)?$")

_IMMUTABLE_SCALARS = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    slice,
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    pathlib.PurePath,
    uuid.UUID,
    re.Pattern,
    struct.Struct,
    enum.Enum,
    logging.Logger,
    typing.TypeVar,
    typing.ParamSpec,
    types.GenericAlias,
    types.UnionType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.ModuleType,
    type,
    typing.NewType,
    x509.ObjectIdentifier,
    type(__future__.annotations),
)


def _modules() -> Iterator[types.ModuleType]:
    yield pullgate
    for info in pkgutil.walk_packages(pullgate.__path__, prefix="pullgate."):
        if not _SKIPPED.search(info.name):
            yield importlib.import_module(info.name)


def _immutable(value: object, depth: int = 0) -> bool:
    """True when ``value`` cannot be changed in place (containers checked element by element)."""
    if depth > 8:
        return False
    if isinstance(value, _IMMUTABLE_SCALARS):
        return True
    if type(value) is object:  # a sentinel: no state at all
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable(v, depth + 1) for v in value)
    if isinstance(value, types.MappingProxyType):
        return all(_immutable(k, depth + 1) and _immutable(v, depth + 1) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        params = getattr(type(value), "__dataclass_params__", None)
        return bool(params is not None and params.frozen) and all(
            _immutable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        )
    # typing special forms (Callable[...], Literal[...], TypeAliasType, Protocol machinery)
    return type(value).__module__ == "typing"


def _mutable_globals() -> list[str]:
    found: list[str] = []
    for module in _modules():
        for name, value in vars(module).items():
            if name.startswith("__") and name.endswith("__"):
                continue
            if isinstance(value, types.ModuleType | type | types.FunctionType):
                continue  # imported or defined code, not state
            if callable(value) and getattr(value, "__module__", None) != module.__name__:
                continue  # a callable imported from elsewhere (functools.cache-wrapped or not)
            if _immutable(value):
                continue
            if (module.__name__, name) in ALLOWED:
                continue
            found.append(f"{module.__name__}.{name}: {type(value).__qualname__}")
    return found


def test_no_mutable_module_globals() -> None:
    assert _mutable_globals() == []


def test_the_check_sees_mutable_globals() -> None:
    """The predicate refuses what a module global must not be."""
    mutable: tuple[object, ...] = ({}, [], set(), [()], ((), []), types.MappingProxyType({"k": []}))
    constant: tuple[object, ...] = (
        (1, "a"),
        frozenset({1}),
        types.MappingProxyType({"k": (1,)}),
        re.compile("x"),
        logging.getLogger("x"),
    )
    assert not any(_immutable(value) for value in mutable)
    assert all(_immutable(value) for value in constant)


def test_allowlist_names_existing_globals() -> None:
    """Each allowlist entry names a global that still exists (stale entries are removed)."""
    for module_name, name in ALLOWED:
        assert hasattr(importlib.import_module(module_name), name), (module_name, name)
