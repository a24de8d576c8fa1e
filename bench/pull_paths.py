"""The three paths of ``bench/pull.py`` besides containerd itself: the decision function the
measured proxy calls (:class:`SwappableDecider`), the proxy timing its own call to containerd
(:class:`TimedProxy`), and the zero-cost pullgate's decision function (:class:`ZeroCostDecider`).
Nothing here measures on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import urllib3

from bench.pull_support import bare_signature_fetch
from pullgate.cri.methods import PULL_IMAGE
from pullgate.cri.proxy import CriProxy
from pullgate.decision.decider import Decider
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.client import MANIFEST_ACCEPT
from pullgate.registry.transport import USER_AGENT, RequestLogHook, RequestRecord
from pullgate.service.convert import ReloadView, StatusView


class SwappableDecider:
    """The proxy's decision function, pointing at a decider the bench may replace."""

    def __init__(self, make: Callable[[RequestLogHook], Decider]) -> None:
        self._make = make
        self.requests: list[RequestRecord] = []  # registry requests of the last decision
        self.current = make(self.requests.append)
        self.durations: list[float] = []  # seconds per decision, in call order

    def decide(self, request: DecisionRequest) -> Decision:
        """Delegate to the current decider (and record how long it took)."""
        self.requests.clear()
        started = time.perf_counter()
        try:
            return self.current.decide(request)
        finally:
            self.durations.append(time.perf_counter() - started)

    def close(self) -> None:
        """Close the current decider."""
        self.current.close()

    def renew(self) -> None:
        """A brand-new decider (no cache, no pooled connection); the old one is closed."""
        old, self.current = self.current, self._make(self.requests.append)
        old.close()


class TimedProxy(CriProxy):
    """The real proxy, also timing its own ``PullImage`` call to containerd.

    That call is the runtime's whole pull as a direct client sees it (same socket, same kind of
    blocking gRPC client), made in the middle of the proxied pull: proxied time ÷ this time
    compares the two paths within one and the same pull.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.forward_times: list[float] = []  # seconds per forwarded PullImage, in call order

    def _send(
        self,
        method: str,
        request: bytes,
        context: grpc.ServicerContext,
        sent: Callable[[], object] | None = None,
    ) -> tuple[bytes, grpc.Call]:
        """Send upstream as the proxy does; PullImage calls are timed."""
        if method != PULL_IMAGE:
            return super()._send(method, request, context, sent)
        started = time.perf_counter()
        try:
            return super()._send(method, request, context, sent)
        finally:
            self.forward_times.append(time.perf_counter() - started)


class ZeroCostDecider:
    """The decision function of a pullgate whose own code costs nothing: the five registry
    requests a cold decision needs, made by a bare urllib3 client over a warm pooled connection
    (:func:`~bench.pull_support.bare_signature_fetch`), then an allow of the tag's digest. Behind
    the real :class:`CriProxy` (inbound hop, forward, the pin's ``ImageStatus``), it measures the
    lowest cold ratio a CRI proxy that verifies before forwarding can reach here."""

    def __init__(self, manager: urllib3.PoolManager, base: str, repo: str) -> None:
        self._manager = manager
        self._alongside = ThreadPoolExecutor(1, thread_name_prefix="zero-cost")
        self._base = base
        self._repo = repo
        self._known: dict[str, str] = {}  # reference -> digest: the warm answer
        self.durations: list[float] = []  # seconds per fetch, in call order
        self.sent: list[tuple[str, str]] = []  # the last fetch's requests

    def decide(self, request: DecisionRequest) -> Decision:
        """Allow the digest of ``request``'s tag: from memory when it was fetched before (a
        warm decision at zero cost), else after fetching its signature."""
        digest = self._known.get(request.reference)
        if digest is None:
            tag = request.reference.rsplit(":", 1)[1]
            headers = {"User-Agent": USER_AGENT, "Accept": MANIFEST_ACCEPT}
            started = time.perf_counter()
            digest, self.sent = bare_signature_fetch(
                self._manager, self._base, self._repo, tag, headers, self._alongside
            )
            self.durations.append(time.perf_counter() - started)
            self._known[request.reference] = digest
        return Decision(
            allowed=True,
            reason=Reason.VERIFIED,
            message="zero-cost bench decision",
            reference=request.reference,
            digest=digest,
        )

    def close(self) -> None:
        """Stop the thread that fetches the image manifest alongside."""
        self._alongside.shutdown(wait=False)


class NoControl:
    """``Status``/``Reload`` are not part of the measurement."""

    def status(self) -> StatusView:
        """Not served here."""
        raise NotImplementedError("Status is not served by the bench")

    def reload(self, reason: str) -> ReloadView:
        """Not served here."""
        raise NotImplementedError("Reload is not served by the bench")
