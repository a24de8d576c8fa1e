"""Prometheus families of the NRI plugin, on the daemon's registry (prefix ``pullgate_nri_``).

* ``state{state}``: 1 for the plugin's current connection state, 0 for the others;
* ``state_changes_total{state}``: every transition into ``state``;
* ``creates_total{result,reason}``: every ``CreateContainer`` answered;
* ``answer_seconds``: time from a ``CreateContainer`` request read off the wire to its answer
  written (the budget is containerd's ``plugin_request_timeout``);
* ``unverified_containers``: containers without a current allow at the last audit;
* ``audits_total{trigger}``: audits of every known container (``synchronize``, ``reload``);
* ``evictions_total``: eviction requests sent to the runtime.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pullgate.nri.service import NriState

__all__ = ["NriMetrics"]

_BUCKETS = (
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.2, 0.5, 1.0, 2.0,
)  # fmt: skip


class NriMetrics:
    """The plugin's metric families (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge(
            "pullgate_nri_state", "NRI plugin connection state.", ("state",), registry=registry
        )
        self.state_changes = Counter(
            "pullgate_nri_state_changes",
            "NRI plugin state transitions by new state.",
            ("state",),
            registry=registry,
        )
        self.creates = Counter(
            "pullgate_nri_creates",
            "CreateContainer answers by result and reason.",
            ("result", "reason"),
            registry=registry,
        )
        self.answer_seconds = Histogram(
            "pullgate_nri_answer_seconds",
            "Time to answer CreateContainer (seconds).",
            buckets=_BUCKETS,
            registry=registry,
        )
        self.unverified = Gauge(
            "pullgate_nri_unverified_containers",
            "Containers without a current allow at the last NRI audit.",
            registry=registry,
        )
        self.audits = Counter(
            "pullgate_nri_audits",
            "Audits of every known container, by trigger.",
            ("trigger",),
            registry=registry,
        )
        self.evictions = Counter(
            "pullgate_nri_evictions", "Eviction requests sent to the runtime.", registry=registry
        )
        for state in NriState:
            self.state.labels(state=state.value).set(0)

    def on_state(self, state: NriState) -> None:
        """Record a state change."""
        for other in NriState:
            self.state.labels(state=other.value).set(1 if other is state else 0)
        self.state_changes.labels(state=state.value).inc()

    def on_create(self, allowed: bool, reason: str, seconds: float) -> None:
        """Record one decided create."""
        self.creates.labels(result="allow" if allowed else "deny", reason=reason).inc()

    def on_answer(self, method: str, seconds: float) -> None:
        """Record the answer time of one plugin request (``CreateContainer`` only)."""
        if method == "CreateContainer":
            self.answer_seconds.observe(seconds)

    def on_audit(self, trigger: str, unverified: int) -> None:
        """Record an audit and its count."""
        self.audits.labels(trigger=trigger).inc()
        self.unverified.set(unverified)
