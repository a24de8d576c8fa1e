"""Reading registry response bodies with bounded memory.

* A body is streamed into one buffer sized for it in advance (``cap + 1`` bytes, or the
  announced ``Content-Length``): an anonymous memory map, so only the pages bytes arrive in
  are ever resident, and unmapping it gives them back to the system at once (freed heap
  memory would stay with the process). The cap is checked as bytes arrive: at most
  ``cap + 1`` bytes are read, then the body is refused.
* The whole buffer is first reserved from a :class:`ByteBudget`, shared by every transport of
  the daemon: however many requests run at once, the bytes they may hold while reading stay
  under the budget. Reserving it all at once means a waiting request holds nothing (requests
  reserving chunk by chunk could each hold part and all wait for more). A request that gets no
  room within the budget's wait (or its own deadline) fails inconclusive
  (:class:`InflightBudgetExhausted`, ``TIMEOUT``).
"""

from __future__ import annotations

import mmap
import threading
import time
from dataclasses import dataclass

import urllib3

from pullgate.common.textnum import ascii_int
from pullgate.errors import Reason
from pullgate.registry.http_types import ResponseTooLarge
from pullgate.registry.model import RegistryError

__all__ = [
    "CHUNK",
    "DEFAULT_INFLIGHT_BYTES",
    "ERROR_BODY_CAP",
    "BudgetStats",
    "ByteBudget",
    "InflightBudgetExhausted",
    "own_budget",
    "read_body",
    "read_into_buffer",
]

CHUNK = 64 * 1024
"""Bytes asked of the socket at a time."""
ERROR_BODY_CAP = 64 * 1024
"""Bytes kept of a non-2xx body (error JSON); the rest is discarded, not an error."""
DEFAULT_INFLIGHT_BYTES = 64 * 1024 * 1024
"""The in-flight budget of a client with parts of its own (:func:`own_budget`; the daemon
shares one budget sized by ``[registry] max_inflight_bytes``)."""


class InflightBudgetExhausted(RegistryError):
    """The daemon-wide budget for registry bytes in flight had no room in time."""

    def __init__(self, detail: str, *, endpoint: str | None = None) -> None:
        super().__init__(Reason.TIMEOUT, detail, endpoint=endpoint)


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetStats:
    """A :class:`ByteBudget`'s counters (for Status and metrics)."""

    limit: int
    in_use: int
    peak: int
    waits: int  # reservations that had to wait
    exhausted: int  # reservations that gave up


class ByteBudget:
    """A ceiling on the registry body bytes held, across every request of the process.

    Args:
        limit: Bytes that may be held at once (at least one chunk).
        wait: Longest a reservation waits for room, in seconds.
    """

    def __init__(self, limit: int, wait: float) -> None:
        self.limit = max(limit, CHUNK)
        self.wait = wait
        self._cond = threading.Condition()
        self._in_use = 0
        self._peak = 0
        self._waits = 0
        self._exhausted = 0

    def acquire(self, size: int, deadline: float | None = None) -> bool:
        """Reserve ``size`` bytes; False when no room came within the wait (or ``deadline``,
        ``time.perf_counter()`` seconds)."""
        size = min(size, self.limit)
        with self._cond:
            if self._in_use + size > self.limit:
                self._waits += 1
                until = time.perf_counter() + self.wait
                if deadline is not None:
                    until = min(until, deadline)
                while self._in_use + size > self.limit:
                    left = until - time.perf_counter()
                    if left <= 0:
                        self._exhausted += 1
                        return False
                    self._cond.wait(left)
            self._in_use += size
            self._peak = max(self._peak, self._in_use)
            return True

    def release(self, size: int) -> None:
        """Give back ``size`` reserved bytes."""
        with self._cond:
            self._in_use = max(0, self._in_use - min(size, self.limit))
            self._cond.notify_all()

    def stats(self) -> BudgetStats:
        """The current counters."""
        with self._cond:
            return BudgetStats(
                limit=self.limit,
                in_use=self._in_use,
                peak=self._peak,
                waits=self._waits,
                exhausted=self._exhausted,
            )


def read_into_buffer(
    raw: urllib3.BaseHTTPResponse,
    limit: int,
    budget: ByteBudget,
    *,
    expected: int | None = None,
    truncate: bool = False,
    deadline: float | None = None,
    endpoint: str | None = None,
) -> tuple[bytes, bool]:
    """Read ``raw``'s body, at most ``limit + 1`` bytes (see the module docstring).

    Args:
        raw: The response, not yet read.
        limit: Bytes accepted.
        budget: Where the buffer is reserved before anything is read.
        expected: The announced length (``Content-Length``), when known and within ``limit``.
        truncate: Over ``limit``, return its first ``limit`` bytes (else nothing).
        deadline: Bounds the waits for budget (``time.perf_counter()`` seconds).
        endpoint: For error messages.

    Returns:
        The body (at most ``limit`` bytes) and whether it went over ``limit`` (then the rest
        was not read, and the body is empty unless ``truncate``).

    Raises:
        InflightBudgetExhausted: The budget had no room in time.
    """
    size = (expected if expected is not None else limit) + 1
    if not budget.acquire(size, deadline):
        raise InflightBudgetExhausted(
            f"endpoint {endpoint}: no room for a {size}-byte body within the "
            f"{budget.limit}-byte in-flight budget after {budget.wait:g} s",
            endpoint=endpoint,
        )
    try:
        buffer = mmap.mmap(-1, size)
    except BaseException:
        budget.release(size)
        raise
    view = memoryview(buffer)
    total = 0
    try:
        while total < size:
            chunk = raw.read(min(CHUNK, size - total))
            if not chunk:
                break
            view[total : total + len(chunk)] = chunk
            total += len(chunk)
            del chunk
        if total > limit:  # refused (or cut, when ``truncate``): no copy of what was refused
            return (buffer[:limit] if truncate else b""), True
        return buffer[:total], False
    finally:
        view.release()
        buffer.close()
        budget.release(size)


def read_body(
    raw: urllib3.BaseHTTPResponse,
    *,
    head: bool,
    cap: int,
    budget: ByteBudget,
    deadline: float,
    endpoint: str,
) -> bytes:
    """The body of ``raw``: a 2xx body of at most ``cap`` bytes (checked against
    ``Content-Length`` before reading and while reading), any other of at most
    :data:`ERROR_BODY_CAP` (cut there, not an error); none for a ``HEAD``.

    Raises:
        ResponseTooLarge: A 2xx body over ``cap`` (``bytes_read``: how much was read).
        InflightBudgetExhausted: No room in ``budget`` by its wait or ``deadline``.
    """
    if head:
        return b""
    strict = 200 <= raw.status < 300
    limit = cap if strict else ERROR_BODY_CAP
    length = ascii_int(raw.headers.get("Content-Length"))
    if strict and length is not None and length > limit:
        raw.close()
        raise ResponseTooLarge(
            f"endpoint {endpoint}: response of {length} bytes exceeds the {limit}-byte limit"
        )
    body, over = read_into_buffer(
        raw,
        limit,
        budget,
        expected=length if length is not None and length <= limit else None,
        truncate=not strict,
        deadline=deadline,
        endpoint=endpoint,
    )
    if over:
        raw.close()
        if strict:
            raise ResponseTooLarge(
                f"endpoint {endpoint}: response body exceeds the {limit}-byte limit",
                bytes_read=limit + 1,
            )
    return body


def own_budget() -> ByteBudget:
    """An in-flight budget for one client with parts of its own (``pullgate inspect``, tests):
    :data:`DEFAULT_INFLIGHT_BYTES`, a request waiting at most 2 s for room."""
    return ByteBudget(DEFAULT_INFLIGHT_BYTES, 2.0)
