"""The routing table of the runtime gate on the splice transport, built from the gate's own
tables so both transports decide the same calls the same way:

* a path that does not normalise, or names a service the gate does not serve, is refused with
  ``PERMISSION_DENIED`` and the gate's refusal text (logged and audited by the gate);
* a gated method with a verdict function (``CreateContainer``) is decided: its request message
  is held until the verdict, which is the gate's own (:mod:`pullgate.cri.runtime_proxy`); a
  request too large to hold within the runtime's stream window is answered by its handler; a
  method with a quick check too is first looked up in memory on the relay thread (a current
  allow is forwarded at once, :data:`~pullgate.cri.splice.routes.Quick`);
* a gated method without one (its handler must make the runtime call itself, as ``PullImage``
  does) is answered by that handler (:mod:`pullgate.cri.splice.answer`);
* everything else passes through; unary calls are timed for the pass-through metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pullgate.cri.methods import SERVER_STREAMING, is_cri_method, normalise_method
from pullgate.cri.splice.routes import (
    PASS_TIMED,
    PASS_UNTIMED,
    Handler,
    Quick,
    Refusal,
    Route,
    RouteKind,
    Verdict,
)
from pullgate.errors import MalformedInput

__all__ = ["PERMISSION_DENIED", "gate_routes"]

PERMISSION_DENIED = 7
_KNOWN_PATHS = 256  # distinct method paths whose route is kept (the CRI has ~60 methods)


def gate_routes(
    *,
    services: tuple[str, ...],
    gated: Mapping[str, Handler],
    verdicts: Mapping[str, Verdict],
    refusal_text: Callable[[object, str], str],
    quick: Mapping[str, Quick] | None = None,
) -> Callable[[bytes], Route]:
    """``:path`` -> :class:`Route` (see the module docstring). ``refusal_text(raw, why)`` logs
    and audits a refused path and returns the message the caller gets; ``quick``: the memory-
    only checks of decided methods."""
    quick = quick or {}
    decided = {
        method: Route(
            RouteKind.DECIDE, verdict=v, handler=gated.get(method), quick=quick.get(method)
        )
        for method, v in verdicts.items()
    }
    answers = {
        method: Route(RouteKind.ANSWER, handler=handler)
        for method, handler in gated.items()
        if method not in verdicts
    }

    def refuse(raw: bytes, why: str) -> Route:
        shown: object = raw.decode("ascii", "replace")
        return Route(RouteKind.REFUSE, refusal=Refusal(PERMISSION_DENIED, refusal_text(shown, why)))

    known: dict[bytes, Route] = {}  # the routes of paths seen, while few (no parse per call)

    def route(raw: bytes) -> Route:
        found = known.get(raw)
        if found is not None:
            return found
        answer = _route(raw)
        if answer.kind is not RouteKind.REFUSE and len(known) < _KNOWN_PATHS:
            known[raw] = answer
        return answer

    def _route(raw: bytes) -> Route:
        try:
            method = normalise_method(raw)
        except MalformedInput as exc:
            return refuse(raw, f"malformed method path: {exc.detail}")
        found = decided.get(method)
        if found is not None:
            return found
        if not any(is_cri_method(method, service) for service in services):
            return refuse(raw, f"{method} is not a method of the {' or '.join(services)} service")
        answered = answers.get(method)
        if answered is not None:
            return answered
        return PASS_UNTIMED if method in SERVER_STREAMING else PASS_TIMED

    return route
