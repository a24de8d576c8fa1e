"""What the splice transport does with each call, by its ``:path``.

A :class:`Route` is decided once per stream, when the caller's request field block is read:
passed through untouched, decided by a verdict function before its request message may reach
the runtime, or refused at once. The routing table itself belongs to the gate
(:meth:`pullgate.cri.runtime_proxy.RuntimeProxy.splice_route`); this module only names the
shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import grpc

from pullgate.cri.splice.settle import Settle

__all__ = [
    "TAKE_OVER",
    "Handler",
    "Quick",
    "Refusal",
    "Route",
    "RouteKind",
    "TakeOver",
    "Verdict",
]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call ended by pullgate: the gRPC status code (numeric) and message."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class TakeOver:
    """A verdict that hands the call to the route's handler: the held request is not forwarded,
    the runtime's stream is reset, and the handler (which decides and calls the runtime itself)
    answers the caller, as for a request too large to hold."""


TAKE_OVER = TakeOver()

# The request message -> None (allow: forwarded as held), a refusal, or TAKE_OVER.
Verdict = Callable[[bytes], Refusal | TakeOver | None]
Handler = Callable[[bytes, grpc.ServicerContext], bytes]  # a grpcio unary handler
# The request message -> what settles an allow decided from memory alone on the relay thread
# (counting, auditing: run on the settling thread once the runtime's answer has gone to the
# caller, :mod:`.settle`), or None: ``verdict`` decides on a worker.
Quick = Callable[[bytes], Settle | None]


class RouteKind(Enum):
    """How a call is handled."""

    PASS = "pass"  # noqa: S105 - forwarded frame by frame, never waits
    DECIDE = "decide"  # the request message is held until ``verdict`` allows it
    REFUSE = "refuse"  # answered with ``refusal`` at once; the runtime's stream is reset
    ANSWER = "answer"  # the runtime's stream is reset; ``handler`` answers (:mod:`.answer`)


@dataclass(frozen=True, slots=True)
class Route:
    """One call's handling; ``timed``: a unary pass-through call, whose latency is observed."""

    kind: RouteKind
    verdict: Verdict | None = None
    refusal: Refusal | None = None
    handler: Handler | None = None
    timed: bool = False
    quick: Quick | None = None  # a decided call's memory-only allow


PASS_TIMED = Route(RouteKind.PASS, timed=True)
PASS_UNTIMED = Route(RouteKind.PASS)
