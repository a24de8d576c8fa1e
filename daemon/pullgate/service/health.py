"""``grpc.health.v1.Health`` for the daemon (gRPC health-checking protocol).

The overall service (``""``) and ``pullgate.v1.Verifier`` are ``NOT_SERVING`` until the first
valid trust snapshot exists, then ``SERVING``. A later failed reload does **not** flip them
back: the daemon keeps enforcing the last good snapshot, so it is still able to answer every
``Verify`` correctly. That degraded state is reported by ``Verifier/Status`` (``degraded``,
``degraded_reason``, ``last_reload``) instead, because the standard health protocol has no
field for details. On graceful shutdown every service turns ``NOT_SERVING``.

The standard servicer is asyncio-bound (its ``set`` is a coroutine on the server's loop);
:meth:`Health.set_serving_threadsafe` lets reload listeners on other threads update it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

from grpc_health.v1 import health as _health  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2

from pullgate.v1 import verifier_pb2

log = logging.getLogger(__name__)

VERIFIER_SERVICE = verifier_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name
SERVICES: tuple[str, ...] = ("", VERIFIER_SERVICE)
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    """Owns the asyncio health servicer and the serving flag of our services.

    Create it inside the running event loop that serves gRPC.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.servicer = _health.aio.HealthServicer()
        self._serving: bool | None = None

    @property
    def serving(self) -> bool:
        """True once :meth:`set_serving` was called with True."""
        return bool(self._serving)

    async def set_serving(self, serving: bool) -> None:
        """Publish ``SERVING``/``NOT_SERVING`` for every service (no-op when unchanged)."""
        if serving == self._serving:
            return
        self._serving = serving
        status = _SERVING if serving else _NOT_SERVING
        for service in SERVICES:
            await self.servicer.set(service, status)
        log.info("health: %s", "SERVING" if serving else "NOT_SERVING")

    def set_serving_threadsafe(self, serving: bool) -> Future[None]:
        """:meth:`set_serving` from any thread (scheduled on the server's loop)."""
        return asyncio.run_coroutine_threadsafe(self.set_serving(serving), self._loop)

    async def shutdown(self) -> None:
        """Every service ``NOT_SERVING`` for good (graceful shutdown)."""
        await self.servicer.enter_graceful_shutdown()
