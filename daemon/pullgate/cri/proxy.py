"""CRI ``runtime.v1.ImageService`` proxy in front of the container runtime (issue 6 items 1-3).

Implements containerd-integration.md §3 (CRI ImageService, kubelet ``imageServiceEndpoint``):

* The method path is normalised first, the way grpc-go (containerd's server) routes it: at most
  one leading ``/`` is dropped, and what remains must be exactly ``<service>/<method>`` with
  both parts proto identifiers. Only services named ``runtime.v1.*`` (the CRI API the kubelet
  speaks) are served; every other path -- malformed, ``runtime.v1alpha2.*`` (containerd 1.7
  still serves it, with its own ``PullImage``), containerd's native API
  (``containerd.services.*``: transfer, images, content, ...), health, reflection -- is refused
  with ``PERMISSION_DENIED``, logged and audited (``"event": "cri.refused"``). The proxy socket
  must never become an unverified path to the runtime's socket.
* Every call of a ``runtime.v1.*`` service, known method or not, is forwarded to the runtime's
  socket under its normalised path as opaque bytes (identity serializers), with the caller's
  metadata and remaining deadline; the runtime's status code, details and metadata come back
  unchanged. New CRI fields and methods therefore pass through, and ``ImageFsInfo`` answers
  whatever state pullgate's trust configuration is in (the kubelet refuses to start otherwise,
  §3.3).
* ``PullImage`` (matched on the normalised path) alone is decoded: the reference is
  normalised as the runtime does, the request's ``AuthConfig`` becomes the registry
  credentials, and the decision layer is asked. A denial is gRPC ``UNKNOWN`` with a message starting
  ``SignatureValidationFailed: `` or ``RegistryUnavailable: `` (§3.6,
  :mod:`pullgate.cri.denial`). An allowed pull forwards the *original* request bytes.
* Pinning: after the runtime's pull returns, ``ImageStatus`` must list
  ``<registry>/<repository>@<verified digest>`` among the image's repo digests. If the tag moved
  between verification and pull, the image is removed again and the pull denied. A pull that
  names the image by the very digest pullgate verified needs no such check (the runtime fetches
  content by digest and checks it, so it can only have pulled exactly that), and gets none: one
  ``ImageStatus`` round trip less on the pull path.
* Critical images (:mod:`pullgate.cri.critical`) skip verification; every use is audited
  (``"critical": true``) and logged at WARNING.

Threading: the proxy is a synchronous gRPC server with its own pool of handler threads, not a
``grpc.aio`` server on the daemon's event loop. Every call the kubelet makes costs a hop in and
a hop out to the runtime, plus, for a pull, the decision and the pin's ``ImageStatus``; each
hop through ``grpc.aio`` and each hand-over between the loop and a worker thread is a wake-up
on the pull path (``bench/pull.py`` measured ~2 ms per allowed pull with an instant decision,
against ~1.2 ms with this design). Here a handler thread parses, decides (the decision layer is
synchronous and thread-safe, with its own single-flight), forwards over a blocking channel and
pins, without handing over. Long pulls hold a handler thread each; the pool (256, started on
demand) is sized so that a hundred parallel pulls still leave threads for ``ImageFsInfo`` and
``ImageStatus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, Protocol

import grpc
from google.protobuf.message import DecodeError

from pullgate.cri.critical import CriticalImages
from pullgate.cri.denial import Denial, DenialKind
from pullgate.cri.request import PullRequest, parse_pull_request
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import MalformedInput, PullgateError, Reason
from pullgate.server.audit import AuditLog

log = logging.getLogger(__name__)

CRI_SERVICE_PREFIX = "runtime.v1."
PULL_IMAGE = "/runtime.v1.ImageService/PullImage"
IMAGE_STATUS = "/runtime.v1.ImageService/ImageStatus"
REMOVE_IMAGE = "/runtime.v1.ImageService/RemoveImage"
# Server-streaming CRI methods (forwarded as such); anything else unknown is unary-unary.
SERVER_STREAMING = frozenset(
    {
        "/runtime.v1.ImageService/StreamImages",
        "/runtime.v1.RuntimeService/GetContainerEvents",
    }
)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CALLER = "cri"
# Concurrent CRI calls (each pull in flight holds one; threads start only when needed). Beyond
# this, calls queue: the kubelet serialises pulls by default, and its parallel-pull limit is
# normally far below this.
HANDLER_THREADS = 256
# A remaining time above this is "no deadline" (grpc's sync server reports ~9.2e18 seconds).
_NO_DEADLINE = 10.0**9

# Metadata keys gRPC manages itself; forwarding them would be rejected or wrong.
_RESERVED_METADATA = frozenset(
    {
        "content-type",
        "te",
        "host",
        "user-agent",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
        "grpc-status",
        "grpc-message",
    }
)

# A proto service (dotted identifiers) and method (one identifier), as grpc-go splits a path.
_SERVICE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_METHOD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWN_PATH = 256  # characters of a refused path that reach logs and audit records

MetadataPairs = tuple[tuple[str, str | bytes], ...]
Decide = Callable[[DecisionRequest], Decision]
Audit = Callable[[dict[str, Any]], None]


def _forwardable(metadata: Iterable[Any] | None) -> MetadataPairs:
    out: list[tuple[str, str | bytes]] = []
    for key, value in metadata or ():
        name = str(key).lower()
        if name.startswith(":") or name in _RESERVED_METADATA:
            continue
        out.append((name, value))
    return tuple(out)


def normalise_method(raw: object) -> str:
    """The canonical ``/<service>/<method>`` form of a gRPC ``:path``.

    grpc-go drops one leading ``/`` and routes on the rest, so ``runtime.v1.ImageService/PullImage``
    reaches the runtime as ``PullImage``; the proxy must see it the same way.

    Raises:
        MalformedInput: not text, empty service or method part, more than one ``/`` after the
            leading one, or a part that is not a proto identifier.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedInput("gRPC method path is not ASCII") from exc
    if not isinstance(raw, str):
        raise MalformedInput("gRPC method path is not text")
    body = raw[1:] if raw.startswith("/") else raw
    service, sep, name = body.partition("/")
    if not sep or not _SERVICE.fullmatch(service) or not _METHOD.fullmatch(name):
        raise MalformedInput(f"gRPC method path {raw[:_SHOWN_PATH]!r} is not /<service>/<method>")
    return f"/{service}/{name}"


def is_cri_method(method: str) -> bool:
    """True for a normalised path of a ``runtime.v1.*`` service (the only ones served)."""
    return method.startswith("/" + CRI_SERVICE_PREFIX)


def grpc_target(upstream: str) -> str:
    """A gRPC target for the runtime: ``unix:///run/x.sock``, ``unix:/run/x.sock`` or a path."""
    return upstream if upstream.startswith("unix:") else f"unix:{upstream}"


def _identity(data: bytes) -> bytes:
    return data


def _remaining(context: grpc.ServicerContext) -> float | None:
    """The caller's remaining deadline in seconds, or None when it set none (the kubelet's
    ``PullImage`` sets none)."""
    remaining = context.time_remaining()
    return None if remaining > _NO_DEADLINE else float(remaining)


def _pinned_by_request(pull: PullRequest, verified: str) -> bool:
    """True when the request itself names the verified digest (the pull is content-addressed).

    The runtime resolves a ``name@digest`` reference to exactly that manifest and checks the bytes
    against the digest, so what it pulls is what pullgate verified; a tag (``name:tag``) may move
    between verification and pull, and is checked after the pull instead.
    """
    return bool(pull.reference.digest) and pull.reference.digest == verified


class _Router(grpc.GenericRpcHandler):
    """Routes every method: PullImage to the gate, other CRI methods straight through, the rest
    to a refusal."""

    def __init__(self, proxy: CriProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        raw: object = handler_call_details.method
        proxy = self._proxy
        try:
            method = normalise_method(raw)
        except MalformedInput as exc:
            return _refusal(proxy, raw, f"malformed method path: {exc}")
        if not is_cri_method(method):
            return _refusal(
                proxy, raw, f"{method} is not a {CRI_SERVICE_PREFIX}* CRI service method"
            )
        if method == PULL_IMAGE:
            return grpc.unary_unary_rpc_method_handler(proxy.pull_image)
        if method in SERVER_STREAMING:

            def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                return proxy.forward_stream(method, request, context)

            return grpc.unary_stream_rpc_method_handler(stream)

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return proxy.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(unary)


def _refusal(proxy: CriProxy, raw: object, why: str) -> Any:
    """A handler that refuses the call with ``PERMISSION_DENIED`` without reading it.

    Stream-stream, so any call shape (unary or streaming) is answered at once.
    """

    def refuse(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        proxy.refuse(raw, why, context)

    return grpc.stream_stream_rpc_method_handler(refuse)


class CriProxy:
    """The CRI ImageService proxy.

    Args:
        upstream: the runtime's CRI socket: a path or a ``unix://`` URL.
        decide: the decision layer (synchronous, thread-safe; called on a handler thread).
        critical: allowlist entries that skip verification (see :mod:`pullgate.cri.critical`).
        audit: where audit records go (default: one JSON line each on ``pullgate.audit``).
        control_timeout: seconds allowed for the pin check's ImageStatus/RemoveImage calls.
        threads: handler threads (concurrent calls; a pull in flight holds one).

    Raises:
        ConfigError: an invalid ``critical`` entry.
    """

    def __init__(
        self,
        upstream: str,
        decide: Decide,
        *,
        critical: Sequence[str] = (),
        audit: Audit | None = None,
        control_timeout: float = 30.0,
        threads: int = HANDLER_THREADS,
    ) -> None:
        self.upstream = upstream
        self._decide = decide
        self.critical = CriticalImages.parse(critical)
        self._audit: Audit = audit if audit is not None else AuditLog().write
        self._control_timeout = control_timeout
        self._threads = threads
        self._channel: grpc.Channel | None = None
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
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        channel = grpc.insecure_channel(grpc_target(self.upstream), options=options)
        executor = ThreadPoolExecutor(self._threads, thread_name_prefix="pullgate-cri")
        server = grpc.server(executor, handlers=[_Router(self)], options=options)
        try:
            if server.add_insecure_port(f"unix:{path}") == 0:
                raise OSError(f"cannot listen on {path}")
            server.start()
            os.chmod(path, mode)
        except BaseException:
            server.stop(None)
            executor.shutdown(wait=False)
            channel.close()
            raise
        self._channel, self._server, self._executor = channel, server, executor
        log.info("CRI proxy listening on %s, forwarding to %s", path, self.upstream)

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls in flight get ``grace`` seconds to finish (None or 0: they are
        cancelled at once, as grpc does).

        grpc counts a call the caller cancelled as finished while its handler thread may still
        be deciding, pinning or removing an image; those threads are waited for too, within the
        same grace. The runtime channel is closed only once every handler thread is done (in the
        background if that takes longer than the grace), so a pin's ``RemoveImage`` is never cut
        off by a shutdown.
        """
        server, self._server = self._server, None
        executor, self._executor = self._executor, None
        started = time.monotonic()
        if server is not None:
            stopped = server.stop(grace)
            await asyncio.to_thread(stopped.wait)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
            left = (grace or 0.0) - (time.monotonic() - started)
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(executor.shutdown, wait=True), max(left, 0.001)
                )
            except TimeoutError:
                log.warning("CRI proxy stopped with handler threads still running")
                threading.Thread(
                    target=self._close_after, args=(executor,), name="pullgate-cri-close"
                ).start()
                return
        self._close_channel()

    def _close_after(self, executor: ThreadPoolExecutor) -> None:
        executor.shutdown(wait=True)
        self._close_channel()

    def _close_channel(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    # -- forwarding -----------------------------------------------------------------------------

    def _upstream(self) -> grpc.Channel:
        if self._channel is None:
            raise RuntimeError("CriProxy is not started")
        return self._channel

    def _call(
        self, method: str, request: bytes, metadata: MetadataPairs, timeout: float | None
    ) -> tuple[bytes, grpc.Call]:
        """One unary call upstream: the response and the finished call (for its metadata).

        Raises:
            grpc.RpcError: the runtime answered with an error status (also a ``grpc.Call``).
        """
        stub = self._upstream().unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )
        response, call = stub.with_call(request, metadata=metadata, timeout=timeout)
        return response, call

    def _send(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> tuple[bytes, grpc.Call]:
        """One unary call upstream with the caller's metadata, deadline and cancellation (a pull
        the kubelet gives up on stops at the runtime too); nothing is answered to the caller yet.

        Raises:
            grpc.FutureCancelledError: the caller cancelled.
            grpc.RpcError: the runtime answered with an error status.
        """
        stub = self._upstream().unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )
        call = stub.future(
            request,
            metadata=_forwardable(context.invocation_metadata()),
            timeout=_remaining(context),
        )
        _cancel_with(context, call)
        response: bytes = call.result()
        return response, call

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Forward one unary call unchanged; the upstream status and metadata are passed back."""
        try:
            response, call = self._send(method, request, context)
        except grpc.FutureCancelledError:
            _abort(context, grpc.StatusCode.CANCELLED, "cancelled by the caller")
        except grpc.RpcError as err:
            _pass_back(err, context)
        _answer_metadata(call, context)
        return response

    def forward_stream(
        self, method: str, request: bytes, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """Forward one server-streaming call unchanged (cancelled with the caller's call)."""
        stub = self._upstream().unary_stream(
            method, request_serializer=_identity, response_deserializer=_identity
        )
        call = stub(
            request,
            metadata=_forwardable(context.invocation_metadata()),
            timeout=_remaining(context),
        )
        _cancel_with(context, call)
        try:
            initial = _forwardable(call.initial_metadata())  # waits for the runtime's headers
            if initial:
                context.send_initial_metadata(initial)
            yield from call
        except grpc.RpcError as err:
            _pass_back(err, context)
        context.set_trailing_metadata(_forwardable(call.trailing_metadata()))

    def refuse(self, raw: object, why: str, context: grpc.ServicerContext) -> NoReturn:
        """Refuse a call that is not a ``runtime.v1.*`` CRI method (logged and audited)."""
        shown = (raw if isinstance(raw, str) else repr(raw))[:_SHOWN_PATH]
        log.warning("CRI proxy refused method %r: %s", shown, why)
        self._emit_audit(
            {
                "event": "cri.refused",
                "decision": "deny",
                "method": shown,
                "detail": why,
                "caller": CALLER,
            }
        )
        _abort(
            context,
            grpc.StatusCode.PERMISSION_DENIED,
            f"pullgate CRI proxy refuses {shown!r}: {why}; only {CRI_SERVICE_PREFIX}* "
            "services are served",
        )

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
        decision = self._decision(pull, context)
        if not context.is_active():  # the caller gave up while pullgate was deciding
            log.info("CRI pull of %s cancelled by the caller before it was forwarded", pull.image)
            _abort(context, grpc.StatusCode.CANCELLED, "cancelled by the caller")
        pin = bool(decision.digest) and not _pinned_by_request(pull, decision.digest)
        try:
            response, call = self._send(PULL_IMAGE, request, context)
        except grpc.FutureCancelledError:
            if pin:
                self._clean_up(pull, decision.digest)
            _abort(context, grpc.StatusCode.CANCELLED, "cancelled by the caller")
        except grpc.RpcError as err:
            if pin:
                self._clean_up(pull, decision.digest)
            _pass_back(err, context)
        if pin:
            self._pin(pull, decision.digest, response, context)
        _answer_metadata(call, context)
        return response

    def _decision(self, pull: PullRequest, context: grpc.ServicerContext) -> Decision:
        """The decision layer's answer; anything but an allow ends the call with a denial."""
        request = DecisionRequest(
            reference=str(pull.reference),
            digest=pull.reference.digest,
            credentials=pull.credentials,
            caller=CALLER,
        )
        try:
            decision = self._decide(request)
        except PullgateError as exc:
            self._deny(context, Denial.from_error(exc), image=pull.image)
        except Exception as exc:  # fail closed on any decision-layer bug
            log.exception("decision layer failed for %s", pull.reference)
            denial = Denial(
                kind=DenialKind.SIGNATURE,
                reason=Reason.INTERNAL,
                message=f"pullgate could not decide: {type(exc).__name__}",
            )
            self._deny(context, denial, image=pull.image)
        if not decision.allowed:
            self._deny(context, Denial.from_decision(decision), image=pull.image)
        return decision

    def _pin(
        self,
        pull: PullRequest,
        digest: str,
        response: bytes,
        context: grpc.ServicerContext,
    ) -> None:
        """Deny (and remove the image) unless the runtime pulled the verified digest."""
        try:
            image_id = api_pb2.PullImageResponse.FromString(response).image_ref
        except DecodeError:
            image_id = ""
        target = image_id or str(pull.reference)
        expected = f"{pull.reference.locator}@{digest}"
        try:
            image = self._image_status(target)
        except (grpc.RpcError, DecodeError) as exc:
            self._remove(target)
            denial = Denial(
                kind=DenialKind.REGISTRY,
                reason=Reason.INTERNAL,
                message=f"could not confirm that the runtime pulled {expected}: {_error_text(exc)}",
            )
            self._deny(context, denial, image=pull.image)
        repo_digests = list(image.repo_digests) if image is not None else []
        if expected in repo_digests:
            return
        self._remove(target)
        denial = Denial(
            kind=DenialKind.SIGNATURE,
            reason=Reason.DESCRIPTOR_MISMATCH,
            message=(
                f"{pull.reference} moved during the pull: pullgate verified {expected} but the "
                f"runtime pulled {', '.join(repo_digests) or 'something else'}; "
                "the pulled image was removed"
            ),
        )
        self._deny(context, denial, image=pull.image)

    def _clean_up(self, pull: PullRequest, digest: str) -> None:
        """After a tag pull that failed or was cancelled: containerd may have stored the image
        anyway (the pull completed just as the kubelet gave up, or failed after the image was
        recorded), possibly from a tag that moved after verification. If the tag now names an
        image whose repo digests lack the verified digest, remove it: fail closed, even if that
        image is an older one verified by an earlier pull (the kubelet pulls it again)."""
        target = str(pull.reference)
        expected = f"{pull.reference.locator}@{digest}"
        try:
            image = self._image_status(target)
        except (grpc.RpcError, DecodeError) as exc:
            log.error(
                "could not check %s after its pull failed: %s; an unverified image may remain",
                target,
                _error_text(exc),
            )
            return
        if image is None or expected in image.repo_digests:
            return
        log.warning("removing %s after its pull failed: it is not %s", target, expected)
        self._remove(image.id or target)

    def _image_status(self, image: str) -> api_pb2.Image | None:
        """The runtime's record of ``image`` (None when it has none).

        Raises:
            grpc.RpcError: the runtime's ImageStatus failed.
            DecodeError: its answer does not parse.
        """
        request = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image))
        raw, _ = self._call(IMAGE_STATUS, request.SerializeToString(), (), self._control_timeout)
        status = api_pb2.ImageStatusResponse.FromString(raw)
        return status.image if status.HasField("image") else None

    def _remove(self, image: str) -> None:
        request = api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image))
        try:
            self._call(REMOVE_IMAGE, request.SerializeToString(), (), self._control_timeout)
        except Exception as exc:  # noqa: BLE001 - a failed removal must be loud, never a crash
            log.critical("could not remove unverified image %s: %s", image, _error_text(exc))

    def _deny(self, context: grpc.ServicerContext, denial: Denial, *, image: str) -> NoReturn:
        log.warning("CRI pull of %r denied: %s", image, denial.text)
        _abort(context, grpc.StatusCode.UNKNOWN, denial.text)

    def _emit_audit(self, record: dict[str, Any]) -> None:
        """One audit record to the sink; a failing sink is logged with the record, never raised."""
        try:
            self._audit(record)
        except Exception:  # an audit sink must not break a pull
            log.exception("audit sink failed for %s", json.dumps(record, sort_keys=True))


def _status(err: BaseException) -> tuple[grpc.StatusCode, str, MetadataPairs] | None:
    """Code, details and trailing metadata of a failed call (None: not an RPC status).

    Every error of a blocking call is also a ``grpc.Call``; the stubs cannot say so.
    """
    code, details = getattr(err, "code", None), getattr(err, "details", None)
    trailing = getattr(err, "trailing_metadata", None)
    if not (callable(code) and callable(details) and callable(trailing)):
        return None
    status = code()
    return (
        status if isinstance(status, grpc.StatusCode) else grpc.StatusCode.UNKNOWN,
        str(details() or ""),
        _forwardable(trailing()),
    )


def _error_text(exc: BaseException) -> str:
    """An upstream failure for a message: the status code and details of an RPC error."""
    status = _status(exc)
    return str(exc) if status is None else f"{status[0].name}: {status[1]}"


class _Cancellable(Protocol):
    def cancel(self) -> bool: ...


def _cancel_with(context: grpc.ServicerContext, call: _Cancellable) -> None:
    """Cancel the upstream ``call`` when the caller's call ends first (or has already ended)."""

    def cancel() -> None:
        call.cancel()

    if not context.add_callback(cancel):  # the caller is already gone
        cancel()


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with ``code``; grpc's ``abort`` raises, this tells the type checker so."""
    context.abort(code, details)
    raise AssertionError("grpc.ServicerContext.abort returned")  # pragma: no cover


def _answer_metadata(call: grpc.Call, context: grpc.ServicerContext) -> None:
    """Pass the runtime's initial and trailing metadata back to the caller (who may be gone)."""
    initial = _forwardable(call.initial_metadata())
    try:
        if initial:
            context.send_initial_metadata(initial)
    except (grpc.RpcError, ValueError):  # the caller is gone: there is no one to answer
        return
    context.set_trailing_metadata(_forwardable(call.trailing_metadata()))


def _pass_back(err: grpc.RpcError, context: grpc.ServicerContext) -> NoReturn:
    """End the call with the runtime's own status, details and metadata."""
    initial = getattr(err, "initial_metadata", None)
    if callable(initial):
        pairs = _forwardable(initial())
        if pairs:
            with contextlib.suppress(grpc.RpcError, ValueError):  # the caller may be gone
                context.send_initial_metadata(pairs)
    status = _status(err)
    if status is None:
        _abort(context, grpc.StatusCode.UNKNOWN, f"runtime call failed: {err}")
    code, details, trailing = status
    context.set_trailing_metadata(trailing)
    _abort(context, code, details)
