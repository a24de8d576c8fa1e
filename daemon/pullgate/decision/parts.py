"""What a decision engine works with, built by the composition root (docs/architecture.md
§3.4): :class:`~pullgate.decision.decider.Decider` takes one :class:`EngineParts` and builds
none of them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pullgate.decision.clients import ClientPool
from pullgate.decision.context import Stores
from pullgate.decision.resolution import Resolver

__all__ = ["EngineParts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineParts:
    """The engine's collaborators; the engine owns them once given (``Decider.close`` shuts
    the executors and closes the pooled stores).

    Args:
        stores: Where content comes from (the registry, an OCI layout, memory).
        pool: Idle stores, reused across decisions.
        resolver: The resolve and index memos and the routes into the decision cache.
        verify: Threads verifying subjects in parallel.
        flights: Threads running the computations of ``decide_async`` (distinct concurrent
            cold decisions beyond its size wait their turn); nothing on it ever waits on a
            flight, so a thread caller joining such a flight cannot deadlock it
            (:mod:`pullgate.decision.cache`).
    """

    stores: Stores
    pool: ClientPool
    resolver: Resolver
    verify: ThreadPoolExecutor
    flights: ThreadPoolExecutor
