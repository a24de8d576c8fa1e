"""The ``[nri]`` table of the daemon config: the containerd NRI plugin.

Validated like every other table (:mod:`pullgate.config.load`): unknown keys are errors; the
socket path must be absolute; ``name`` uses only the characters NRI accepts in a plugin name
(letters, digits, ``-_.+``; https://github.com/containerd/nri/blob/main/pkg/api/plugin.go);
``index`` is two digits; ``evict_per_minute`` and ``recheck_after`` are positive;
``evict_endpoint`` is ``unix:///absolute/path`` (containerd's CRI socket).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pullgate.config.checker import ConfigChecker
from pullgate.config.model import NriConfig

__all__ = ["nri_table"]

_KEYS = frozenset(
    {"socket", "name", "index", "evict", "evict_per_minute", "evict_endpoint", "recheck_after"}
)
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_INDEX = re.compile(r"[0-9]{2}")


def nri_table(chk: ConfigChecker, data: Mapping[str, object]) -> NriConfig | None:
    """``[nri]``, or None when the table is absent."""
    table = chk.section(data, "nri", _KEYS)
    if table is None:
        return None
    default = NriConfig()
    name = chk.string(table, "name", "nri", default.name)
    if not _NAME.fullmatch(name):
        chk.problem("nri.name", f"must be letters, digits, '-', '_', '.' or '+', got {name!r}")
        name = default.name
    index = chk.string(table, "index", "nri", default.index)
    if not _INDEX.fullmatch(index):
        chk.problem("nri.index", f'must be two digits such as "10", got {index!r}')
        index = default.index
    endpoint = None
    if "evict_endpoint" in table:
        endpoint = chk.unix_upstream(table, "evict_endpoint", "nri", "") or None
    return NriConfig(
        evict_endpoint=endpoint,
        socket=chk.socket(table, "socket", "nri", default.socket),
        name=name,
        index=index,
        evict=chk.boolean(table, "evict", "nri", default.evict),
        evict_per_minute=chk.positive_int(
            table, "evict_per_minute", "nri", default.evict_per_minute
        ),
        recheck_after=chk.positive_float(table, "recheck_after", "nri", default.recheck_after),
    )
