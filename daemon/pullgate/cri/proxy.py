"""CRI ``runtime.v1.ImageService`` proxy in front of the container runtime.

Implements docs/containerd.md §3 (CRI ImageService, kubelet ``imageServiceEndpoint``):

* Method paths are normalised as grpc-go routes them (:mod:`pullgate.cri.methods`); only
  ``runtime.v1.ImageService`` is served. Every other path -- malformed,
  ``runtime.v1.RuntimeService`` (exec, container creation: the kubelet never sends it here),
  ``runtime.v1alpha2.*`` (containerd 1.7 still serves it, with its own ``PullImage``),
  containerd's native API, health, reflection -- is refused with ``PERMISSION_DENIED``, logged
  and audited (``"event": "cri.refused"``): the proxy socket must never become an unverified
  path to the runtime's socket.
* Every ``runtime.v1.ImageService`` call, known method or not, is forwarded to the runtime's
  socket under its normalised path as opaque bytes, relayed as :mod:`pullgate.cri.relay`
  describes (metadata, deadline, status and cancellation). New CRI fields and methods
  therefore pass through, and ``ImageFsInfo`` answers whatever state pullgate's trust
  configuration is in (the kubelet refuses to start otherwise, §3.3).
* ``PullImage`` (matched on the normalised path) alone is decoded: the reference is
  normalised as the runtime does, the request's ``AuthConfig`` becomes the registry
  credentials, and the decision layer is asked. A denial is gRPC ``UNKNOWN`` with a message
  starting ``SignatureValidationFailed: `` or ``RegistryUnavailable: `` (§3.6,
  :mod:`pullgate.cri.denial`). An allowed pull forwards the *original* request bytes.
* Pinning (:mod:`pullgate.cri.pin`): after the runtime's pull of a tag returns, ``ImageStatus``
  must list the verified digest among the image's repo digests, else the image is removed and
  the pull denied; a failed or cancelled tag pull is checked the same way at once, and again in
  the background for ~30 s (:mod:`pullgate.cri.reconcile`: the runtime may store it later).
* Critical images (:mod:`pullgate.oci.critical`) skip verification; every use is audited
  (``"critical": true``) and logged at WARNING.
* Overlapped pulls (only with the container-start gate on, :mod:`pullgate.cri.overlap`): a
  verdict not known from memory is decided while the runtime pulls; a pull that ends first is
  answered at once, and a later deny removes the image; a tag allowed before the pull ends is
  answered at once too, its pin checked after the answer.

Threading: a synchronous gRPC server with its own pool of handler threads (256, started on
demand): one handler thread parses, decides, forwards over a blocking channel and pins, with
no hand-over (docs/decisions.md, "The CRI proxy is a synchronous gRPC server").
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import grpc

from pullgate.common.activity import Activity
from pullgate.cri.denial import Denial
from pullgate.cri.forwarder import RELAY_OPTIONS, Forwarder, within
from pullgate.cri.methods import CRI_SERVICE, PULL_IMAGE, grpc_target
from pullgate.cri.overlap import OverlapObserver, OverlappedPulls
from pullgate.cri.pin import (
    RuntimeImages,
    check_pin,
    clean_up,
    pinned_by_request,
    pulled_image,
)
from pullgate.cri.reconcile import RECHECK_AFTER, Reconciler
from pullgate.cri.relay import abort, answer_metadata, pass_back
from pullgate.cri.request import PullRequest, parse_pull_request
from pullgate.cri.router import Router
from pullgate.cri.verdict import Waiver, known_verdict, pull_verdict
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import MalformedInput, Reason
from pullgate.oci.critical import CriticalImages

log = logging.getLogger(__name__)

CALLER = "cri"
# Concurrent CRI calls (each pull in flight holds one; threads start only when needed). Beyond
# this, calls queue: the kubelet serialises pulls by default, and its parallel-pull limit is
# normally far below this.
HANDLER_THREADS = 256
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)

Decide = Callable[[DecisionRequest], Decision]
Known = Callable[[DecisionRequest], Decision | None]
Audit = Callable[[dict[str, Any]], None]


class CriProxy(Forwarder):
    """The CRI ImageService proxy (also the base of the RuntimeService gate,
    :class:`pullgate.cri.runtime_proxy.RuntimeProxy`, which reuses its forwarding).

    Args:
        upstream: the runtime's CRI socket: a path or a ``unix://`` URL.
        decide: the decision layer (synchronous, thread-safe; called on a handler thread).
        critical: allowlist entries that skip verification (see :mod:`pullgate.oci.critical`).
        recorder: audits what the proxy answers without the engine (critical images, requests
            that do not parse, refused methods); the engine records its own decisions.
        control_timeout: seconds allowed for the pin check's ImageStatus/RemoveImage calls.
        threads: handler threads (concurrent calls; a pull in flight holds one).
        recheck_after: seconds after a failed or cancelled tag pull at which its tag is checked
            again (see :mod:`pullgate.cri.reconcile`).
        waiver: break-glass for denied pulls (see :mod:`pullgate.cri.verdict`).
        overlap: let the runtime pull while pullgate decides (only with the start gate on;
            :mod:`pullgate.cri.overlap`).
        known: the decision layer's answer from memory alone (None: it would need I/O); a
            verdict known this way is acted on before the runtime is asked to pull.
        observer: counts overlapped pulls denied after their answer.
        gate_use: calls through the start gate; a pull is answered before its verdict only
            while they are recent (None: always).

    Raises:
        ConfigError: an invalid ``critical`` entry.
    """

    served = CRI_SERVICE  # named in refusals
    front = Front.CRI  # named in audit records and decision requests

    def __init__(
        self,
        upstream: str,
        decide: Decide,
        *,
        recorder: DecisionRecorder,
        critical: Sequence[str] = (),
        control_timeout: float = 30.0,
        threads: int = HANDLER_THREADS,
        recheck_after: Sequence[float] = RECHECK_AFTER,
        waiver: Waiver | None = None,
        overlap: bool = False,
        known: Known | None = None,
        observer: OverlapObserver | None = None,
        gate_use: Activity | None = None,
    ) -> None:
        self.upstream = upstream
        self._decide = decide
        self.critical = CriticalImages.parse(critical)
        self._recorder = recorder
        self._audit: Audit = recorder.audit_for(self.front)
        self._control_timeout = control_timeout
        self._images = RuntimeImages(self._control)
        self._threads = threads
        self._recheck_after = tuple(recheck_after)
        self.waiver = waiver
        self.overlap = overlap
        self._known, self._observer, self.gate_use = known, observer, gate_use
        # Decisions of overlapped pulls, while serving (None: the pull waits for its decision).
        self._overlap: OverlappedPulls | None = None
        self._reconciler = self._new_reconciler()
        self._channel: grpc.Channel | None = None
        self._relay: grpc.Channel | None = None
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pulls = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, socket_path: str | Path, mode: int = 0o660) -> None:
        """Connect (lazily) to the runtime and serve on ``socket_path`` with ``mode``.

        Raises:
            OSError: the socket path exists and is not a socket, or cannot be bound.
        """
        path = Path(socket_path)
        if path.is_symlink() or (path.exists() and not stat.S_ISSOCK(path.lstat().st_mode)):
            raise FileExistsError(f"{path} exists and is not a socket")
        path.unlink(missing_ok=True)  # a stale socket from a previous run
        channel, relay = self._open_channels()
        options = _OPTIONS
        executor = ThreadPoolExecutor(self._threads, thread_name_prefix="pullgate-cri")
        server = grpc.server(executor, handlers=[self.router()], options=options)
        try:
            if server.add_insecure_port(f"unix:{path}") == 0:
                raise OSError(f"cannot listen on {path}")
            server.start()
            os.chmod(path, mode)
        except BaseException:
            server.stop(None)
            executor.shutdown(wait=False)
            channel.close()
            relay.close()
            raise
        self._server, self._executor = server, executor
        self._connected(channel, relay)
        log.info("CRI proxy listening on %s, forwarding to %s", path, self.upstream)

    def _open_channels(self) -> tuple[grpc.Channel, grpc.Channel]:
        """The control channel and the forwarding channel (:data:`RELAY_OPTIONS`) to the
        runtime (connected lazily)."""
        target = grpc_target(self.upstream)
        channel = grpc.insecure_channel(target, options=_OPTIONS)
        relay = grpc.insecure_channel(target, options=[*_OPTIONS, *RELAY_OPTIONS])
        return channel, relay

    def _connected(self, channel: grpc.Channel, relay: grpc.Channel) -> None:
        """Take the runtime channels into use, with what serving needs beside them."""
        self._channel, self._relay = channel, relay
        if self.overlap:
            decide = partial(
                pull_verdict, self._decide, caller=CALLER, waiver=self.waiver, front=self.front
            )
            early = self.gate_use.recent if self.gate_use is not None else None
            self._overlap = OverlappedPulls(
                decide, self._images, self._audit, self._observer, caller=CALLER, early=early
            )
        self._reconciler = self._new_reconciler()  # a stopped proxy's takes no more watches

    def router(self) -> grpc.GenericRpcHandler:
        """What answers each call on the socket (see :class:`~pullgate.cri.router.Router`)."""
        return Router(self)

    def _new_reconciler(self) -> Reconciler:
        return Reconciler(partial(clean_up, self._images), self._recheck_after)

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls in flight get ``grace`` seconds to finish (None or 0: they are
        cancelled at once, as grpc does).

        grpc counts a call the caller cancelled as finished while its handler thread may still
        be deciding, pinning or removing an image; those threads are waited for too, within the
        same grace, and so are re-checks of failed pulls that fall due within it (later ones are
        dropped, logged). The runtime channel is closed only once every handler thread and the
        re-check in progress are done (in the background if that takes longer than the grace),
        so a pin's ``RemoveImage`` is never cut off by a shutdown. Decisions of overlapped pulls
        get the same grace (:meth:`~pullgate.cri.overlap.OverlappedPulls.close`).
        """
        server, self._server = self._server, None
        executor, self._executor = self._executor, None
        deadline = time.monotonic() + (grace or 0.0)
        if server is not None:
            stopped = server.stop(grace)
            await asyncio.to_thread(stopped.wait)
        overlap, self._overlap = self._overlap, None
        if overlap is not None:  # before the handlers: some may wait for a verdict
            await asyncio.to_thread(overlap.close, deadline)
        done = True
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
            if not await within(deadline, executor.shutdown):
                log.warning("CRI proxy stopped with handler threads still running")
                done = False
        rechecks = self._reconciler.close(deadline)
        if done and rechecks is not None and not await within(deadline, rechecks.join):
            log.warning("CRI proxy stopped with a re-check of a failed pull still running")
            done = False
        if done:
            self._close_channel()
            return
        threading.Thread(
            target=self._close_after, args=(executor, rechecks), name="pullgate-cri-close"
        ).start()

    # -- PullImage --------------------------------------------------------------------------------

    @property
    def pulls_in_flight(self) -> int:
        """``PullImage`` calls being handled right now (deciding, pulling or pinning)."""
        with self._lock:
            return self._pulls

    def pull_image(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Gate one ``PullImage``: verify, forward the original bytes, pin the digest."""
        with self._lock:
            self._pulls += 1
        try:
            return self._pull_image(request, context)
        finally:
            with self._lock:
                self._pulls -= 1

    def _pull_image(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            pull = parse_pull_request(request)
        except MalformedInput as exc:
            self._recorder.refused("", exc.reason, exc.detail, front=self.front, caller=CALLER)
            self._deny(context, Denial.from_error(exc), image="")
        entry = self.critical.match(pull.reference)
        if entry is not None:
            log.warning(
                "CRI pull of %s allowed WITHOUT verification: critical image entry %r",
                pull.reference,
                entry,
            )
            self._emit_audit(
                {
                    "event": "cri.pull",
                    "critical": True,
                    "decision": "allow",
                    "reason": Reason.SKIPPED_BY_POLICY.value,
                    "reference": str(pull.reference),
                    "image": pull.image,
                    "allowlist_entry": entry,
                    "pod": pull.pod,
                    "caller": CALLER,
                }
            )
            return self.forward(PULL_IMAGE, request, context)
        overlap = self._overlap
        if overlap is not None:
            known = None
            if self._known is not None:  # a verdict in memory, else None: decide while pulling
                known = known_verdict(self._known, pull, CALLER, self.waiver, self.front)
            if known is None:  # not known without I/O: pull while deciding
                return self._overlapped(overlap, pull, request, context)
            if isinstance(known, Denial):  # known denied: nothing is pulled
                self._deny(context, known, image=pull.image)
            decision = known
        else:
            decision = self._decision(pull, context)
        return self._forward_decided(pull, decision, request, context)

    def _forward_decided(
        self, pull: PullRequest, decision: Decision, request: bytes, context: grpc.ServicerContext
    ) -> bytes:
        """Forward a pull decided before it was sent, and pin it."""
        if not context.is_active():  # the caller gave up while pullgate was deciding
            log.info("CRI pull of %s cancelled by the caller before it was forwarded", pull.image)
            abort(context, grpc.StatusCode.CANCELLED, "cancelled by the caller")
        pin = bool(decision.digest) and not pinned_by_request(pull, decision.digest)
        try:
            response, call = self._send(PULL_IMAGE, request, context)
        except grpc.FutureCancelledError:
            if pin:
                self._clean_up(pull, decision.digest)
            abort(context, grpc.StatusCode.CANCELLED, "cancelled by the caller")
        except grpc.RpcError as err:
            if pin:
                self._clean_up(pull, decision.digest)
            pass_back(err, context)
        return self._pinned(pull, decision, response, call, context)

    def _overlapped(
        self,
        overlap: OverlappedPulls,
        pull: PullRequest,
        request: bytes,
        context: grpc.ServicerContext,
    ) -> bytes:
        """The runtime's pull runs while pullgate decides (:mod:`pullgate.cri.overlap`): a
        verdict in by the pull's end is acted on as always, else the answer may go first."""
        job = overlap.begin(pull)
        if job is None:  # stopping: decide first
            return self._forward_decided(pull, self._decision(pull, context), request, context)
        try:  # the decision starts once the pull is under way (it then competes for the GIL)
            response, call = self._send(PULL_IMAGE, request, context, partial(overlap.run, job))
        except (grpc.FutureCancelledError, grpc.RpcError) as err:
            overlap.failed(job, self._clean_up)
            if isinstance(err, grpc.FutureCancelledError):
                abort(context, grpc.StatusCode.CANCELLED, "cancelled by the caller")
            pass_back(err, context)
        verdict = overlap.detach(job, response)
        if verdict is None:  # answered before the verdict: the start gate holds the image
            answer_metadata(call, context)
            return response
        if isinstance(verdict, Denial):
            self._images.remove(pulled_image(response) or str(pull.reference))
            self._deny(context, verdict, image=pull.image)
        return self._pinned(pull, verdict, response, call, context)

    def _pinned(
        self,
        pull: PullRequest,
        decision: Decision,
        response: bytes,
        call: grpc.Call,
        context: grpc.ServicerContext,
    ) -> bytes:
        """The runtime's answer to an allowed pull, once the pin holds (see :mod:`.pin`)."""
        pin = bool(decision.digest) and not pinned_by_request(pull, decision.digest)
        if pin:
            denial = check_pin(self._images, pull, decision.digest, response)
            if denial is not None:
                self._deny(context, denial, image=pull.image)
        answer_metadata(call, context)
        return response

    def _clean_up(self, pull: PullRequest, digest: str) -> None:
        """After a failed or cancelled tag pull: check the tag now, and again in the background
        (the runtime may store the image after the call ended)."""
        clean_up(self._images, pull, digest)
        self._reconciler.watch(pull, digest)

    def _decision(self, pull: PullRequest, context: grpc.ServicerContext) -> Decision:
        """The decision layer's answer; anything but an allow ends the call with a denial."""
        verdict = pull_verdict(self._decide, pull, CALLER, self.waiver, self.front)
        if isinstance(verdict, Denial):
            self._deny(context, verdict, image=pull.image)
        return verdict

    def _deny(self, context: grpc.ServicerContext, denial: Denial, *, image: str) -> NoReturn:
        log.warning("CRI pull of %r denied: %s", image, denial.text)
        abort(context, grpc.StatusCode.UNKNOWN, denial.text)
