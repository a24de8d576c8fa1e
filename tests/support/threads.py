"""Running a call that might never return: on its own thread, joined with a generous bound, so
a test asserts "it finished" (never "it finished quickly")."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

JOIN = 30.0  # seconds: generous, a hung call fails the test instead of hanging it


def outcome_of(call: Callable[[], Any], *, bound: float = JOIN) -> Any:
    """``call()``'s result, or the exception it raised, once it finished within ``bound``.

    Raises:
        AssertionError: the call was still running after ``bound`` seconds.
    """
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), "the call never finished"
    return box[0]
