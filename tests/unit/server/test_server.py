"""The gRPC server over a real unix socket, with a fake decider and fake trust state.

Covers what does not need a registry: socket handling, bad-request answers, health,
reflection, Status/Reload plumbing, metrics exposition and audit lines.
"""

from __future__ import annotations

import base64
import json
import logging
import stat
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from pullgate.config import DaemonConfig, Mode
from pullgate.decision.audit_log import AUDIT_LOGGER, AuditLog
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import ConfigError, Reason, VerificationInconclusive
from pullgate.registry.transport import RequestRecord
from pullgate.service.app import initial_config, prepare_socket_path
from pullgate.service.convert import CacheView, ReloadView, StatusView
from pullgate.service.health import VERIFIER_SERVICE
from pullgate.service.metrics import HOST_LABEL_LIMIT, OTHER_HOST, Metrics, MetricsServer
from pullgate.service.servicer import ServerParts
from pullgate.v1 import verifier_pb2
from tests.support.docker_registry import free_port
from tests.support.grpc_harness import serve_parts

DIGEST = "sha256:" + "d" * 64
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

RECORDER = DecisionRecorder(None)  # fakes that do not look at records


@dataclass
class FakeEngine:
    """Allows references containing 'good', denies the rest; can be told to raise."""

    raise_with: Exception | None = None
    seen: list[DecisionRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    request_log: Metrics | None = None
    recorder: DecisionRecorder | None = None  # like the real engine: records each answer

    def decide(self, request: DecisionRequest) -> Decision:
        with self.lock:
            self.seen.append(request)
        if self.request_log is not None:
            self.request_log.observe_request(
                RequestRecord(method="GET", url="https://r.example:5000/v2/", status=200, size=2)
            )
        if self.raise_with is not None:
            raise self.raise_with
        good = "good" in request.reference
        decision = Decision(
            allowed=good,
            reason=Reason.VERIFIED if good else Reason.UNTRUSTED,
            message="fake",
            reference=request.reference,
            digest=DIGEST,
            statement="prod",
            fail_open="failopen" in request.reference,
            audit_denied="auditonly" in request.reference,
            mode=Mode.AUDIT if "auditonly" in request.reference else Mode.ENFORCE,
            timings={"resolve": 0.001, "crypto": 0.002, "total": 0.003},
        )
        if self.recorder is not None:
            self.recorder.decided(decision, request, joined=False)
        return decision


@dataclass
class FakeControl:
    generation: int = 1
    reloads: list[str] = field(default_factory=list)
    fail: bool = False

    def status(self) -> StatusView:
        if self.fail:
            raise RuntimeError("status backend broken")
        return StatusView(
            generation=self.generation,
            hashes={"config": "sha256:c"},
            degraded=False,
            cache=CacheView(entries=2, hits=5, misses=3, evictions=1, singleflight_joins=4),
            reloads_ok=len(self.reloads),
        )

    def reload(self, reason: str) -> ReloadView:
        if self.fail:
            raise RuntimeError("reload backend broken")
        self.reloads.append(reason)
        self.generation += 1
        return ReloadView(ok=True, generation=self.generation, finished_unix_ms=1)


def _parts(engine: FakeEngine | None = None, control: FakeControl | None = None) -> ServerParts:
    return ServerParts(
        engine=engine or FakeEngine(), control=control or FakeControl(), recorder=RECORDER
    )


# -- socket ----------------------------------------------------------------------------------


def test_socket_is_created_with_mode_0660_in_a_new_directory(tmp_path: Path) -> None:
    with serve_parts(tmp_path, _parts()) as (client, _):
        mode = client.socket_path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660
        assert client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10).generation == 1
    assert not client.socket_path.exists()  # removed on stop


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    with serve_parts(tmp_path, _parts()) as (client, _):
        path = client.socket_path
    import socket

    with socket.socket(socket.AF_UNIX) as sock:  # a dead daemon's socket file
        sock.bind(str(path))
    assert path.exists()
    with serve_parts(tmp_path, _parts()) as (client, _):
        assert client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10).generation == 1


def test_a_regular_file_at_the_socket_path_is_never_deleted(tmp_path: Path) -> None:
    path = tmp_path / "pullgate.sock"
    path.write_text("precious")
    with pytest.raises(ConfigError) as info:
        prepare_socket_path(path)
    assert info.value.reason is Reason.CONFIG
    assert path.read_text() == "precious"


# -- Verify ----------------------------------------------------------------------------------


def test_verify_round_trip(tmp_path: Path) -> None:
    engine = FakeEngine()
    with serve_parts(tmp_path, _parts(engine)) as (client, _):
        allow = client.verifier.Verify(
            verifier_pb2.VerifyRequest(reference="r.example/good:1", caller="cri"), timeout=10
        )
        deny = client.verifier.Verify(
            verifier_pb2.VerifyRequest(reference="r.example/bad:1"), timeout=10
        )
    assert (allow.allowed, allow.reason, allow.digest) == (True, "VERIFIED", DIGEST)
    assert (deny.allowed, deny.reason) == (False, "UNTRUSTED")
    assert [r.caller for r in engine.seen] == ["cri", ""]


@pytest.mark.parametrize(
    "request_",
    [
        verifier_pb2.VerifyRequest(reference=""),
        verifier_pb2.VerifyRequest(reference="::garbage::"),
        verifier_pb2.VerifyRequest(reference="nginx", platform="nope"),
        verifier_pb2.VerifyRequest(
            reference="nginx", credentials=verifier_pb2.RegistryCredentials(auth="%%%")
        ),
    ],
)
def test_bad_requests_get_a_malformed_deny_not_an_rpc_error(
    tmp_path: Path, request_: verifier_pb2.VerifyRequest
) -> None:
    engine = FakeEngine()
    with serve_parts(tmp_path, _parts(engine)) as (client, _):
        response = client.verifier.Verify(request_, timeout=10)
    assert (response.allowed, response.reason) == (False, Reason.MALFORMED.value)
    assert engine.seen == []


def test_unexpected_decider_error_is_an_internal_deny(tmp_path: Path) -> None:
    engine = FakeEngine(raise_with=KeyError("bug"))
    with serve_parts(tmp_path, _parts(engine)) as (client, _):
        response = client.verifier.Verify(
            verifier_pb2.VerifyRequest(reference="r.example/good:1"), timeout=10
        )
    assert (response.allowed, response.reason) == (False, Reason.INTERNAL.value)


def test_domain_error_from_the_decider_keeps_its_reason(tmp_path: Path) -> None:
    engine = FakeEngine(raise_with=VerificationInconclusive(Reason.TIMEOUT, "slow"))
    with serve_parts(tmp_path, _parts(engine)) as (client, _):
        response = client.verifier.Verify(
            verifier_pb2.VerifyRequest(reference="r.example/good:1"), timeout=10
        )
    assert (response.allowed, response.reason, response.inconclusive) == (False, "TIMEOUT", True)


# -- health and reflection -------------------------------------------------------------------


def test_health_follows_the_serving_flag(tmp_path: Path) -> None:
    with serve_parts(tmp_path, _parts(), serving=False) as (client, running):
        assert client.health.check("") == NOT_SERVING
        assert client.health.check(VERIFIER_SERVICE) == NOT_SERVING
        running.health.set_serving_threadsafe(True).result(timeout=10)
        assert client.health.check("") == SERVING
        assert client.health.check(VERIFIER_SERVICE) == SERVING


def test_reflection_lists_the_services(tmp_path: Path) -> None:
    with serve_parts(tmp_path, _parts()) as (client, _):
        services = client.reflection.services()
    assert {"pullgate.v1.Verifier", "grpc.health.v1.Health"} <= services


# -- Status and Reload -----------------------------------------------------------------------


def test_status_and_reload(tmp_path: Path) -> None:
    control = FakeControl()
    with serve_parts(tmp_path, _parts(control=control)) as (client, _):
        before = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10)
        result = client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=10).result
        after = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10)
    assert (before.generation, result.ok, result.generation, after.generation) == (1, True, 2, 2)
    assert before.cache.singleflight_joins == 4
    assert control.reloads == ["rpc"]


def test_broken_status_backend_aborts_with_internal(tmp_path: Path) -> None:
    with serve_parts(tmp_path, _parts(control=FakeControl(fail=True))) as (client, _):
        with pytest.raises(grpc.RpcError) as info:
            client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10)
        assert info.value.code() is grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.RpcError) as info:
            client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=10)
        assert info.value.code() is grpc.StatusCode.INTERNAL


# -- metrics and audit -----------------------------------------------------------------------


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_are_exposed_over_http(tmp_path: Path) -> None:
    control = FakeControl()
    metrics = Metrics(status=control.status)
    recorder = DecisionRecorder(AuditLog().write, metrics)
    engine = FakeEngine(request_log=metrics, recorder=recorder)
    parts = ServerParts(engine=engine, control=control, metrics=metrics, recorder=recorder)
    server = MetricsServer(metrics, f"127.0.0.1:{free_port()}")
    server.start()
    try:
        with serve_parts(tmp_path, parts) as (client, _):
            for ref in ("r.example/good:1", "r.example/bad:1", "r.example/failopen-good:1"):
                client.verifier.Verify(verifier_pb2.VerifyRequest(reference=ref), timeout=10)
            client.verifier.Verify(verifier_pb2.VerifyRequest(reference="r.example/auditonly:1"))
            client.verifier.Verify(verifier_pb2.VerifyRequest(reference=""), timeout=10)
            client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=10)
        samples = _scrape(server.url)
    finally:
        server.stop()
    assert samples['pullgate_decisions_total{front="grpc",reason="VERIFIED",result="allow"}'] == 2
    assert samples['pullgate_decisions_total{front="grpc",reason="UNTRUSTED",result="deny"}'] == 2
    assert samples['pullgate_decisions_total{front="grpc",reason="MALFORMED",result="deny"}'] == 1
    assert samples['pullgate_decision_phase_seconds_count{phase="resolve"}'] == 4
    assert samples['pullgate_decision_phase_seconds_count{phase="total"}'] == 4
    assert samples['pullgate_registry_requests_total{host="r.example:5000",status="200"}'] == 4
    assert samples["pullgate_fail_open_total"] == 1
    assert samples["pullgate_audit_denied_total"] == 1
    assert samples['pullgate_reloads_total{outcome="ok"}'] == 1
    assert samples['pullgate_reloads_total{outcome="error"}'] == 0
    assert samples["pullgate_cache_hits_total"] == 5
    assert samples["pullgate_cache_entries"] == 2
    assert samples["pullgate_singleflight_joins_total"] == 4
    with pytest.raises(urllib.error.URLError):  # stopped: the port no longer answers
        _scrape(server.url)


def test_metrics_address_must_be_host_and_port() -> None:
    for bad in ("nohost", ":9464", "127.0.0.1:http", "[zz]:1", "127.0.0.1:70000"):
        with pytest.raises(ConfigError):
            MetricsServer(Metrics(), bad)


def test_registry_host_label_values_are_bounded() -> None:
    """Any pod spec can name any registry host: past HOST_LABEL_LIMIT distinct hosts, requests
    count under host="other" instead of each adding a series forever."""
    metrics = Metrics()
    hosts = [f"127.0.0.1:{port}" for port in range(1, 3 * HOST_LABEL_LIMIT + 1)]
    for host in hosts + hosts[:2]:
        metrics.observe_request(
            RequestRecord(method="GET", url=f"https://{host}/v2/", status=None, size=0)
        )
    counts = {
        sample.labels["host"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "pullgate_registry_requests"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert len(counts) == HOST_LABEL_LIMIT + 1
    assert counts[hosts[0]] == 2  # a host seen first keeps its own series
    assert counts[OTHER_HOST] == 2 * HOST_LABEL_LIMIT
    assert sum(counts.values()) == len(hosts) + 2


def test_audit_lines_are_json_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = DecisionRecorder(AuditLog().write)
    parts = ServerParts(
        engine=FakeEngine(recorder=recorder), control=FakeControl(), recorder=recorder
    )
    secret = "HUNTER2-s3cret"
    auth = base64.b64encode(f"alice:{secret}".encode()).decode()
    with (
        caplog.at_level(logging.INFO, logger=AUDIT_LOGGER),
        serve_parts(tmp_path, parts) as (client, _),
    ):
        for ref in ("r.example/good:1", "r.example/bad:1", "???"):
            client.verifier.Verify(
                verifier_pb2.VerifyRequest(
                    reference=ref,
                    caller="cri",
                    credentials=verifier_pb2.RegistryCredentials(auth=auth, identity_token=secret),
                ),
                timeout=10,
            )
    records = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert len(records) == 3
    docs = [json.loads(r.getMessage()) for r in records]
    assert [d["decision"] for d in docs] == ["allow", "deny", "deny"]
    assert [d["reason"] for d in docs] == ["VERIFIED", "UNTRUSTED", "MALFORMED"]
    assert all(d["caller"] == "cri" for d in docs)
    assert all(d["front"] == "grpc" for d in docs)
    assert all("credentials" not in d for d in docs)
    assert all(secret not in r.getMessage() and "alice" not in r.getMessage() for r in records)


def test_a_start_up_config_error_elsewhere_keeps_the_sockets_and_the_cri_section(
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        'trust_dir = "trust"\n'
        '[api]\nsocket = "/run/pg/api.sock"\nsocket_mode = "0600"\n'
        '[cri]\nsocket = "/run/pg/cri.sock"\nupstream = "unix:///run/containerd/containerd.sock"\n'
        '[metrics]\naddress = ""\n'
        '[statements."prod"]\nmode = "enforced"\n'  # a typo elsewhere in the file
    )
    config = initial_config(config_path)
    assert (config.api.socket, config.api.socket_mode) == (Path("/run/pg/api.sock"), 0o600)
    assert config.cri is not None
    assert config.cri.socket == Path("/run/pg/cri.sock")
    assert config.metrics.address == ""


def test_a_start_up_config_error_in_api_falls_back_to_the_defaults(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text('[api]\nsocket_mode = "0999"\n[cri]\nsocket = "/run/pg/cri.sock"\n')
    config = initial_config(config_path)
    assert config.api == DaemonConfig().api
    assert config.cri is None
