"""``pullgate doctor`` on the container-start gate's wiring: a kubelet whose runtime endpoint is
pullgate's gate needs pullgate as a host service and its socket listening."""

from __future__ import annotations

import socket
from pathlib import Path

from pullgate.doctor import Code, DoctorPaths, run_doctor

V2 = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/c"\n'


def _paths(tmp: Path, kubelet: str, *, unit: bool, listening: bool) -> DoctorPaths:
    (tmp / "containerd.toml").write_text(V2)
    (tmp / "kubelet.yaml").write_text(kubelet)
    runtime = tmp / "runtime.sock"
    if listening:  # the socket file stays after close: what the check looks at
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(runtime))
    units = (tmp / "pullgate.service",)
    if unit:
        units[0].write_text("[Service]\n")
    return DoctorPaths(
        containerd_config=tmp / "containerd.toml",
        kubelet_config=tmp / "kubelet.yaml",
        kubelet_flags=(),
        api_socket=tmp / "api.sock",
        cri_socket=tmp / "cri.sock",
        runtime_socket=runtime,
        containerd_version=(1, 6),
        check_sockets=True,
        systemd_units=units,
    )


def _codes(paths: DoctorPaths) -> set[Code]:
    return {f.code for f in run_doctor(paths)}


def test_gate_without_a_host_service_is_an_error(tmp_path: Path) -> None:
    kubelet = f"containerRuntimeEndpoint: unix://{tmp_path / 'runtime.sock'}\n"
    codes = _codes(_paths(tmp_path, kubelet, unit=False, listening=True))
    assert Code.RUNTIME_GATE_NOT_HOST_SERVICE in codes
    assert Code.RUNTIME_GATE_DOWN not in codes
    # The gate serves image calls too: no imageServiceEndpoint is needed.
    assert Code.KUBELET_ENDPOINT_UNSET not in codes


def test_gate_down_is_an_error(tmp_path: Path) -> None:
    kubelet = f"containerRuntimeEndpoint: unix://{tmp_path / 'runtime.sock'}\n"
    codes = _codes(_paths(tmp_path, kubelet, unit=True, listening=False))
    assert Code.RUNTIME_GATE_DOWN in codes
    assert Code.RUNTIME_GATE_NOT_HOST_SERVICE not in codes


def test_host_service_gate_is_fine(tmp_path: Path) -> None:
    kubelet = f"containerRuntimeEndpoint: unix://{tmp_path / 'runtime.sock'}\n"
    codes = _codes(_paths(tmp_path, kubelet, unit=True, listening=True))
    assert not codes & {Code.RUNTIME_GATE_DOWN, Code.RUNTIME_GATE_NOT_HOST_SERVICE}


def test_kubelet_talking_to_containerd_has_no_gate_findings(tmp_path: Path) -> None:
    kubelet = "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"
    codes = _codes(_paths(tmp_path, kubelet, unit=False, listening=False))
    assert not codes & {Code.RUNTIME_GATE_DOWN, Code.RUNTIME_GATE_NOT_HOST_SERVICE}
