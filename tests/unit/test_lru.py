"""pullgate.common.lru.Lru: the one bounded cache type (capacity, recency, statistics, eviction
hook)."""

from __future__ import annotations

import threading

import pytest

from pullgate.common.lru import Lru


def test_evicts_the_least_recently_used() -> None:
    lru: Lru[str, int] = Lru(2, name="t")
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "b" is now the oldest
    lru.put("c", 3)
    assert lru.get("b") is None
    assert (lru.get("a"), lru.get("c"), len(lru)) == (1, 3, 2)
    assert [k for k, _ in lru.items()] == ["a", "c"]


def test_stats_count_hits_misses_evictions_and_size() -> None:
    lru: Lru[str, int] = Lru(2, name="t")
    lru.put("a", 1)
    lru.put("b", 2)
    lru.put("c", 3)  # evicts "a"
    lru.get("a")  # miss
    lru.get("b")  # hit
    lru.peek("c")  # neither
    stats = lru.stats()
    assert (stats.name, stats.hits, stats.misses, stats.evictions) == ("t", 1, 1, 1)
    assert (stats.size, stats.capacity) == (2, 2)
    lru.reset_stats()
    assert (lru.stats().hits, lru.stats().misses, lru.stats().evictions) == (0, 0, 0)


def test_peek_does_not_refresh_recency() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.peek("a") == 1
    lru.put("c", 3)
    assert "a" not in lru
    assert "b" in lru


def test_on_evict_sees_only_entries_dropped_for_room() -> None:
    dropped: list[tuple[str, int]] = []
    lru: Lru[str, int] = Lru(1, on_evict=lambda k, v: dropped.append((k, v)))
    lru.put("a", 1)
    lru.put("b", 2)
    lru.pop("b")
    lru.put("c", 3)
    lru.discard_if(lambda k, _v: k == "c")
    lru.put("d", 4)
    lru.clear()
    assert dropped == [("a", 1)]


def test_get_default_and_pop() -> None:
    lru: Lru[str, int] = Lru(4)
    assert lru.get("x", 7) == 7
    lru.put("x", 0)  # a falsy value is still a hit
    assert lru.get("x", 7) == 0
    assert lru.pop("x") == 0
    assert lru.pop("x", -1) == -1


def test_refuses_a_zero_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Lru(0)


def test_stays_bounded_under_concurrent_puts() -> None:
    lru: Lru[int, int] = Lru(50)

    def fill(base: int) -> None:
        for i in range(2000):
            lru.put(base + i, i)
            lru.get(base + i // 2)

    threads = [threading.Thread(target=fill, args=(n * 10_000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = lru.stats()
    assert stats.size == 50
    assert stats.evictions == 4 * 2000 - 50
    assert stats.hits + stats.misses == 4 * 2000


def test_resize_evicts_down_to_the_new_capacity() -> None:
    dropped: list[str] = []
    lru: Lru[str, int] = Lru(3, on_evict=lambda k, _v: dropped.append(k))
    for i, key in enumerate("abc"):
        lru.put(key, i)
    lru.resize(1)
    assert (dropped, [k for k, _ in lru.items()], lru.stats().evictions) == (["a", "b"], ["c"], 2)
    lru.resize(2)
    lru.put("d", 3)
    assert len(lru) == 2
    with pytest.raises(ValueError, match="capacity"):
        lru.resize(0)


def test_put_returns_what_it_evicted() -> None:
    lru: Lru[str, int] = Lru(1)
    assert lru.put("a", 1) == []
    assert lru.put("b", 2) == [("a", 1)]
    assert lru.put("b", 3) == []  # replacing a key evicts nothing
