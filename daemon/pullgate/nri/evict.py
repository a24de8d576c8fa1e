"""Stopping containers whose image's allow was withdrawn.

NRI's ``UpdateContainers`` carries evictions, but containerd 2.4 (NRI v0.12) does not act on
them: the container keeps running (``tests/integration/test_nri.py`` observed it). So an
eviction is also sent as a CRI ``RuntimeService/StopContainer`` to ``[nri] evict_endpoint``
(containerd's CRI socket), which does stop it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import grpc

from pullgate.cri.runtime.v1 import api_pb2, api_pb2_grpc

__all__ = ["CriStopper", "Evictions"]

log = logging.getLogger(__name__)

STOP_GRACE = 10  # seconds containerd waits before killing the container


class CriStopper:
    """Stops containers through a CRI endpoint (``unix:///…``)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self._target = "unix:" + endpoint.removeprefix("unix:").removeprefix("//")
        self._timeout = timeout

    def stop(self, container_ids: Sequence[str]) -> int:
        """Stop each container; how many the runtime accepted (failures are logged)."""
        stopped = 0
        with grpc.insecure_channel(self._target) as channel:
            stub = api_pb2_grpc.RuntimeServiceStub(channel)
            for container_id in container_ids:
                request = api_pb2.StopContainerRequest(
                    container_id=container_id, timeout=STOP_GRACE
                )
                try:
                    stub.StopContainer(request, timeout=self._timeout)
                except grpc.RpcError as exc:
                    log.warning("NRI eviction: CRI StopContainer %s failed: %s", container_id, exc)
                    continue
                log.warning("NRI eviction: container %s stopped through CRI", container_id)
                stopped += 1
        return stopped


class Evictions:
    """The gate's eviction callback (called from its worker threads): counts each container,
    sends the evictions over the plugin's connection on ``loop`` once :attr:`send` is bound
    (the service is built after the gate that calls this), and stops the containers through
    CRI when a ``stopper`` is configured.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        count: Callable[[int], None],
        stopper: CriStopper | None,
    ) -> None:
        self._loop = loop
        self._count = count
        self._stopper = stopper
        self.send: Callable[[list[tuple[str, str]]], Coroutine[Any, Any, object]] | None = None

    def __call__(self, pairs: list[tuple[str, str]]) -> None:
        self._count(len(pairs))
        send = self.send
        if send is not None:
            asyncio.run_coroutine_threadsafe(send(pairs), self._loop)
        if self._stopper is not None:
            self._stopper.stop([container_id for container_id, _ in pairs])
