"""``pullgate.v1.Verifier``: a thin translation layer (STYLE.md §2 "servicer stays thin").

``Verify`` checks the request (:mod:`.convert`), asks the decision engine and converts the
:class:`~pullgate.decision.model.Decision` back. An engine with ``decide_async`` (the real
decider, :meth:`pullgate.decision.decider.Decider.decide_async`) answers warm requests on the
event loop and single-flights cold ones at the asyncio level: 100 concurrent identical calls run
one computation in one thread, and the 99 joiners wait on the loop instead of each blocking a
worker thread (which used to exhaust the executor, so late callers started after the flight had
ended). Any other engine runs in a worker thread (``asyncio.to_thread``: verification is
CPU-bound and blocking, STYLE.md §5).

**Bad requests are answered, not aborted.** An empty or unparsable reference, a bad digest,
platform or ``auth`` value yields ``VerifyResponse(allowed=false, reason="MALFORMED")``; a
domain error escaping the decider yields a deny with that error's reason; anything unexpected
a deny with ``INTERNAL`` (logged with its traceback). Integrators therefore always get a
decision to enforce through the stable ``allowed``/``reason`` fields, exactly as for any other
deny, and the RPC itself fails only when the transport does. ``Status`` and ``Reload`` abort
through the one table in :mod:`.status` if their backends raise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeVar, runtime_checkable

import grpc

from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import PullgateError, Reason
from pullgate.server.audit import AuditLog
from pullgate.server.convert import (
    ReloadView,
    StatusView,
    decision_to_proto,
    denial_to_proto,
    reload_to_proto,
    status_to_proto,
    verify_request_from_proto,
)
from pullgate.server.metrics import Metrics
from pullgate.server.status import status_for_error
from pullgate.v1 import verifier_pb2, verifier_pb2_grpc

log = logging.getLogger(__name__)


class DecisionEngine(Protocol):
    """What ``Verify`` needs: a synchronous, thread-safe decision function."""

    def decide(self, request: DecisionRequest) -> Decision:
        """Decide one pull."""
        ...


@runtime_checkable
class AsyncDecisionEngine(Protocol):
    """An engine that decides on the event loop itself (warm) or without blocking it."""

    async def decide_async(self, request: DecisionRequest) -> Decision:
        """Decide one pull."""
        ...


class DaemonControl(Protocol):
    """What ``Status`` and ``Reload`` need (the composition root adapts the trust state)."""

    def status(self) -> StatusView:
        """The current status."""
        ...

    def reload(self, reason: str) -> ReloadView:
        """Reload now (blocking); the result of this attempt."""
        ...


_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerParts:
    """What the gRPC server serves (the composition root builds them; tests use fakes)."""

    engine: DecisionEngine
    control: DaemonControl
    metrics: Metrics | None = None
    audit: AuditLog | None = None


async def _abort(context: grpc.aio.ServicerContext[_Req, _Resp], exc: Exception) -> NoReturn:
    status = status_for_error(exc)
    await context.abort(status.code, status.details)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


class VerifierServicer(verifier_pb2_grpc.VerifierServicer):
    """The ``pullgate.v1.Verifier`` service.

    Args:
        engine: the decider.
        control: status and reload.
        metrics: decision counters (None: not counted here).
        audit: audit sink for requests denied before the decider sees them (the decider
            audits its own decisions through the same sink).
    """

    def __init__(
        self,
        engine: DecisionEngine,
        control: DaemonControl,
        *,
        metrics: Metrics | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._engine = engine
        self._async_engine = engine if isinstance(engine, AsyncDecisionEngine) else None
        self._control = control
        self._metrics = metrics
        self._audit = audit

    def _deny(
        self, message: verifier_pb2.VerifyRequest, reason: Reason, detail: str
    ) -> verifier_pb2.VerifyResponse:
        if self._metrics is not None:
            self._metrics.observe_denial(reason.value)
        if self._audit is not None:
            self._audit.record_denial(message.reference[:4096], reason.value, message.caller[:64])
        inconclusive = reason in (Reason.INTERNAL, Reason.TIMEOUT)
        return denial_to_proto(message.reference, reason.value, detail, inconclusive=inconclusive)

    async def Verify(
        self,
        request: verifier_pb2.VerifyRequest,
        context: grpc.aio.ServicerContext[verifier_pb2.VerifyRequest, verifier_pb2.VerifyResponse],
    ) -> verifier_pb2.VerifyResponse:
        """Decide one pull (never raises for bad input: see the module docstring)."""
        try:
            decision_request = verify_request_from_proto(request)
        except PullgateError as exc:
            return self._deny(request, exc.reason, exc.detail)
        started = time.perf_counter()
        try:
            if self._async_engine is not None:
                decision = await self._async_engine.decide_async(decision_request)
            else:
                decision = await asyncio.to_thread(self._engine.decide, decision_request)
        except PullgateError as exc:
            return self._deny(request, exc.reason, exc.detail)
        except Exception:
            log.exception("Verify %s: internal error", decision_request.reference)
            return self._deny(request, Reason.INTERNAL, "internal error; see the daemon log")
        elapsed = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.observe_decision(decision, total_seconds=elapsed)
        return decision_to_proto(decision)

    async def Status(
        self,
        request: verifier_pb2.StatusRequest,
        context: grpc.aio.ServicerContext[verifier_pb2.StatusRequest, verifier_pb2.StatusResponse],
    ) -> verifier_pb2.StatusResponse:
        """Configuration generation, hashes, last reload, degraded state, cache, uptime."""
        try:
            view = await asyncio.to_thread(self._control.status)
        except Exception as exc:
            log.exception("Status: internal error")
            await _abort(context, exc)
        return status_to_proto(view)

    async def Reload(
        self,
        request: verifier_pb2.ReloadRequest,
        context: grpc.aio.ServicerContext[verifier_pb2.ReloadRequest, verifier_pb2.ReloadResponse],
    ) -> verifier_pb2.ReloadResponse:
        """Reload now, exactly like SIGHUP; a failed reload is a result, not an RPC error."""
        try:
            view = await asyncio.to_thread(self._control.reload, "rpc")
        except Exception as exc:
            log.exception("Reload: internal error")
            await _abort(context, exc)
        return reload_to_proto(view)
