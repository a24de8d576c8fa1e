"""``pullgate.v1.Verifier``: a thin translation layer (docs/architecture.md §3.1).

``Verify`` checks the request (:mod:`.convert`), asks the decision engine and converts the
:class:`~pullgate.decision.model.Decision` back. An engine with ``decide_async`` (the real
decider, :meth:`pullgate.decision.decider.Decider.decide_async`) answers warm requests on the
event loop and single-flights cold ones at the asyncio level (joiners wait on the loop, never
in a worker thread; docs/decisions.md, "Single-flight at the asyncio level"). Any other engine
runs in a worker thread (``asyncio.to_thread``: verification is CPU-bound and blocking,
docs/architecture.md §3.5).

**Bad requests are answered, not aborted.** An empty or unparsable reference, a bad digest,
platform or ``auth`` value yields ``VerifyResponse(allowed=false, reason="MALFORMED")``; a
domain error escaping the decider yields a deny with that error's reason; anything unexpected
a deny with ``INTERNAL`` (logged with its traceback). Integrators therefore always get a
decision to enforce through the stable ``allowed``/``reason`` fields, exactly as for any other
deny, and the RPC itself fails only when the transport does. ``Status`` and ``Reload`` abort
through the one table in :mod:`.status` if their backends raise.

**The served ``Verify`` answers with bytes.** :func:`verifier_handlers` registers
:meth:`VerifierServicer.verify_wire` for ``Verify``, with a response serializer that passes
``bytes`` through: request conversion and response encoding go through the memos of
:class:`~pullgate.service.convert.RequestConverter` and
:class:`~pullgate.service.convert.ResponseEncoder`, so a warm pull of a warm image pays neither
the reference normalisation nor building and serializing a ~1.3 KB response again. The bytes
are exactly those of the message :meth:`VerifierServicer.Verify` returns for the same decision.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar, runtime_checkable

import grpc

from pullgate.common.activity import Activity
from pullgate.config import CacheConfig
from pullgate.decision.model import BINDIR_CALLER, Decision, DecisionRequest, Front
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import PullgateError, Reason, is_inconclusive
from pullgate.service.convert import (
    ReloadView,
    RequestConverter,
    ResponseEncoder,
    StatusView,
    decision_to_proto,
    denial_to_proto,
    reload_to_proto,
    status_to_proto,
)
from pullgate.service.metrics import Metrics
from pullgate.service.status import status_for_error
from pullgate.start.gate import StartGate
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


@runtime_checkable
class CachedDecisionEngine(Protocol):
    """An engine that can answer from memory alone (None when the answer needs I/O)."""

    def decide_cached(self, request: DecisionRequest) -> Decision | None:
        """The known answer, recorded, or None."""
        ...


class DaemonControl(Protocol):
    """What ``Status`` and ``Reload`` need (the composition root adapts the trust state)."""

    def status(self) -> StatusView:
        """The current status."""
        ...

    def reload(self, reason: str) -> ReloadView:
        """Reload now (blocking); the result of this attempt."""
        ...


@runtime_checkable
class QueuedReloads(Protocol):
    """A control whose reloads are queued and coalesced
    (:class:`pullgate.trust.queue.ReloadQueue`): ``Reload`` and SIGHUP then wait on a future
    instead of holding a worker thread."""

    def request_reload(self, reason: str) -> Future[ReloadView]:
        """Ask for a reload; the future completes with one that starts after this call."""
        ...


_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerParts:
    """What the gRPC server serves (the composition root builds them; tests use fakes)."""

    engine: DecisionEngine
    control: DaemonControl
    recorder: DecisionRecorder  # audits and counts every decision (docs/architecture.md §3.9)
    metrics: Metrics | None = None
    gate: StartGate | None = None  # the container-start gate's core (front ends share it)
    gate_use: Activity | None = None  # calls through the RuntimeService gate (overlapped pulls)
    cache: CacheConfig = field(default_factory=CacheConfig)  # sizes the wire memos (at start)


async def _abort(context: grpc.aio.ServicerContext[_Req, _Resp], exc: Exception) -> NoReturn:
    status = status_for_error(exc)
    await context.abort(status.code, status.details)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


class VerifierServicer(verifier_pb2_grpc.VerifierServicer):
    """The ``pullgate.v1.Verifier`` service.

    Args:
        engine: the decider.
        control: status and reload.
        recorder: records requests denied before the engine sees them (malformed); the
            engine records its own answers, and the errors it raises, through the same one.
    """

    def __init__(
        self,
        engine: DecisionEngine,
        control: DaemonControl,
        *,
        recorder: DecisionRecorder,
        cache: CacheConfig | None = None,
    ) -> None:
        cache = cache or CacheConfig()
        self._engine = engine
        self._async_engine = engine if isinstance(engine, AsyncDecisionEngine) else None
        self._control = control
        self._queued = control if isinstance(control, QueuedReloads) else None
        self._recorder = recorder
        self._convert = RequestConverter(cache.request_entries)
        self._encode = ResponseEncoder(cache.response_entries)

    def _refuse(
        self, message: verifier_pb2.VerifyRequest, reason: Reason, detail: str
    ) -> verifier_pb2.VerifyResponse:
        """The answer to a request that did not convert (recorded here: the engine never saw
        it)."""
        front = Front.SHIM if message.caller == BINDIR_CALLER else Front.GRPC
        self._recorder.refused(
            message.reference, reason, detail, front=front, caller=message.caller
        )
        return self._deny(message, reason, detail)

    @staticmethod
    def _deny(
        message: verifier_pb2.VerifyRequest, reason: Reason, detail: str
    ) -> verifier_pb2.VerifyResponse:
        """The answer to a request the engine raised for (it recorded that)."""
        inconclusive = is_inconclusive(reason)
        return denial_to_proto(message.reference, reason.value, detail, inconclusive=inconclusive)

    async def _decide(
        self, request: verifier_pb2.VerifyRequest
    ) -> Decision | verifier_pb2.VerifyResponse:
        """The decision for ``request``, or the deny answer of a request that got none."""
        try:
            decision_request = self._convert(request)
        except PullgateError as exc:
            return self._refuse(request, exc.reason, exc.detail)
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
        return decision

    async def Verify(
        self,
        request: verifier_pb2.VerifyRequest,
        context: grpc.aio.ServicerContext[verifier_pb2.VerifyRequest, verifier_pb2.VerifyResponse],
    ) -> verifier_pb2.VerifyResponse:
        """Decide one pull (never raises for bad input: see the module docstring)."""
        answer = await self._decide(request)
        if isinstance(answer, verifier_pb2.VerifyResponse):
            return answer
        return decision_to_proto(answer)

    async def verify_wire(
        self,
        request: verifier_pb2.VerifyRequest,
        context: grpc.aio.ServicerContext[verifier_pb2.VerifyRequest, bytes],
    ) -> bytes:
        """:meth:`Verify`, answered as the serialized ``VerifyResponse`` (what is served)."""
        answer = await self._decide(request)
        if isinstance(answer, verifier_pb2.VerifyResponse):
            return answer.SerializeToString()
        return self._encode(answer)

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
        """Reload, exactly like SIGHUP; a failed reload is a result, not an RPC error. The answer
        is that of a reload that started after this call (coalesced with other triggers)."""
        try:
            if self._queued is not None:
                view = await asyncio.wrap_future(self._queued.request_reload("rpc"))
            else:
                view = await asyncio.to_thread(self._control.reload, "rpc")
        except Exception as exc:
            log.exception("Reload: internal error")
            await _abort(context, exc)
        return reload_to_proto(view)


def _serialize(message: bytes | verifier_pb2.VerifyResponse) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def verifier_handlers(servicer: VerifierServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The ``pullgate.v1.Verifier`` method handlers, ``Verify`` served by
    :meth:`VerifierServicer.verify_wire` (bytes passed through; see the module docstring)."""
    return {
        "Verify": grpc.unary_unary_rpc_method_handler(
            servicer.verify_wire,
            request_deserializer=verifier_pb2.VerifyRequest.FromString,
            response_serializer=_serialize,
        ),
        "Status": grpc.unary_unary_rpc_method_handler(
            servicer.Status,
            request_deserializer=verifier_pb2.StatusRequest.FromString,
            response_serializer=verifier_pb2.StatusResponse.SerializeToString,
        ),
        "Reload": grpc.unary_unary_rpc_method_handler(
            servicer.Reload,
            request_deserializer=verifier_pb2.ReloadRequest.FromString,
            response_serializer=verifier_pb2.ReloadResponse.SerializeToString,
        ),
    }
