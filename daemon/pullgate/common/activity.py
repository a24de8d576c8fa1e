"""When something last happened, to ask whether it happens still (e.g. whether the kubelet uses
the container-start gate: it calls its runtime endpoint every few seconds)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["Activity"]


class Activity:
    """The monotonic time of the last :meth:`seen`; thread-safe (one float, replaced whole).

    Args:
        window: seconds after the last :meth:`seen` during which :meth:`recent` is True.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._last = -math.inf

    def seen(self, _seconds: float = 0.0) -> None:
        """Record that it happened now (the argument, a duration some callers pass, is unused)."""
        self._last = time.monotonic()

    def recent(self) -> bool:
        """Whether it happened within the last ``window`` seconds."""
        return time.monotonic() - self._last <= self.window

    def noting(self, then: Callable[[float], None] | None) -> Callable[[float], None]:
        """A callback that records :meth:`seen`, then passes its argument on to ``then``."""
        if then is None:
            return self.seen

        def both(seconds: float) -> None:
            self.seen()
            then(seconds)

        return both
