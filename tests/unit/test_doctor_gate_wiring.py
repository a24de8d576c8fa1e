"""``pullgate doctor`` on whether the kubelet really uses the container-start gate: a configured
``[runtime]`` the kubelet bypasses, endpoint spellings compared as the kubelet dials them, and
pullgate's own config as the source of the sockets and of ``[runtime]``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pullgate.cri.methods import CRI_SERVICE
from pullgate.cri.runtime_proxy import SERVICES
from pullgate.doctor import Code, DoctorPaths, Severity, run_doctor
from pullgate.doctor.endpoints import endpoint_path, same_socket
from pullgate.doctor.own_config import OwnConfig, read_own_config

V2 = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/c"\n'
CONTAINERD = "unix:///run/containerd/containerd.sock"


def _paths(
    tmp: Path,
    kubelet: str | None,
    *,
    gate: bool,
    flags: str | None = None,
    upstream: str | None = None,
    sockets: bool = False,
) -> DoctorPaths:
    (tmp / "containerd.toml").write_text(V2)
    if kubelet is not None:
        (tmp / "kubelet.yaml").write_text(kubelet)
    if flags is not None:
        (tmp / "kubelet.env").write_text(flags)
    unit = tmp / "pullgate.service"
    unit.write_text("[Service]\n")
    return DoctorPaths(
        containerd_config=tmp / "containerd.toml",
        kubelet_config=tmp / "kubelet.yaml",
        kubelet_flags=(tmp / "kubelet.env",),
        api_socket=tmp / "api.sock",
        cri_socket=tmp / "cri.sock",
        runtime_socket=tmp / "runtime.sock",
        runtime_gate=gate,
        runtime_upstream=upstream,
        containerd_version=(1, 6),
        check_sockets=sockets,
        systemd_units=(unit,),
    )


def _codes(paths: DoctorPaths) -> set[Code]:
    return {f.code for f in run_doctor(paths)}


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("unix:///run/p.sock", "/run/p.sock"),
        ("unix:/run/p.sock", "/run/p.sock"),
        ("/run/p.sock", "/run/p.sock"),
        ("unix://host/run/p.sock", "/run/p.sock"),  # Go's url.Parse: host, then path
        ("unix:///run/a%20b.sock", "/run/a b.sock"),
        ("unix:run/p.sock", None),  # opaque: an empty path
        ("tcp://127.0.0.1:1", None),
        ("npipe:////./pipe/x", None),
    ],
)
def test_endpoint_is_the_path_the_kubelet_dials(endpoint: str, path: str | None) -> None:
    assert endpoint_path(endpoint) == path


def test_same_socket_normalises_the_path() -> None:
    sock = Path("/run/pullgate/runtime.sock")
    for spelling in ("unix:///run/pullgate/runtime.sock", "unix:/run//pullgate/./runtime.sock"):
        assert same_socket(spelling, sock)
    assert not same_socket("unix:///run/pullgate/cri.sock", sock)
    assert not same_socket(None, sock)


@pytest.mark.parametrize("endpoint", [CONTAINERD, "unix:///run/pullgate/other.sock"])
def test_gate_configured_but_kubelet_on_the_runtime_is_an_error(
    tmp_path: Path, endpoint: str
) -> None:
    kubelet = f"containerRuntimeEndpoint: {endpoint}\nimageServiceEndpoint: {tmp_path}/cri.sock\n"
    findings = run_doctor(_paths(tmp_path, kubelet, gate=True))
    bypassed = [f for f in findings if f.code is Code.RUNTIME_GATE_BYPASSED]
    assert [f.severity for f in bypassed] == [Severity.ERROR]
    assert bypassed[0].file == tmp_path / "kubelet.yaml"
    assert str(tmp_path / "runtime.sock") in bypassed[0].fix


def test_gate_configured_and_no_runtime_endpoint_is_an_error(tmp_path: Path) -> None:
    kubelet = f"imageServiceEndpoint: unix://{tmp_path}/cri.sock\n"
    assert Code.RUNTIME_GATE_BYPASSED in _codes(_paths(tmp_path, kubelet, gate=True))


def test_a_flag_bypassing_the_gate_wins_over_the_config(tmp_path: Path) -> None:
    kubelet = f"containerRuntimeEndpoint: unix://{tmp_path}/runtime.sock\n"
    flags = f'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint={CONTAINERD}"\n'
    findings = run_doctor(_paths(tmp_path, kubelet, gate=True, flags=flags))
    bypassed = [f for f in findings if f.code is Code.RUNTIME_GATE_BYPASSED]
    assert [f.file for f in bypassed] == [tmp_path / "kubelet.env"]


@pytest.mark.parametrize("spelling", ["unix://{}", "unix:{}", "{}"])
def test_every_spelling_of_the_gate_is_the_gate(tmp_path: Path, spelling: str) -> None:
    endpoint = spelling.format(tmp_path / "runtime.sock")
    codes = _codes(_paths(tmp_path, f"containerRuntimeEndpoint: {endpoint}\n", gate=True))
    assert Code.RUNTIME_GATE_BYPASSED not in codes
    # The gate serves ImageService too, so no imageServiceEndpoint is needed ...
    assert Code.KUBELET_ENDPOINT_UNSET not in codes
    assert CRI_SERVICE in SERVICES  # ... which holds only while the gate serves it


@pytest.mark.parametrize("spelling", ["unix://{}", "unix:{}", "{}"])
def test_every_spelling_of_the_cri_socket_is_the_cri_socket(tmp_path: Path, spelling: str) -> None:
    kubelet = f"imageServiceEndpoint: {spelling.format(tmp_path / 'cri.sock')}\n"
    codes = _codes(_paths(tmp_path, kubelet, gate=False))
    assert not codes & {Code.KUBELET_ENDPOINT_MISMATCH, Code.KUBELET_ENDPOINT_UNSET}


def test_no_gate_configured_means_no_bypass(tmp_path: Path) -> None:
    kubelet = f"containerRuntimeEndpoint: {CONTAINERD}\n"
    assert Code.RUNTIME_GATE_BYPASSED not in _codes(_paths(tmp_path, kubelet, gate=False))


def test_no_kubelet_files_is_reported_once(tmp_path: Path) -> None:
    codes = _codes(_paths(tmp_path, None, gate=True))
    assert Code.KUBELET_CONFIG_MISSING in codes
    assert Code.RUNTIME_GATE_BYPASSED not in codes


def test_own_config_absent_is_no_gate(tmp_path: Path) -> None:
    assert read_own_config(tmp_path / "absent.toml") == (OwnConfig(), [])


def test_own_config_gives_the_sockets_and_the_gate(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[cri]\nsocket = "/run/x/cri.sock"\nupstream = "unix:///run/c.sock"\n'
        '[runtime]\nsocket = "/run/x/runtime.sock"\nupstream = "unix:///run/c.sock"\n'
    )
    own, findings = read_own_config(config)
    assert findings == []
    assert (own.runtime_gate, own.runtime_upstream) == (True, "unix:///run/c.sock")
    assert (own.cri_socket, own.runtime_socket) == (
        Path("/run/x/cri.sock"),
        Path("/run/x/runtime.sock"),
    )


def test_invalid_own_config_is_a_warning_and_keeps_the_gate(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('no_such_key = 1\n[runtime]\nsocket = "/run/x/runtime.sock"\n')
    own, findings = read_own_config(config)
    assert [(f.code, f.severity) for f in findings] == [
        (Code.PULLGATE_CONFIG_INVALID, Severity.WARNING)
    ]
    assert own.runtime_gate
    assert own.runtime_socket == Path("/run/x/runtime.sock")


def test_image_endpoint_on_the_gate_is_served_when_the_gate_is(tmp_path: Path) -> None:
    gate = tmp_path / "runtime.sock"
    kubelet = f"containerRuntimeEndpoint: {gate}\nimageServiceEndpoint: unix:{gate}\n"
    codes = _codes(_paths(tmp_path, kubelet, gate=True))
    assert not codes & {Code.KUBELET_ENDPOINT_MISMATCH, Code.RUNTIME_GATE_BYPASSED}
    # Without [runtime] and with the kubelet on containerd, nothing serves images there.
    kubelet = f"containerRuntimeEndpoint: {CONTAINERD}\nimageServiceEndpoint: unix:{gate}\n"
    assert Code.KUBELET_ENDPOINT_MISMATCH in _codes(_paths(tmp_path, kubelet, gate=False))


def test_gate_upstream_that_is_the_gate_is_a_loop(tmp_path: Path) -> None:
    gate = tmp_path / "runtime.sock"
    kubelet = f"containerRuntimeEndpoint: unix://{gate}\n"
    findings = run_doctor(_paths(tmp_path, kubelet, gate=True, upstream=f"unix:{gate}"))
    loops = [f.severity for f in findings if f.code is Code.RUNTIME_UPSTREAM_LOOP]
    assert loops == [Severity.ERROR]
    fine = run_doctor(_paths(tmp_path, kubelet, gate=True, upstream=CONTAINERD))
    assert Code.RUNTIME_UPSTREAM_LOOP not in {f.code for f in fine}


def test_gate_upstream_not_listening_is_an_error(tmp_path: Path) -> None:
    runtime = tmp_path / "containerd.sock"
    kubelet = f"containerRuntimeEndpoint: unix://{tmp_path / 'runtime.sock'}\n"

    def codes() -> set[Code]:
        paths = _paths(tmp_path, kubelet, gate=True, upstream=f"unix://{runtime}", sockets=True)
        return _codes(paths)

    assert Code.RUNTIME_UPSTREAM_DOWN in codes()
    with socket.socket(socket.AF_UNIX) as server:  # the socket file stays after close
        server.bind(str(runtime))
    assert Code.RUNTIME_UPSTREAM_DOWN not in codes()


def test_unreadable_kubelet_flags_file_is_reported_not_passed(tmp_path: Path) -> None:
    """A flag file that wins over the config but cannot be read: the doctor could not check
    the endpoints set there, so it says so instead of judging the config alone."""
    kubelet = (
        f"imageServiceEndpoint: unix://{tmp_path / 'cri.sock'}\n"
        f"containerRuntimeEndpoint: {CONTAINERD}\n"
    )
    paths = _paths(tmp_path, kubelet, gate=False)
    (tmp_path / "kubelet.env").write_bytes(b"--image-service-endpoint=\xff\xfe\n")
    findings = [f for f in run_doctor(paths) if f.code is Code.KUBELET_CONFIG_UNREADABLE]
    assert [(f.severity, f.file) for f in findings] == [
        (Severity.WARNING, tmp_path / "kubelet.env")
    ]
