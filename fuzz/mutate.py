"""Structure-aware mutation of JSON documents: every node has a path, any node can be replaced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every node of a JSON document (the root's is ``()``), depth first."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from json_paths(value, (*prefix, i))


def replace_at(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``node`` with the node at ``path`` replaced by ``value``."""
    if not path:
        return value
    head, *rest = path
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = replace_at(node[head], tuple(rest), value)
    return copy
