"""Prometheus metrics of the daemon, on a private ``CollectorRegistry``.

Families (all prefixed ``pullgate_``):

* ``decisions_total{result,reason,front}`` — every decision, counted once by
  :class:`pullgate.decision.record.DecisionRecorder` (``result`` = allow | deny; ``front`` =
  the front end that asked: grpc | shim | cri | runtime-gate | nri | cli);
* ``decision_phase_seconds{phase}`` — latency by phase: resolve, discover, fetch, crypto,
  revocation as the decider reports them in ``Decision.timings``, plus ``total``;
* ``registry_requests_total{host,status}`` — one per HTTP exchange, fed by the registry
  transport's request-log hook (``status`` = HTTP code, or ``error`` at transport level); any
  pod spec can name any host, so only the first ``HOST_LABEL_LIMIT`` (64) distinct hosts get
  their own ``host`` label, every later one is counted under ``host="other"``;
* ``cache_hits_total``, ``cache_misses_total``, ``cache_evictions_total``, ``cache_entries``,
  ``singleflight_joins_total`` — read from the decider's counters at scrape time, so the
  numbers are exactly the decider's own;
* ``reloads_total{outcome}`` — outcome = ok | error, every trigger (watcher, SIGHUP, RPC,
  start-up), read from the trust state's own counters;
* ``certs_d_problems`` — broken certs.d entries (a ``hosts.toml`` that does not parse, an
  unreadable host directory, a missing CA file …) in the configuration in force, and
  ``status_problems`` — every problem ``Status`` lists (read at scrape time);
* ``registry_endpoint_healthy{endpoint}``, ``registry_endpoint_failures_total{endpoint}`` — the
  endpoints the decider remembers as failing at transport level (at most 256, from Status);
* ``registry_inflight_bytes``, ``registry_inflight_peak_bytes``, ``registry_inflight_limit_bytes``,
  ``registry_inflight_exhausted_total`` — the registry body byte budget (since the last reload);
* ``fail_open_total`` — allowed only because ``on_inconclusive = "allow"``;
* ``audit_denied_total`` — allowed by ``mode = "audit"`` but would have been denied;
* ``overlap_denials_total{reason}`` — pulls answered before their verdict (overlapped pulls,
  :mod:`pullgate.cri.overlap`) and then denied, their images removed; ``overlap_pending`` —
  such pulls still waiting for their verdict or their tag's pin check.

No global registry is touched (docs/architecture.md §3.3). The exposition
server binds the configured address only; the config keeps it on loopback by default.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pullgate.common.textnum import ascii_int
from pullgate.decision.model import Decision
from pullgate.errors import ConfigError
from pullgate.registry.transport import RequestRecord
from pullgate.service.convert import StatusView

log = logging.getLogger(__name__)

PHASES: tuple[str, ...] = ("resolve", "discover", "fetch", "crypto", "revocation", "total")
HOST_LABEL_LIMIT = 64  # distinct registry hosts with their own series; more count as "other"
OTHER_HOST = "other"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StatusCollector(Collector):
    """Reads cache and reload counters from the daemon's status when Prometheus scrapes."""

    def __init__(self, source: Callable[[], StatusView]) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        view = self._source()
        reloads = CounterMetricFamily(
            "pullgate_reloads", "Configuration reloads by outcome.", labels=("outcome",)
        )
        reloads.add_metric(("ok",), view.reloads_ok)
        reloads.add_metric(("error",), view.reloads_failed)
        yield reloads
        yield GaugeMetricFamily(
            "pullgate_certs_d_problems",
            "Broken certs.d entries in the configuration in force (see Status.problems).",
            value=view.certs_d_problems,
        )
        yield GaugeMetricFamily(
            "pullgate_status_problems",
            "Problems Status.problems lists (configuration and node checks).",
            value=len(view.problems),
        )
        healthy = GaugeMetricFamily(
            "pullgate_registry_endpoint_healthy",
            "Registry endpoints remembered as failing: 0 while one is asked after the others.",
            labels=("endpoint",),
        )
        failures = CounterMetricFamily(
            "pullgate_registry_endpoint_failures",
            "Transport failures (timeout, refused, TLS) of remembered registry endpoints.",
            labels=("endpoint",),
        )
        for state in view.endpoints:
            healthy.add_metric((state.endpoint,), 1.0 if state.healthy else 0.0)
            failures.add_metric((state.endpoint,), state.failures_total)
        yield healthy
        yield failures
        if view.inflight is not None:
            budget = view.inflight
            for name, value, text in (
                ("pullgate_registry_inflight_bytes", budget.in_use, "Body bytes reserved now."),
                ("pullgate_registry_inflight_peak_bytes", budget.peak, "Most reserved at once."),
                ("pullgate_registry_inflight_limit_bytes", budget.limit, "[registry] budget."),
            ):
                yield GaugeMetricFamily(name, f"Registry in-flight budget: {text}", value=value)
            yield CounterMetricFamily(
                "pullgate_registry_inflight_exhausted",
                "Registry requests that found no room in the in-flight budget (TIMEOUT).",
                value=budget.exhausted,
            )
        stats = view.cache
        yield GaugeMetricFamily(
            "pullgate_cache_entries", "Decisions currently cached.", value=stats.entries
        )
        for name, value, text in (
            ("pullgate_cache_hits", stats.hits, "Decision cache hits."),
            ("pullgate_cache_misses", stats.misses, "Decision cache misses."),
            ("pullgate_cache_evictions", stats.evictions, "Decisions evicted (LRU or TTL)."),
            (
                "pullgate_singleflight_joins",
                stats.singleflight_joins,
                "Requests that joined an in-flight identical verification.",
            ),
        ):
            yield CounterMetricFamily(name, text, value=value)


class Metrics:
    """The daemon's metric families on a private registry.

    Args:
        status: called at scrape time for the cache and reload counters (None: those
            families are absent).
    """

    def __init__(self, status: Callable[[], StatusView] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "pullgate_decisions",
            "Decisions by result, reason and the front end that asked.",
            ("result", "reason", "front"),
            registry=self.registry,
        )
        self.phase_seconds = Histogram(
            "pullgate_decision_phase_seconds",
            "Decision latency by phase (seconds).",
            ("phase",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry_requests = Counter(
            "pullgate_registry_requests",
            f"Registry HTTP exchanges by host and status (after {HOST_LABEL_LIMIT} distinct "
            f'hosts, further hosts count as host="{OTHER_HOST}").',
            ("host", "status"),
            registry=self.registry,
        )
        self.fail_open = Counter(
            "pullgate_fail_open",
            "Pulls allowed only because on_inconclusive = allow.",
            registry=self.registry,
        )
        self.audit_denied = Counter(
            "pullgate_audit_denied",
            "Pulls allowed by mode = audit that enforcement would have denied.",
            registry=self.registry,
        )
        self.overlap_denials = Counter(
            "pullgate_overlap_denials",
            "Pulls answered before their verdict, then denied (their images removed).",
            ("reason",),
            registry=self.registry,
        )
        self.overlap_waiting = Gauge(
            "pullgate_overlap_pending",
            "Pulls answered before their verdict or pin check, still waiting for it.",
            registry=self.registry,
        )
        # Labelled children, looked up once (dict reads/writes are atomic under the GIL; a race
        # only creates the same child twice, which prometheus-client returns as one object).
        self._decision_children: dict[tuple[bool, str, str], Counter] = {}
        self._phase_children: dict[str, Histogram] = {
            phase: self.phase_seconds.labels(phase=phase) for phase in PHASES
        }
        self._hosts: set[str] = set()  # hosts with their own series (at most HOST_LABEL_LIMIT)
        self._hosts_lock = threading.Lock()
        if status is not None:
            self.registry.register(_StatusCollector(status))

    def _decision_child(self, allowed: bool, reason: str, front: str) -> Counter:
        # prometheus-client validates labels and takes a lock in every .labels() call; a warm
        # Verify is ~100 µs in all, so the labelled children are looked up once and kept.
        key = (allowed, reason, front)
        child = self._decision_children.get(key)
        if child is None:
            result = "allow" if allowed else "deny"
            child = self.decisions.labels(result=result, reason=reason, front=front)
            self._decision_children[key] = child
        return child

    def observe_decision(
        self, decision: Decision, *, front: str, total_seconds: float | None = None
    ) -> None:
        """Count one decision asked through ``front`` and record its phase timings."""
        self._decision_child(decision.allowed, decision.reason.value, front).inc()
        timings: Mapping[str, float] = decision.timings
        phases = self._phase_children
        for phase, seconds in timings.items():
            child = phases.get(phase)
            if child is not None:
                child.observe(max(seconds, 0.0))
        if "total" not in timings and total_seconds is not None:
            phases["total"].observe(max(total_seconds, 0.0))
        if decision.fail_open:
            self.fail_open.inc()
        if decision.audit_denied:
            self.audit_denied.inc()

    def observe_denial(self, reason: str, *, front: str) -> None:
        """Count a deny that never reached the decider (malformed request, internal error)."""
        self._decision_child(False, reason, front).inc()

    def overlap_denied(self, reason: str) -> None:
        """A pull answered before its verdict was denied after all (its image removed)."""
        self.overlap_denials.labels(reason=reason).inc()

    def overlap_pending(self, delta: int) -> None:
        """Pulls answered and waiting for their verdict changed by ``delta``."""
        self.overlap_waiting.inc(delta)

    def observe_request(self, record: RequestRecord) -> None:
        """Request-log hook of the registry transport (called from worker threads)."""
        host = self._host_label(urlsplit(record.url).netloc.rpartition("@")[2] or "unknown")
        status = str(record.status) if record.status is not None else "error"
        self.registry_requests.labels(host=host, status=status).inc()

    def _host_label(self, host: str) -> str:
        """``host``, or ``OTHER_HOST`` once ``HOST_LABEL_LIMIT`` other hosts have a series."""
        with self._hosts_lock:
            if host in self._hosts:
                return host
            if len(self._hosts) < HOST_LABEL_LIMIT:
                self._hosts.add(host)
                return host
        return OTHER_HOST


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsEndpoint:
    """A parsed ``[metrics] address``: ``host:port`` or ``[v6]:port``."""

    host: str
    port: int

    @classmethod
    def parse(cls, address: str) -> MetricsEndpoint:
        """Parse ``127.0.0.1:9464`` / ``[::1]:9464`` / ``localhost:0``.

        Raises:
            ConfigError: not ``host:port`` with a port in 0..65535.
        """
        host, sep, port_text = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError as exc:
                raise ConfigError(f"[metrics] address {address!r}: bad IPv6 literal") from exc
        port = ascii_int(port_text)
        if not sep or not host or port is None or port > 65535:
            raise ConfigError(f"[metrics] address {address!r}: expected HOST:PORT")
        return cls(host=host, port=port)


class MetricsServer:
    """The HTTP exposition endpoint (a prometheus-client WSGI server in one thread)."""

    def __init__(self, metrics: Metrics, address: str) -> None:
        self._metrics = metrics
        self._endpoint = MetricsEndpoint.parse(address)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when the configured port is 0)."""
        if self._server is None:
            return self._endpoint.port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = self._endpoint.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/metrics"

    def start(self) -> None:
        """Bind and serve.

        Raises:
            ConfigError: the address cannot be bound.
        """
        try:
            self._server, self._thread = start_http_server(
                self._endpoint.port, self._endpoint.host, registry=self._metrics.registry
            )
        except OSError as exc:
            raise ConfigError(f"[metrics] address: cannot bind {self._endpoint}: {exc}") from exc
        log.info("metrics on %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()


def start_metrics_server(metrics: Metrics, address: str, *, fatal: bool) -> MetricsServer | None:
    """A started :class:`MetricsServer` on ``address`` (None when ``address`` is empty).

    Raises:
        ConfigError: the address cannot be bound and ``fatal`` is set (otherwise logged, None).
    """
    if not address:
        return None
    server = MetricsServer(metrics, address)
    try:
        server.start()
    except ConfigError as exc:
        if fatal:
            raise
        log.error("no metrics endpoint: %s", exc)
        return None
    return server
