"""Remembered endpoint failures and the in-flight byte budget, as Status and metrics show them."""

from __future__ import annotations

from prometheus_client import generate_latest

from pullgate.registry.body import BudgetStats
from pullgate.registry.health import EndpointState
from pullgate.service.convert import StatusView, status_to_proto
from pullgate.service.metrics import Metrics

DOWN = EndpointState(
    endpoint="http://mirror.test/v2",
    healthy=False,
    consecutive_failures=2,
    failures_total=5,
    last_error="TIMEOUT",
    down_for=42.0,
)
UP = EndpointState(
    endpoint="https://registry.test/v2",
    healthy=True,
    consecutive_failures=0,
    failures_total=1,
    last_error="REGISTRY_TLS",
    down_for=0.0,
)
BUDGET = BudgetStats(limit=1000, in_use=10, peak=900, waits=3, exhausted=2)
VIEW = StatusView(generation=1, endpoints=(DOWN, UP), inflight=BUDGET)


def test_status_lists_every_remembered_endpoint() -> None:
    response = status_to_proto(VIEW)
    shown = [
        (e.endpoint, e.healthy, e.consecutive_failures, e.failures_total, e.last_error)
        for e in response.endpoints
    ]
    assert shown == [
        ("http://mirror.test/v2", False, 2, 5, "TIMEOUT"),
        ("https://registry.test/v2", True, 0, 1, "REGISTRY_TLS"),
    ]
    assert response.endpoints[0].down_for_seconds == 42.0


def test_metrics_show_endpoint_health_and_the_budget() -> None:
    text = generate_latest(Metrics(status=lambda: VIEW).registry).decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert samples['pullgate_registry_endpoint_healthy{endpoint="http://mirror.test/v2"}'] == "0.0"
    assert samples['pullgate_registry_endpoint_healthy{endpoint="https://registry.test/v2"}'] == (
        "1.0"
    )
    assert samples[
        'pullgate_registry_endpoint_failures_total{endpoint="http://mirror.test/v2"}'
    ] == ("5.0")
    assert samples["pullgate_registry_inflight_bytes"] == "10.0"
    assert samples["pullgate_registry_inflight_peak_bytes"] == "900.0"
    assert samples["pullgate_registry_inflight_limit_bytes"] == "1000.0"
    assert samples["pullgate_registry_inflight_exhausted_total"] == "2.0"
