"""The process-level tables of a config file that is not valid TOML as a whole.

A daemon started with a broken config file still serves its API socket (health
``NOT_SERVING``, the parse error in ``Status``) so that the problem is visible and a fix is
picked up by the watcher. That socket must be the one the file names, not the default: so when
``tomllib`` rejects the document, :func:`salvage_tables` cuts it at its table headers and parses
the wanted tables' sections on their own. A section that parses is kept; a wanted table whose own
section does not parse makes the salvage fail (None), and the caller falls back to defaults.

Only whole ``[name]`` sections are salvaged, plus keys of the same names in the top-level section
when that section parses on its own (``api = {socket = "…"}``, ``api.socket = "…"``). A file that
is not UTF-8 is decoded with replacement characters first; a section holding one is not used.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection

__all__ = ["salvage_tables"]

# A table or array-of-tables header line: [name], [a."b"], [[name]], with an optional comment.
_REPLACED = "\ufffd"
_HEADER = re.compile(r"""^\s*\[\[?\s*([A-Za-z0-9_\-."' ]+?)\s*\]\]?\s*(?:#.*)?$""")


def _sections(text: str) -> list[tuple[str | None, str]]:
    """(header name or None for the top level, the section's text including its header)."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match is not None:
            sections.append((match.group(1).strip(), [line]))
        else:
            sections[-1][1].append(line)
    return [(name, "\n".join(lines) + "\n") for name, lines in sections]


def _parse(text: str) -> dict[str, object] | None:
    if _REPLACED in text:  # undecodable bytes: never guess what they were
        return None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):  # tomllib recurses per nesting level
        return None


def salvage_tables(text: str, names: Collection[str]) -> dict[str, object] | None:
    """The tables ``names`` of a TOML document that may not parse as a whole.

    Returns:
        A document holding whichever of ``names`` were found (possibly none), or None when a
        section of one of them does not parse on its own.
    """
    document: dict[str, object] = {}
    for header, section in _sections(text):
        if header is None:
            top = _parse(section)
            if top is not None:
                document.update({k: v for k, v in top.items() if k in names})
            continue
        if header not in names:
            continue
        parsed = _parse(section)
        if parsed is None or header in document:
            return None
        document[header] = parsed[header]
    return document
