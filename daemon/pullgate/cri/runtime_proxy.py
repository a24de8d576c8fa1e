"""The container-start gate on the CRI: a ``runtime.v1.RuntimeService`` proxy.

The kubelet's ``containerRuntimeEndpoint`` points here. Every call is forwarded to the runtime
as opaque bytes, with its metadata, deadline, status and cancellation, by the image proxy's own
machinery (:class:`pullgate.cri.proxy.CriProxy`, whose handler threads also keep a pass-through
call from ever waiting behind a decision); ``runtime.v1.ImageService`` is served too, exactly as
the image proxy serves it (a kubelet without ``imageServiceEndpoint`` sends image calls to the
runtime endpoint). ``CreateContainer`` and ``StartContainer`` are decided (the methods of
:meth:`RuntimeProxy.gated`, the one table both transports read), ``CreateContainer`` so:

1. ``ContainerConfig.image`` names the image (an image ID from the kubelet, a reference from
   crictl), ``user_specified_image`` what the pod asked for (the image string when empty);
2. an image ID is the config digest the runtime will start; a reference is resolved to one
   through the runtime's ``ImageStatus`` (an image it does not know is denied
   ``IMAGE_UNKNOWN``), which also gives the repo digests and tags verification may need;
3. the start gate (:class:`pullgate.start.gate.StartGate`) decides, on the container's image and
   then every image it mounts as a volume (:mod:`pullgate.cri.mount_images`); a denial is gRPC
   ``UNKNOWN`` with ``SignatureValidationFailed: <REASON>: … (fix: …)`` (or
   ``RegistryUnavailable: `` when a retry may help), which the kubelet reports as
   ``CreateContainerError``;
4. an allowed request that named a reference reaches the runtime pinned to the image ID it was
   decided on (:func:`pin_create_request`), so a tag moved meanwhile changes nothing; the
   kubelet's image-ID requests are forwarded as sent.

``StartContainer`` is decided again by the same rules on the image the container holds, so a
container created under an allow that has since lapsed does not start
(:mod:`pullgate.cri.container_start`). ``RunPodSandbox`` is not gated: the sandbox image is the
runtime's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import grpc

from pullgate.common.activity import Activity
from pullgate.common.descriptor import image_id
from pullgate.cri.container_start import (
    CREATED_CAPACITY,
    ContainerStart,
    CreatedImages,
    Names,
    StartAnswer,
    StartChecks,
)
from pullgate.cri.containers import RuntimeContainers
from pullgate.cri.create_request import (
    CreateRequest,
    create_image,
    names_tag,
    parse_create_request,
    pin_create_request,
)
from pullgate.cri.methods import (
    CREATE_CONTAINER,
    CRI_SERVICE,
    PULL_IMAGE,
    RUNTIME_SERVICE,
    START_CONTAINER,
)
from pullgate.cri.mount_images import decide_image, decide_mounts, quick_mounts
from pullgate.cri.overlap import OverlapObserver
from pullgate.cri.proxy import HANDLER_THREADS, CriProxy, Decide, Known
from pullgate.cri.relay import abort
from pullgate.cri.router import Router, Unary
from pullgate.cri.splice.gate import gate_routes
from pullgate.cri.splice.routes import TAKE_OVER, Refusal, Route, TakeOver, Verdict
from pullgate.cri.splice.server import SpliceServer
from pullgate.cri.splice.settle import Settle
from pullgate.cri.verdict import Waiver
from pullgate.decision.model import Front
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import MalformedInput, Reason

__all__ = [
    "CreateRequest",
    "Names",
    "RuntimeProxy",
    "StartAnswer",
    "StartChecks",
    "names_tag",
    "parse_create_request",
    "pin_create_request",
]

log = logging.getLogger(__name__)

FRONT = Front.RUNTIME_GATE.value  # named in start records
SERVICES = (RUNTIME_SERVICE, CRI_SERVICE)
DENIAL_CODE = grpc.StatusCode.UNKNOWN  # what a refused start ends with (the kubelet's contract)
SPLICE = "splice"
GRPC = "grpc"
TRANSPORTS = (SPLICE, GRPC)


class RuntimeProxy(CriProxy):
    """The RuntimeService gate (see the module docstring).

    Args:
        upstream: the runtime's CRI socket.
        decide: the decision layer, for the ImageService calls served here too.
        gate: decides container starts.
        critical: critical-image entries for pulls (starts take the gate's own).
        recorder: as for :class:`~pullgate.cri.proxy.CriProxy`.
        waiver, overlap, known, observer, gate_use: as for :class:`~pullgate.cri.proxy.CriProxy`
            (``gate_use`` is told of every pass-through call: the image proxy shares it).
        passthrough: receives the seconds each forwarded (undecided) unary call took.
        transport: ``"splice"`` (HTTP/2 frames relayed, :mod:`pullgate.cri.splice`) or
            ``"grpc"`` (grpcio's server, every call re-issued to the runtime).
        created_entries: created containers whose decided image is remembered
            (``[cache] created_container_entries``).
    """

    served = f"{RUNTIME_SERVICE} and {CRI_SERVICE}"
    front = Front.RUNTIME_GATE

    def __init__(
        self,
        upstream: str,
        decide: Decide,
        gate: StartChecks,
        *,
        recorder: DecisionRecorder,
        critical: Sequence[str] = (),
        control_timeout: float = 30.0,
        threads: int = HANDLER_THREADS,
        waiver: Waiver | None = None,
        overlap: bool = False,
        known: Known | None = None,
        observer: OverlapObserver | None = None,
        gate_use: Activity | None = None,
        passthrough: Callable[[float], None] | None = None,
        transport: str = SPLICE,
        created_entries: int = CREATED_CAPACITY,
    ) -> None:
        super().__init__(
            upstream,
            decide,
            recorder=recorder,
            critical=critical,
            control_timeout=control_timeout,
            threads=threads,
            waiver=waiver,
            overlap=overlap,
            known=known,
            observer=observer,
            gate_use=gate_use,
        )
        self.gate = gate
        self._passthrough = gate_use.noting(passthrough) if gate_use else passthrough
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown runtime gate transport {transport!r}")
        self.transport = transport
        self._splice: SpliceServer | None = None
        self._created = CreatedImages(created_entries)
        self._start = ContainerStart(
            gate, RuntimeContainers(self._control), self._images, self._created
        )
        self._decided = frozenset(self.gated())

    async def start(self, socket_path: str | Path, mode: int = 0o660) -> None:
        """Serve on ``socket_path`` with the configured transport (see :data:`TRANSPORTS`).

        Raises:
            OSError: the socket path exists and is not a socket, or cannot be bound.
        """
        if self.transport == GRPC:
            await super().start(socket_path, mode)
            return
        channel, relay = self._open_channels()  # the gate's own calls (ImageStatus)
        server = SpliceServer(self.upstream, self._splice_routes(), observe=self._passthrough)
        try:
            server.start(socket_path, mode)
        except BaseException:
            channel.close()
            relay.close()
            raise
        self._splice = server
        self._connected(channel, relay)
        log.info("runtime gate (splice) on %s, forwarding to %s", socket_path, self.upstream)

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving (see :meth:`pullgate.cri.proxy.CriProxy.stop`). The splice transport's
        workers still running past ``grace`` (a pull being pinned) are waited for like grpcio's
        handler threads: the runtime channels close only after them."""
        splice, self._splice = self._splice, None
        if splice is not None:
            running = await asyncio.to_thread(splice.stop, grace)
            if running is not None:
                self._executor = running
        await super().stop(grace)

    def _splice_routes(self) -> Callable[[bytes], Route]:
        verdicts: dict[str, Verdict] = {
            method: partial(_refusal, judge) for method, judge in self.verdicts().items()
        }
        verdicts[CREATE_CONTAINER] = self._splice_create
        return gate_routes(
            services=SERVICES,
            gated=self.gated(),
            verdicts=verdicts,
            quick={CREATE_CONTAINER: self._quick_create},
            refusal_text=self.refusal_text,
        )

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Forward unchanged, timing pass-through calls (``passthrough`` gets the seconds)."""
        observe = self._passthrough
        if observe is None or method in self._decided:
            return super().forward(method, request, context)
        started = time.perf_counter()
        try:
            return super().forward(method, request, context)
        finally:
            observe(time.perf_counter() - started)

    def gated(self) -> dict[str, Unary]:
        """The decided methods and their handlers: the one table both transports read (grpc
        routes these to the handlers; splice holds or answers them, :meth:`verdicts`); every
        other method passes through and never waits on a decision."""
        return {
            PULL_IMAGE: self.pull_image,
            CREATE_CONTAINER: self.create_container,
            START_CONTAINER: self.start_container,
        }

    def verdicts(self) -> dict[str, Callable[[bytes], StartAnswer]]:
        """The gated methods decided before their request is forwarded unchanged, and the
        verdict on a request's bytes (the splice transport holds the request until it)."""
        return {CREATE_CONTAINER: self.start_verdict, START_CONTAINER: self._start.verdict}

    def router(self) -> grpc.GenericRpcHandler:
        """RuntimeService and ImageService; the :meth:`gated` methods decided."""
        return Router(self, services=SERVICES, gated=self.gated())

    def create_container(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Gate one ``CreateContainer``: forward it only when allowed, a tag-form request pinned
        to the image ID it was decided on (:func:`pin_create_request`)."""
        answer = self.start_verdict(request)
        if not answer.allowed:
            abort(context, DENIAL_CODE, answer.denial.text)
        return self.forward(CREATE_CONTAINER, pin_create_request(request, answer.image_id), context)

    def _splice_create(self, request: bytes) -> Refusal | TakeOver | None:
        """The splice transport's verdict on a ``CreateContainer``: the kubelet's image-ID form
        is decided and forwarded as held; a tag-form request is handed to
        :meth:`create_container`, which pins it before the runtime resolves the tag again."""
        try:
            create = parse_create_request(request)
        except MalformedInput as exc:
            return _refused(self._malformed(exc))
        if image_id(create.image) is None:
            return TAKE_OVER
        return _refused(self._verdict(create))

    def _quick_create(self, request: bytes) -> Settle | None:
        """The splice transport's memory-only allow of a ``CreateContainer`` (the kubelet's
        image-ID form with a current allow: :meth:`pullgate.start.gate.StartGate.current_allow`,
        for its image and every image it mounts, :func:`quick_mounts`),
        taken on the relay thread so the request goes out at once; returns what counts and
        audits it (the same answer :meth:`start_verdict` gives). None: the worker decides."""
        fields = create_image(request)
        if fields is None:
            return None
        image, asked, key, mounts = fields
        decided = image_id(image)
        if decided is None:
            return None
        settle: Settle | None = self.gate.current_allow(decided, asked, front=FRONT)
        if settle is not None and mounts:
            mounted = quick_mounts(self.gate, mounts, front=FRONT)
            settle = None if mounted is None else partial(_settle_all, settle, mounted)
        if settle is not None:
            self._created.remember(key, decided)  # before the runtime can answer
        return settle

    def start_container(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Gate one ``StartContainer``: forward the original bytes only when allowed."""
        answer = self._start.verdict(request)
        if not answer.allowed:
            abort(context, DENIAL_CODE, answer.denial.text)
        return self.forward(START_CONTAINER, request, context)

    def start_verdict(self, request: bytes) -> StartAnswer:
        """The gate's answer for one serialized ``CreateContainerRequest`` (logged; an
        undecodable one is answered as an unknown image)."""
        try:
            create = parse_create_request(request)
        except MalformedInput as exc:
            return self._malformed(exc)
        return self._verdict(create)

    def _malformed(self, exc: MalformedInput) -> StartAnswer:
        log.warning("CreateContainer refused: %s", exc.detail)
        answer = self.gate.deny_unknown("", "", exc.detail, front=FRONT)
        if not answer.allowed:
            self._log_refusal(answer, create=None)
        return answer

    def _verdict(self, create: CreateRequest) -> StartAnswer:
        answer = self.decide_start(create)
        decided = image_id(answer.image_id) if answer.allowed else None
        if decided is not None:  # what StartContainer will hold the container to
            self._created.remember(create.key, decided)
        else:
            self._created.forget(create.key)
        if not answer.allowed:
            self._log_refusal(answer, create=create)
        elif answer.break_glass or answer.critical:
            log.warning(
                "container %s of %s started under %s",
                create.container,
                create.pod,
                answer.reason.value,
            )
        return answer

    def decide_start(self, create: CreateRequest) -> StartAnswer:
        """The gate's answer for ``create``: its image (:func:`decide_image`), then, once that
        is allowed, every image it mounts (:func:`decide_mounts`: the first denied answers)."""
        answer = decide_image(self.gate, self._images, create.image, create.asked, front=FRONT)
        if not answer.allowed or not create.mounts:
            return answer
        denied = decide_mounts(self.gate, self._images, create.mounts, front=FRONT)
        return answer if denied is None else denied

    def _log_refusal(self, answer: StartAnswer, *, create: CreateRequest | None) -> None:
        where = f" ({create.pod} {create.container})" if create is not None else ""
        text = answer.denial.text
        log.warning("CreateContainer of %r%s denied: %s", answer.reference, where, text)
        if answer.reason is Reason.INTERNAL:
            log.error("start gate internal error for %r", answer.reference)


def _settle_all(settle: Settle, mounted: Sequence[Settle]) -> object:
    """Settle a quick allow's container image, then its mounted images; the container's answer."""
    answer = settle()
    for each in mounted:
        each()
    return answer


def _refusal(judge: Callable[[bytes], StartAnswer], request: bytes) -> Refusal | None:
    """A verdict as the splice transport takes it: None to allow, else the refusal the grpcio
    transport would answer."""
    return _refused(judge(request))


def _refused(answer: StartAnswer) -> Refusal | None:
    if answer.allowed:
        return None
    return Refusal(DENIAL_CODE.value[0], answer.denial.text)
