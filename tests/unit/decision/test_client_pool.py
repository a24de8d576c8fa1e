"""The idle-client pool: bounded by key (least recently used key closed first) and per key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from pullgate.decision.clients import ClientPool
from pullgate.registry.store import Store


class _Fake:
    def __init__(self) -> None:
        self.closed = False

    @contextmanager
    def session(self, *, deadline: float | None = None, on_fetch: object = None) -> Iterator[None]:
        yield

    def close(self) -> None:
        self.closed = True


def _borrow(pool: ClientPool, key: tuple[str, str]) -> _Fake:
    made: list[_Fake] = []

    def factory() -> Store:
        made.append(_Fake())
        return cast(Store, made[-1])

    with pool.lend(key, factory) as client:
        return cast(_Fake, client)


def test_least_recently_used_key_is_closed_past_max_keys() -> None:
    pool = ClientPool(max_keys=2, max_idle=1)
    a, b = _borrow(pool, ("s", "a")), _borrow(pool, ("s", "b"))
    assert _borrow(pool, ("s", "a")) is a  # reused: "b" is now the oldest key
    c = _borrow(pool, ("s", "c"))
    assert (a.closed, b.closed, c.closed) == (False, True, False)
    assert pool.created == 3


def test_a_client_beyond_max_idle_is_closed_and_drop_closes_idle_ones() -> None:
    pool = ClientPool(max_keys=4, max_idle=1)
    key = ("s", "a")
    made: list[_Fake] = []

    def factory() -> Store:
        made.append(_Fake())
        return cast(Store, made[-1])

    with pool.lend(key, factory), pool.lend(key, factory):
        pass  # two lent at once: two made, one is kept idle on return
    assert sorted(m.closed for m in made) == [False, True]
    pool.drop(lambda k: k != key)
    assert all(m.closed for m in made)
