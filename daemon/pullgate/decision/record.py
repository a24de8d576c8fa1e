"""The one place a decision is audited and counted (docs/architecture.md §3.9).

The composition root builds one :class:`DecisionRecorder` over the audit sink and the decision
counters and hands it to the engine and to every front end:

* :meth:`DecisionRecorder.decided` — every answer of the decision engine, called once per
  caller at the engine boundary (:meth:`pullgate.decision.decider.Decider.decide` and
  ``decide_async``; a cache hit and a single-flight join are answers too);
* :meth:`DecisionRecorder.refused` — a request answered without an engine decision: it did not
  parse, or the engine raised;
* :meth:`DecisionRecorder.event` — the front ends' other audited answers and events
  (critical-image and break-glass allows, container starts, refused methods, node audits),
  which have counters of their own.

Every record names its front end (:class:`~pullgate.decision.model.Front`), and so does every
count (the ``front`` label of ``pullgate_decisions_total``); every record passes through
the one scrubber, :func:`pullgate.decision.audit_log.scrub`, before it reaches the sink.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pullgate.decision.audit import audit_record, request_secrets
from pullgate.decision.audit_log import scrub
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.errors import Reason

__all__ = [
    "UNNAMED_FRONT",
    "AuditSink",
    "DecisionCounter",
    "DecisionObserver",
    "DecisionRecorder",
]

log = logging.getLogger(__name__)

AuditSink = Callable[[dict[str, Any]], None]
_MAX_TEXT = 4096  # a refused request's reference and caller are untrusted: bounded
UNNAMED_FRONT = "unknown"  # the ``front`` label of a request that names no front end


class DecisionCounter(Protocol):
    """The decision counters (the daemon's :class:`pullgate.service.metrics.Metrics`)."""

    def observe_decision(
        self, decision: Decision, *, front: str, total_seconds: float | None = None
    ) -> None:
        """Count one decision, asked through ``front``, and its phase timings."""
        ...

    def observe_denial(self, reason: str, *, front: str) -> None:
        """Count one deny, answered by ``front``, that had no engine decision."""
        ...


class DecisionObserver(Protocol):
    """What the engine calls once per answer it gives."""

    def decided(self, decision: Decision, request: DecisionRequest, *, joined: bool) -> None:
        """Record one answer (``joined``: it came from another caller's computation)."""
        ...


class DecisionRecorder:
    """Audits and counts decisions (see the module docstring). Thread-safe when the sink and
    the counter are.

    Args:
        sink: receives each scrubbed record (None: nothing is audited).
        counter: the decision counters (None: nothing is counted).
        wanted: whether ``sink`` keeps records now (:meth:`AuditLog.enabled
            <pullgate.decision.audit_log.AuditLog.enabled>`); while it does not, no record is
            built or scrubbed (docs/decisions.md, "No audit record is built for a sink that
            drops it"). None: always.
    """

    def __init__(
        self,
        sink: AuditSink | None,
        counter: DecisionCounter | None = None,
        *,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        self._sink = sink
        self._counter = counter
        self._wanted = wanted

    def decided(self, decision: Decision, request: DecisionRequest, *, joined: bool) -> None:
        """One engine answer: one audit record, one count."""
        if self._sink is not None and (self._wanted is None or self._wanted()):
            record = audit_record(decision, request)
            record["event"] = "decision"
            record["single_flight_joined"] = joined
            self._emit(record, request_secrets(request))
        if self._counter is not None:
            front = request.front.value if request.front is not None else UNNAMED_FRONT
            self._counter.observe_decision(decision, front=front)

    def refused(
        self, reference: str, reason: Reason, message: str, *, front: Front, caller: str = ""
    ) -> None:
        """A request denied without an engine decision: one audit record, one count."""
        if self._sink is not None:
            self._emit(
                {
                    "event": "decision",
                    "decision": "deny",
                    "reason": reason.value,
                    "message": message[:_MAX_TEXT],
                    "reference": reference[:_MAX_TEXT],
                    "caller": caller[:64],
                    "front": front.value,
                    "digest": "",
                    "digests": {},
                    "subjects": [],
                    "signer_subject": None,
                    "signer_fingerprint": None,
                    "cache_hit": False,
                },
                (),
            )
        if self._counter is not None:
            self._counter.observe_denial(reason.value, front=front.value)

    def event(self, record: Mapping[str, object], *, front: Front | str) -> None:
        """Audit one record that is not an engine decision (not counted here); ``front`` is
        added unless the record names one."""
        if self._sink is None:
            return
        named = record if "front" in record else {**record, "front": str(front)}
        self._emit(named, ())

    def audit_for(self, front: Front | str) -> Callable[[Mapping[str, object]], None]:
        """:meth:`event` bound to ``front`` (for components that take a plain audit callable)."""

        def emit(record: Mapping[str, object]) -> None:
            self.event(record, front=front)

        return emit

    def _emit(self, record: Mapping[str, object], secrets: Sequence[str]) -> None:
        sink = self._sink
        if sink is None or (self._wanted is not None and not self._wanted()):
            return
        try:
            sink(scrub(record, secrets))
        except Exception:  # auditing must never turn an answer into a crash
            log.exception("audit sink failed for a %s record", record.get("event", "decision"))
