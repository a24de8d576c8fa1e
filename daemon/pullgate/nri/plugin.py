"""The NRI plugin service pullgate serves, and its registration with the runtime.

Flow (https://github.com/containerd/nri/blob/main/README.md): the plugin calls
``Runtime.RegisterPlugin``; the runtime calls ``Plugin.Configure`` (answered with the events
subscribed), then ``Plugin.Synchronize`` with every existing pod and container (possibly split
into several requests with ``more`` set, each answered with the same ``more``), then the
subscribed events. pullgate subscribes:

* ``CREATE_CONTAINER``: the gate. An error status fails the create; an empty response allows
  (and the container joins the inventory that reload audits and optional evictions work on);
* ``START_CONTAINER``: the same decision again when the container is started (a create allowed
  earlier may have lost its allow since); an error status fails the start;
* ``REMOVE_CONTAINER``: leaves the inventory. (``POST_CREATE_CONTAINER`` would be one more round
  trip inside every create; a create that fails after pullgate allowed it leaves an entry that
  only costs an audit line.)

Every decision is delegated to a :class:`Gatekeeper`; this module only decodes, dispatches and
encodes. A payload that does not decode is answered with an error status (a create is refused).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import DecodeError, Message

from pullgate.nri.frames import RpcRequest, encode_response
from pullgate.nri.session import CODE_UNIMPLEMENTED, CODE_UNKNOWN
from pullgate.nri.wire import api_pb2

__all__ = [
    "EVENTS",
    "PLUGIN_SERVICE",
    "RUNTIME_SERVICE",
    "Admission",
    "Gatekeeper",
    "PluginService",
    "event_mask",
]

log = logging.getLogger(__name__)

PLUGIN_SERVICE = "nri.pkg.api.v1alpha1.Plugin"
RUNTIME_SERVICE = "nri.pkg.api.v1alpha1.Runtime"
NRI_VERSION = "v0.12.2"  # the NRI API revision these messages follow

EVENTS = (api_pb2.CREATE_CONTAINER, api_pb2.START_CONTAINER, api_pb2.REMOVE_CONTAINER)


def event_mask(events: Sequence[int]) -> int:
    """``ConfigureResponse.events``: bit ``1 << (event - 1)`` per event."""
    mask = 0
    for event in events:
        mask |= 1 << (event - 1)
    return mask


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """The answer to one ``CreateContainer``: allowed, or refused with ``message``."""

    allowed: bool
    message: str = ""


class Gatekeeper(Protocol):
    """What the plugin asks about containers. Every method answers from local state."""

    def admit(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        """Decide a create (never waits on the network)."""
        ...

    def admit_start(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        """Decide a start, by the create's rules (never waits on the network)."""
        ...

    def synchronized(self, containers: Sequence[api_pb2.Container], *, complete: bool) -> None:
        """Existing containers from ``Synchronize`` (``complete``: the last part)."""
        ...

    def created(self, container: api_pb2.Container) -> None:
        """A container was created."""
        ...

    def removed(self, container: api_pb2.Container) -> None:
        """A container was removed."""
        ...

    def configured(self, request: api_pb2.ConfigureRequest) -> None:
        """The runtime configured the plugin (its request timeout, version)."""
        ...


class PluginService:
    """Serves ``nri.pkg.api.v1alpha1.Plugin`` for one connection."""

    def __init__(self, gate: Gatekeeper) -> None:
        self._gate = gate
        self.synchronized = False  # the last part of Synchronize was answered
        self.shutdown_requested = False

    def handle(self, request: RpcRequest) -> bytes:
        """Answer one request (``ttrpc.Response`` bytes)."""
        if request.service != PLUGIN_SERVICE:
            return _error(CODE_UNIMPLEMENTED, f"service {request.service!r} not served")
        method = request.method
        if method == "CreateContainer":
            return self._create(request.payload)
        if method == "StartContainer":
            return self._start(request.payload)
        if method == "Configure":
            return self._configure(request.payload)
        if method == "Synchronize":
            return self._synchronize(request.payload)
        if method in ("PostCreateContainer", "RemoveContainer"):
            return self._container_event(method, request.payload)
        if method == "Shutdown":
            self.shutdown_requested = True
            log.info("NRI: the runtime is shutting down")
            return encode_response(b"")
        if method == "StateChange":
            return encode_response(api_pb2.Empty().SerializeToString())
        return _error(CODE_UNIMPLEMENTED, f"method {method!r} not served")

    def _create(self, payload: bytes) -> bytes:
        request = api_pb2.CreateContainerRequest()
        if not _parse(request, payload):
            return _error(CODE_UNKNOWN, "pullgate: undecodable CreateContainer request")
        admission = self._gate.admit(request.pod, request.container)
        if not admission.allowed:
            return _error(CODE_UNKNOWN, admission.message)
        return encode_response(api_pb2.CreateContainerResponse().SerializeToString())

    def _start(self, payload: bytes) -> bytes:
        request = api_pb2.ContainerEventRequest()  # StartContainerRequest{pod, container}
        if not _parse(request, payload):
            return _error(CODE_UNKNOWN, "pullgate: undecodable StartContainer request")
        admission = self._gate.admit_start(request.pod, request.container)
        if not admission.allowed:
            return _error(CODE_UNKNOWN, admission.message)
        return encode_response(api_pb2.Empty().SerializeToString())

    def _configure(self, payload: bytes) -> bytes:
        request = api_pb2.ConfigureRequest()
        if not _parse(request, payload):
            return _error(CODE_UNKNOWN, "pullgate: undecodable Configure request")
        self._gate.configured(request)
        response = api_pb2.ConfigureResponse(events=event_mask(EVENTS))
        return encode_response(response.SerializeToString())

    def _synchronize(self, payload: bytes) -> bytes:
        request = api_pb2.SynchronizeRequest()
        if not _parse(request, payload):
            return _error(CODE_UNKNOWN, "pullgate: undecodable Synchronize request")
        self._gate.synchronized(list(request.containers), complete=not request.more)
        if not request.more:
            self.synchronized = True
        # Answering with the request's ``more`` says split requests are understood.
        response = api_pb2.SynchronizeResponse(more=request.more)
        return encode_response(response.SerializeToString())

    def _container_event(self, method: str, payload: bytes) -> bytes:
        request = api_pb2.ContainerEventRequest()
        if not _parse(request, payload):
            return _error(CODE_UNKNOWN, f"pullgate: undecodable {method} request")
        if method == "PostCreateContainer":
            self._gate.created(request.container)
        else:
            self._gate.removed(request.container)
        return encode_response(api_pb2.Empty().SerializeToString())


def register_request(name: str, index: str) -> bytes:
    """``RegisterPluginRequest`` bytes."""
    request = api_pb2.RegisterPluginRequest(
        plugin_name=name, plugin_idx=index, NRI_version=NRI_VERSION
    )
    return request.SerializeToString()


def evict_request(evictions: Sequence[tuple[str, str]]) -> bytes:
    """``UpdateContainersRequest`` bytes evicting ``(container id, reason)`` pairs."""
    request = api_pb2.UpdateContainersRequest(
        evict=[api_pb2.ContainerEviction(container_id=c, reason=r) for c, r in evictions]
    )
    return request.SerializeToString()


def _parse(message: Message, payload: bytes) -> bool:
    try:
        message.ParseFromString(payload)
    except (DecodeError, ValueError):
        return False
    return True


def _error(code: int, message: str) -> bytes:
    return encode_response(code=code, message=message)
