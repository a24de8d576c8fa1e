"""Decimal numbers in protocol text (HTTP headers, configuration addresses).

HTTP's ``1*DIGIT`` and a port number are ASCII digits only. :meth:`str.isdigit` and
:meth:`str.isdecimal` also accept other scripts' digits and superscripts (``"²"``, ``"٣"``): a
check built on them either lets a hostile header through to an ``int()`` that raises a bare
``ValueError`` (a crash where a typed error belongs) or reads a number nobody wrote.

Numbers are also bounded: Python's ``int()`` refuses strings of more than 4300 digits (a bare
``ValueError``) and ``float()`` of a 310-digit integer overflows, so a hostile ``Content-Length``
or ``Retry-After`` of a few hundred digits would crash its reader. Go's ``net/http`` and
``strconv`` refuse anything past a signed 64-bit integer; so does :func:`ascii_int`.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")
MAX_INT = 2**63 - 1  # Go's math.MaxInt64


def ascii_int(text: str | None) -> int | None:
    """The value of ``text`` when it is one or more ASCII digits (surrounding whitespace
    allowed) worth at most :data:`MAX_INT`, else None."""
    if text is None:
        return None
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(MAX_INT)):
        return None
    value = int(significant)
    return value if value <= MAX_INT else None
