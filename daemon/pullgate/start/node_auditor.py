"""The daemon's node audit: run at start and after every trust reload, at a bounded rate.

:meth:`NodeAuditor.trigger` asks for an audit (:mod:`pullgate.start.audit`); one worker thread
runs them, at most one per ``interval`` seconds (triggers that arrive meanwhile fold into the
next run), so a storm of reloads costs one audit per interval. Each run writes one audit line
per finding (an image or running container without a current allow; running containers also at
WARNING) and keeps the counts for ``pullgate_unverified_containers`` and
``pullgate_unverified_images``. A failing run (runtime unreachable) is logged and retried at
the next trigger; the counts keep their last value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc

from pullgate.start.audit import NodeAudit, RuntimeLister, audit_node
from pullgate.start.gate import StartGate

__all__ = ["NodeAuditor"]

log = logging.getLogger(__name__)


class NodeAuditor:
    """Runs node audits in the background (see the module docstring)."""

    def __init__(
        self,
        lister: RuntimeLister,
        gate: StartGate,
        *,
        interval: float,
        audit: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self._lister = lister
        self._gate = gate
        self._interval = interval
        self._audit = audit
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last: NodeAudit | None = None
        self._runs = 0
        self._thread = threading.Thread(target=self._loop, name="pullgate-node-audit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def trigger(self) -> None:
        """Ask for an audit (at start, after a reload)."""
        self._wake.set()

    @property
    def last(self) -> NodeAudit | None:
        with self._lock:
            return self._last

    @property
    def runs(self) -> int:
        with self._lock:
            return self._runs

    def _loop(self) -> None:
        previous = float("-inf")
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            wait = previous + self._interval - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            self._wake.clear()
            previous = time.monotonic()
            self.run_once()

    def run_once(self) -> NodeAudit | None:
        """One audit now (the worker's step; also for tests)."""
        try:
            result = audit_node(self._lister, self._gate)
        except grpc.RpcError as exc:  # the runtime is down or refuses: retried next trigger
            log.warning("node audit failed: the runtime did not answer: %s", exc)
            return None
        except Exception:  # never kill the worker
            log.exception("node audit failed")
            return None
        with self._lock:
            self._last = result
            self._runs += 1
        for finding in result.findings():
            if finding["kind"] == "container":
                log.warning(
                    "running container %s (%s) has no current allow: %s: %s",
                    finding["container_id"],
                    finding["reference"],
                    finding["reason"],
                    finding["message"],
                )
            if self._audit is not None:
                self._audit(finding)
        log.info(
            "node audit: %d running container(s), %d image(s) without a current allow",
            result.unverified_containers,
            result.unverified_images,
        )
        return result
