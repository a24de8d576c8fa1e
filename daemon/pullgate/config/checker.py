"""Typed reads of one parsed TOML config document, collecting every problem found.

:class:`ConfigChecker` is the value-level half of :mod:`pullgate.config.load`: each read returns
the value when it has the right type and range, and otherwise records a problem naming the file,
the dotted key and what is wrong, and returns the default, so that all problems of a document
are reported at once. Keys are written the way the operator would write them
(:func:`quote_key`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

_E = TypeVar("_E", bound=StrEnum)
_MAX_SOCKET_MODE = 0o777

# Every number of seconds in the configuration (timeouts, TTLs, debounce) is at most a year: the
# values are added to clocks and datetimes, where "forever" (1e12) overflows and fails every
# decision that uses it instead of failing the configuration.
MAX_SECONDS = 365 * 24 * 3600


def quote_key(name: str) -> str:
    """A TOML key as the operator would write it (bare when possible)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for problem messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", dict: "table"}
    return names.get(type(value), "array" if isinstance(value, list) else type(value).__name__)


class ConfigChecker:
    """Collects every problem of one config document; each names file, key and problem."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.base = source.absolute().parent
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        """Record one problem with ``key`` (a dotted path)."""
        self.problems.append(f"{self.source}: {key}: {message}")

    # -- tables

    def table(self, data: Mapping[str, object], key: str, prefix: str) -> dict[str, object] | None:
        """The sub-table ``key`` (None when absent or not a table)."""
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(join_key(prefix, key), f"must be a table, not a {type_name(value)}")
            return None
        return value

    def section(
        self, data: Mapping[str, object], key: str, allowed: frozenset[str]
    ) -> dict[str, object] | None:
        """The top-level table ``key`` with its unknown keys reported (None when absent/bad)."""
        table = self.table(data, key, "")
        if table is not None:
            self.unknown(table, allowed, key)
        return table

    def unknown(self, data: Mapping[str, object], allowed: frozenset[str], prefix: str) -> None:
        """Record every key of ``data`` that is not in ``allowed`` as unknown."""
        for key in data:
            if key not in allowed:
                self.problem(join_key(prefix, quote_key(key)), "unknown key")

    # -- scalars (each returns ``default`` when the key is absent or its value is bad)

    def string(self, data: Mapping[str, object], key: str, prefix: str, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            self.problem(join_key(prefix, key), f"must be a string, not a {type_name(value)}")
            return default
        if "\0" in value:
            self.problem(join_key(prefix, key), "must not contain NUL characters")
            return default
        return value

    def boolean(self, data: Mapping[str, object], key: str, prefix: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(join_key(prefix, key), f"must be true or false, not a {type_name(value)}")
            return default
        return value

    def positive_int(self, data: Mapping[str, object], key: str, prefix: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(join_key(prefix, key), f"must be an integer, not a {type_name(value)}")
            return default
        if value <= 0:
            self.problem(join_key(prefix, key), f"must be positive, got {value}")
            return default
        return value

    def positive_float(
        self, data: Mapping[str, object], key: str, prefix: str, default: float
    ) -> float:
        return self._finite(data, key, prefix, default, allow_zero=False)

    def non_negative_float(
        self, data: Mapping[str, object], key: str, prefix: str, default: float
    ) -> float:
        return self._finite(data, key, prefix, default, allow_zero=True)

    def _finite(
        self, data: Mapping[str, object], key: str, prefix: str, default: float, *, allow_zero: bool
    ) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(join_key(prefix, key), f"must be a number, not a {type_name(value)}")
            return default
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            kind = "non-negative" if allow_zero else "positive"
            self.problem(join_key(prefix, key), f"must be a {kind} finite number, got {value}")
            return default
        if value > MAX_SECONDS:
            self.problem(
                join_key(prefix, key),
                f"must be at most {MAX_SECONDS} seconds (a year), got {value}",
            )
            return default
        return float(value)

    def path(self, data: Mapping[str, object], key: str, prefix: str, default: Path) -> Path:
        """A filesystem path; relative paths are resolved against the config file's directory."""
        if key not in data:
            return default
        text = self.string(data, key, prefix, "")
        if not text:
            if isinstance(data[key], str):
                self.problem(join_key(prefix, key), "must not be empty")
            return default
        return self.base / text

    def socket(self, data: Mapping[str, object], key: str, prefix: str, default: Path) -> Path:
        if key not in data:
            return default
        text = self.string(data, key, prefix, "")
        if not text.startswith("/"):
            if isinstance(data[key], str):
                self.problem(join_key(prefix, key), f"must be an absolute path, got {text!r}")
            return default
        return Path(text)

    def socket_mode(self, data: Mapping[str, object], section: str, default: int) -> int:
        """``socket_mode``: an integer (``0o660``) or an octal string (``"0660"``)."""
        value = data.get("socket_mode", default)
        mode: int | None = None
        if isinstance(value, str) and re.fullmatch(r"0?[0-7]{1,4}", value):
            mode = int(value, 8)
        elif isinstance(value, int) and not isinstance(value, bool):
            mode = value
        if mode is None or not 0 < mode <= _MAX_SOCKET_MODE:
            self.problem(
                f"{section}.socket_mode",
                f'must be a permission mode such as 0o660 or "0660", got {value!r}',
            )
            return default
        return mode

    def unix_upstream(self, data: Mapping[str, object], key: str, prefix: str, default: str) -> str:
        """A runtime endpoint ``unix:///absolute/path`` (or ``unix:/absolute/path``)."""
        upstream = self.string(data, key, prefix, default)
        path = upstream.removeprefix("unix://") if upstream.startswith("unix://") else None
        if path is None and upstream.startswith("unix:"):
            path = upstream.removeprefix("unix:")
        if path is None or not path.startswith("/"):
            self.problem(
                join_key(prefix, key),
                f"must be unix:///absolute/path/to/containerd.sock, got {upstream!r}",
            )
            return default
        return upstream

    def choice(self, data: Mapping[str, object], key: str, prefix: str, default: _E) -> _E:
        enum_type = type(default)
        text = self.string(data, key, prefix, default.value)
        try:
            return enum_type(text)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in enum_type)
            self.problem(join_key(prefix, key), f"must be one of {allowed}, got {text!r}")
            return default


def join_key(prefix: str, key: str) -> str:
    """The dotted key ``prefix.key`` (``key`` alone at the top level)."""
    return f"{prefix}.{key}" if prefix else key
