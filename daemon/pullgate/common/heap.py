"""Keep the cyclic garbage collector's full passes short in a long-running daemon.

CPython's collector walks every container object it tracks on a full (generation 2) pass. After
start-up almost all of them are the daemon's own long-lived state: imported modules, the gRPC
and protobuf machinery, the loaded trust material. Walking them finds nothing, yet holds the
GIL for tens of milliseconds, and a full pass falls at a random moment: on whichever decision,
pull or shim call happens to allocate when the thresholds trip.

:func:`settle` runs one full collection and then moves every survivor into the permanent
generation (:func:`gc.freeze`), which later passes skip. It is called once the daemon is up and
after each configuration swap. Each call first returns the previously settled objects to the
collector (:func:`gc.unfreeze`), so reference cycles of a replaced configuration are collected
then and never accumulate across reloads; that one full pass per reload is the price.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Settled:
    """What one :func:`settle` did."""

    collected: int  # unreachable objects found by its full collection
    frozen: int  # objects now in the permanent generation
    seconds: float  # time it took (the collection dominates)


def settle() -> Settled:
    """Collect everything, then freeze what survived (see the module docstring).

    Thread-safe; calls are serialised.
    """
    with _lock:
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        settled = Settled(
            collected=collected,
            frozen=gc.get_freeze_count(),
            seconds=time.perf_counter() - started,
        )
    log.debug(
        "heap settled: %d unreachable objects collected, %d frozen, %.1f ms",
        settled.collected,
        settled.frozen,
        settled.seconds * 1e3,
    )
    return settled
