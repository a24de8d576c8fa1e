"""Decimal numbers in protocol text (HTTP headers, configuration addresses).

HTTP's ``1*DIGIT`` and a port number are ASCII digits only. :meth:`str.isdigit` and
:meth:`str.isdecimal` also accept other scripts' digits and superscripts (``"²"``, ``"٣"``): a
check built on them either lets a hostile header through to an ``int()`` that raises a bare
``ValueError`` (a crash where a typed error belongs) or reads a number nobody wrote.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def ascii_int(text: str | None) -> int | None:
    """The value of ``text`` when it is one or more ASCII digits (surrounding whitespace
    allowed), else None."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if _DIGITS.fullmatch(text) else None
