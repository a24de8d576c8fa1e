"""packaging/kubernetes/daemonset.yaml: valid Kubernetes objects, and the promised shape.

Schemas: ``kubernetes-validate`` (bundles the upstream OpenAPI-derived JSON schemas, offline),
strict mode (unknown fields are errors). The shape assertions pin what packaging/README.md
promises operators: host sockets and certs.d mounts, exec probes speaking grpc.health.v1 over
the unix socket, no capabilities, read-only root filesystem, every node, node-critical priority.
The embedded daemon config and trust policy are checked with pullgate's own loaders.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from pullgate.config import parse_config
from pullgate.verification.policy import check_trust_dir

MANIFEST = Path(__file__).resolve().parents[2] / "packaging" / "kubernetes" / "daemonset.yaml"
K8S_VERSION = "1.30.0"  # oldest version we promise; also validated against the newest bundled


def _documents() -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs)
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}"
    return found[0]


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _one("DaemonSet", "pullgate")["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    containers = _pod_spec()["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("version", [K8S_VERSION, kubernetes_validate.latest_version()])
def test_every_document_is_schema_valid(version: str) -> None:
    docs = _documents()
    assert {d["kind"] for d in docs} >= {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "DaemonSet",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_validator_rejects_a_broken_daemonset() -> None:
    broken = copy.deepcopy(_one("DaemonSet", "pullgate"))
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown = copy.deepcopy(_one("DaemonSet", "pullgate"))
    unknown["spec"]["template"]["spec"]["hostSockets"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


def test_everything_lives_in_one_namespace() -> None:
    namespaced = [d for d in _documents() if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"pullgate-system"}
    assert _pod_spec()["serviceAccountName"] == "pullgate"


def test_runs_on_every_node_as_node_critical() -> None:
    spec = _pod_spec()
    assert spec["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in spec["tolerations"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "Default"
    assert spec["automountServiceAccountToken"] is False


def test_host_mounts() -> None:
    spec = _pod_spec()
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in _container()["volumeMounts"]}

    sockets = mounts["/run/pullgate"]
    assert volumes[sockets["name"]]["hostPath"]["path"] == "/run/pullgate"
    assert not sockets.get("readOnly", False)

    certs = mounts["/etc/containerd/certs.d"]
    assert volumes[certs["name"]]["hostPath"]["path"] == "/etc/containerd/certs.d"
    assert certs["readOnly"] is True

    trust = mounts["/etc/pullgate/trust"]
    assert volumes[trust["name"]]["configMap"]["name"] == "pullgate-trust"
    assert trust["readOnly"] is True

    config = mounts["/etc/pullgate/config.toml"]
    assert volumes[config["name"]]["configMap"]["name"] == "pullgate-config"

    containerd = mounts["/run/containerd"]
    assert volumes[containerd["name"]]["hostPath"]["path"] == "/run/containerd"
    assert containerd["readOnly"] is True

    # With a read-only root filesystem, everything written must be a volume.
    writable = {path for path, m in mounts.items() if not m.get("readOnly", False)}
    assert writable == {"/run/pullgate", "/var/cache/pullgate", "/tmp"}


def test_security_context_is_minimal() -> None:
    container = _container()
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in ctx["capabilities"]
    assert _pod_spec()["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_resources_have_requests_and_limits() -> None:
    resources = _container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


@pytest.mark.parametrize(
    ("probe", "service"),
    [
        ("startupProbe", "pullgate.v1.Verifier"),
        ("readinessProbe", "pullgate.v1.Verifier"),
        ("livenessProbe", ""),
    ],
)
def test_probes_use_grpc_health_over_the_unix_socket(probe: str, service: str) -> None:
    command = _container()[probe]["exec"]["command"]
    assert command[:2] == ["/opt/pullgate/bin/python", "-c"]
    script, arg = command[2], command[3]
    assert arg == service
    assert "grpc_health.v1" in script
    assert "unix:///run/pullgate/pullgate.sock" in script
    compile(script, f"<{probe}>", "exec")  # the probe is at least valid Python


def test_embedded_config_is_valid_and_matches_the_mounts(tmp_path: Path) -> None:
    text = _one("ConfigMap", "pullgate-config")["data"]["config.toml"]
    config = parse_config(text.encode(), Path("/etc/pullgate/config.toml"))
    assert config.trust_dir == Path("/etc/pullgate/trust")
    assert config.hosts_dirs == (Path("/etc/containerd/certs.d"),)
    assert config.api.socket == Path("/run/pullgate/pullgate.sock")
    assert config.api.socket_mode == 0o660
    assert config.cri is not None
    assert config.cri.socket.parent == Path("/run/pullgate")
    assert config.cri.upstream == "unix:///run/containerd/containerd.sock"
    assert config.verification.crl_cache_dir.parent == Path("/var/cache/pullgate")
    assert config.verification.allow_symlinks is True


def test_embedded_trust_policy_passes_policy_check(tmp_path: Path) -> None:
    data = _one("ConfigMap", "pullgate-trust")["data"]
    for key, value in data.items():
        (tmp_path / key).write_text(value)
    assert check_trust_dir(tmp_path) == []
