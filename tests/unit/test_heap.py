"""pullgate.common.heap: start-up state out of the collector's full passes, nothing kept across
swaps."""

from __future__ import annotations

import gc
import weakref

from pullgate.common import heap


class _Cyclic:
    """An object in a reference cycle with itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_settle_moves_survivors_out_of_the_collected_generations() -> None:
    keep = [_Cyclic() for _ in range(1000)]
    settled = heap.settle()
    assert settled.frozen > len(keep)
    assert gc.get_freeze_count() > len(keep)
    kept = {id(k) for k in keep}
    tracked = gc.get_objects()  # what the next full pass would walk
    assert not any(id(obj) in kept for obj in tracked)
    assert len(tracked) < settled.frozen


def test_a_cycle_dropped_after_a_settle_is_collected_by_the_next_one() -> None:
    old = _Cyclic()
    ref = weakref.ref(old)
    heap.settle()
    del old
    gc.collect()
    assert ref() is not None  # frozen: an ordinary full collection no longer looks at it
    settled = heap.settle()
    assert ref() is None  # a swap's settle returns the replaced state to the collector
    assert settled.collected >= 1


def test_garbage_made_before_a_settle_is_collected_not_frozen() -> None:
    ref = weakref.ref(_Cyclic())
    assert ref() is not None
    heap.settle()
    assert ref() is None
