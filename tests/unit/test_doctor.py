"""``pullgate doctor``: a table of containerd / kubelet configurations and the codes they yield.

Each row writes real files (containerd ``config.toml`` in the 1.6/1.7 ``version = 2`` or the 2.x
``version = 3`` schema, a verifier ``bin_dir``, kubelet ``config.yaml`` / flag files) and asserts
the exact set of finding codes, so a missed bypass and a spurious finding both fail.
"""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pullgate.doctor import (
    SHIM_NAME,
    Code,
    DoctorPaths,
    Finding,
    Severity,
    main_doctor,
    parse_version,
    render_findings,
    run_doctor,
)

V2_REGISTRY = """version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
"""
V2_NO_PATH = """version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
"""


def v3(
    config_path: str | None = "/etc/containerd/certs.d", extra: str = "", bindir: str = ""
) -> str:
    text = "version = 3\n[plugins.'io.containerd.cri.v1.images']\n" + extra
    if config_path is not None:
        text += (
            f"[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = '{config_path}'\n"
        )
    text += "[plugins.'io.containerd.image-verifier.v1.bindir']\n  bin_dir = '{bin_dir}'\n" + bindir
    return text


KUBELET_OK = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" + (
    "imageServiceEndpoint: unix://{cri}  # pullgate\n"
)
KUBELET_UNSET = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
KUBELET_OTHER = KUBELET_UNSET + 'imageServiceEndpoint: "unix:///run/containerd/containerd.sock"\n'


@dataclass
class Case:
    containerd: str | None
    version: tuple[int, int] | None
    expected: set[Code]
    kubelet: str | None = KUBELET_OK
    flags: str | None = None
    bin_entries: dict[str, int] = field(default_factory=lambda: {SHIM_NAME: 0o755})


CASES: dict[str, Case] = {
    "1.6 v2 with config_path, kubelet proxied": Case(
        V2_REGISTRY, (1, 6), {Code.VERIFIERS_UNAVAILABLE}
    ),
    "1.6 v2 without config_path": Case(
        V2_NO_PATH, (1, 6), {Code.CONFIG_PATH_UNSET, Code.VERIFIERS_UNAVAILABLE}
    ),
    "1.7 no config file at all": Case(
        None,
        (1, 7),
        {Code.CONTAINERD_CONFIG_MISSING, Code.CONFIG_PATH_UNSET, Code.VERIFIERS_UNAVAILABLE},
    ),
    "1.6 kubelet without imageServiceEndpoint": Case(
        V2_REGISTRY,
        (1, 6),
        {Code.VERIFIERS_UNAVAILABLE, Code.KUBELET_ENDPOINT_UNSET},
        KUBELET_UNSET,
    ),
    "1.6 kubelet pointing at containerd": Case(
        V2_REGISTRY,
        (1, 6),
        {Code.VERIFIERS_UNAVAILABLE, Code.KUBELET_ENDPOINT_MISMATCH},
        KUBELET_OTHER,
    ),
    "1.6 flags file overrides config": Case(
        V2_REGISTRY,
        (1, 6),
        {Code.VERIFIERS_UNAVAILABLE, Code.KUBELET_ENDPOINT_MISMATCH},
        flags='KUBELET_EXTRA_ARGS="--image-service-endpoint unix:///run/other.sock"\n',
    ),
    "1.6 endpoint only in flags file": Case(
        V2_REGISTRY,
        (1, 6),
        {Code.VERIFIERS_UNAVAILABLE},
        KUBELET_UNSET,
        flags="KUBELET_EXTRA_ARGS=--image-service-endpoint=unix://{cri}\n",
    ),
    "no kubelet files": Case(
        V2_REGISTRY, (1, 6), {Code.VERIFIERS_UNAVAILABLE, Code.KUBELET_CONFIG_MISSING}, None
    ),
    "2.3 v3 clean": Case(v3(), (2, 3), set()),
    "2.3 v3 clean, version assumed": Case(v3(), None, {Code.CONTAINERD_VERSION_ASSUMED}),
    "2.3 v3 config_path list": Case(
        v3("/etc/containerd/certs.d:/etc/docker/certs.d"), (2, 3), {Code.CONFIG_PATH_LIST}
    ),
    "2.1 v3 config_path unset = default list": Case(v3(None), (2, 1), {Code.CONFIG_PATH_LIST}),
    "2.0 v3 list is fine (local pull), no CRI verifiers": Case(
        v3("/a:/b"), (2, 0), {Code.VERIFIERS_UNAVAILABLE}
    ),
    "2.3 v2 schema (migrated) with list": Case(
        V2_REGISTRY.replace("certs.d", "certs.d:/etc/docker/certs.d")
        + "[plugins.'io.containerd.image-verifier.v1.bindir']\n  bin_dir = '{bin_dir}'\n",
        (2, 3),
        {Code.CONFIG_PATH_LIST},
    ),
    "2.3 use_local_image_pull": Case(
        v3(extra="  use_local_image_pull = true\n"),
        (2, 3),
        {Code.LOCAL_IMAGE_PULL, Code.VERIFIERS_UNAVAILABLE},
    ),
    "2.3 legacy mirrors force local pull": Case(
        v3(None)
        + "[plugins.'io.containerd.cri.v1.images'.registry.mirrors.'docker.io']\n"
        + "  endpoint = ['https://m']\n",
        (2, 3),
        {Code.LOCAL_IMAGE_PULL, Code.VERIFIERS_UNAVAILABLE},
    ),
    "2.3 max_concurrent_downloads != 3": Case(
        v3(extra="  max_concurrent_downloads = 5\n"),
        (2, 3),
        {Code.LOCAL_IMAGE_PULL, Code.VERIFIERS_UNAVAILABLE},
    ),
    "2.3 local pull hides the list and a bad bin_dir, all reported": Case(
        v3("/a:/b", extra="  use_local_image_pull = true\n"),
        (2, 3),
        {
            Code.LOCAL_IMAGE_PULL,
            Code.CONFIG_PATH_LIST,
            Code.VERIFIERS_UNAVAILABLE,
            Code.BIN_DIR_NOT_EXECUTABLE,
        },
        bin_entries={SHIM_NAME: 0o755, "notes": 0o644},
    ),
    "2.3 non-executable entry in bin_dir": Case(
        v3(), (2, 3), {Code.BIN_DIR_NOT_EXECUTABLE}, bin_entries={SHIM_NAME: 0o755, "notes": 0o644}
    ),
    "2.3 subdirectory in bin_dir": Case(
        v3(), (2, 3), {Code.BIN_DIR_NOT_EXECUTABLE}, bin_entries={SHIM_NAME: 0o755, "sub/": 0}
    ),
    "2.3 shim missing": Case(v3(), (2, 3), {Code.SHIM_MISSING}, bin_entries={"other": 0o755}),
    "2.3 shim missing, kubelet also bypassed": Case(
        v3(),
        (2, 3),
        {Code.SHIM_MISSING, Code.KUBELET_ENDPOINT_UNSET},
        KUBELET_UNSET,
        bin_entries={},
    ),
    "2.3 verifiers enforce, kubelet direct is only a warning": Case(
        v3(), (2, 3), {Code.KUBELET_ENDPOINT_UNSET}, KUBELET_UNSET
    ),
    "2.3 max_verifiers stops before shim": Case(
        v3(bindir="  max_verifiers = 1\n"),
        (2, 3),
        {Code.SHIM_NOT_RUN},
        bin_entries={"a-first": 0o755, SHIM_NAME: 0o755},
    ),
    "2.3 per_verifier_timeout too short": Case(
        v3(bindir="  per_verifier_timeout = '2s'\n"), (2, 3), {Code.VERIFIER_TIMEOUT_SHORT}
    ),
    "2.3 verifier plugin disabled": Case(
        "disabled_plugins = ['io.containerd.image-verifier.v1.bindir']\n" + v3(),
        (2, 3),
        {Code.VERIFIER_PLUGIN_DISABLED},
    ),
    "invalid TOML": Case("version = 3\n[plugins\n", (2, 3), {Code.CONTAINERD_CONFIG_INVALID}),
    "arrays nested too deep do not crash": Case(
        "version = 3\nx = " + "[" * 5000 + "\n", (2, 3), {Code.CONTAINERD_CONFIG_INVALID}
    ),
    "wrong types do not crash": Case(
        "version = 3\nplugins = 5\n",
        (2, 3),
        {Code.CONFIG_PATH_LIST, Code.SHIM_MISSING},
        bin_entries={},
    ),
    "unknown schema": Case("version = 9\n", None, {Code.CONTAINERD_CONFIG_INVALID}),
    "schema newer than containerd reads": Case(
        "version = 5\n", None, {Code.CONTAINERD_CONFIG_INVALID}
    ),
    "2.4 v4 (config migrate) clean": Case(
        v3().replace("version = 3", "version = 4"), (2, 4), set()
    ),
    "2.4 v4 is read, not skipped": Case(
        v3(extra="  use_local_image_pull = true\n").replace("version = 3", "version = 4"),
        (2, 4),
        {Code.LOCAL_IMAGE_PULL, Code.VERIFIERS_UNAVAILABLE},
    ),
}

ERRORS_ONLY_WARN = {Code.KUBELET_ENDPOINT_UNSET}


@dataclass
class Node:
    root: Path
    cri: Path

    def paths(self, case: Case, *, sockets: bool = False) -> DoctorPaths:
        bin_dir = self.root / "bin"
        bin_dir.mkdir()
        for name, mode in case.bin_entries.items():
            if name.endswith("/"):
                (bin_dir / name).mkdir()
                continue
            entry = bin_dir / name
            entry.write_text("#!/bin/sh\nexit 0\n")
            entry.chmod(mode)
        subs = {"bin_dir": str(bin_dir), "cri": str(self.cri)}
        containerd = self.root / "config.toml"
        if case.containerd is not None:
            containerd.write_text(case.containerd.replace("{bin_dir}", subs["bin_dir"]))
        kubelet = self.root / "kubelet.yaml"
        if case.kubelet is not None:
            kubelet.write_text(case.kubelet.replace("{cri}", subs["cri"]))
        flags = self.root / "kubelet.env"
        if case.flags is not None:
            flags.write_text(case.flags.replace("{cri}", subs["cri"]))
        return DoctorPaths(
            containerd_config=containerd,
            kubelet_config=kubelet,
            kubelet_flags=(flags,),
            api_socket=self.root / "pullgate.sock",
            cri_socket=self.cri,
            containerd_version=case.version,
            check_sockets=sockets,
        )


@pytest.fixture
def node() -> Iterator[Node]:
    with tempfile.TemporaryDirectory(prefix="pg-doc-", dir="/tmp") as name:
        root = Path(name)
        yield Node(root, root / "cri.sock")


@pytest.mark.parametrize("name", list(CASES))
def test_table(node: Node, name: str) -> None:
    case = CASES[name]
    findings = run_doctor(node.paths(case))
    assert {f.code for f in findings} == case.expected
    for finding in findings:
        assert finding.fix
        assert finding.summary().startswith(finding.severity.value)


def test_kubelet_bypass_is_an_error_when_verifiers_do_not_enforce(node: Node) -> None:
    findings = run_doctor(node.paths(Case(V2_REGISTRY, (1, 6), set(), KUBELET_UNSET)))
    [kubelet] = [f for f in findings if f.code is Code.KUBELET_ENDPOINT_UNSET]
    assert kubelet.severity is Severity.ERROR


def test_kubelet_bypass_is_a_warning_when_verifiers_enforce(node: Node) -> None:
    findings = run_doctor(node.paths(Case(v3(), (2, 3), set(), KUBELET_UNSET)))
    assert [(f.code, f.severity) for f in findings] == [
        (Code.KUBELET_ENDPOINT_UNSET, Severity.WARNING)
    ]


def test_finding_points_at_the_line(node: Node) -> None:
    text = v3("/a:/b")
    findings = run_doctor(node.paths(Case(text, (2, 3), set())))
    [finding] = findings
    assert finding.file is not None
    assert finding.line is not None
    assert "config_path" in finding.file.read_text().splitlines()[finding.line - 1]


def test_sockets(node: Node) -> None:
    paths = node.paths(Case(V2_REGISTRY, (1, 6), set()), sockets=True)
    codes = {f.code for f in run_doctor(paths)}
    assert {Code.API_SOCKET_MISSING, Code.CRI_SOCKET_MISSING} <= codes
    listeners = []
    for path in (paths.api_socket, paths.cri_socket):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        listeners.append(sock)
    try:
        codes = {f.code for f in run_doctor(paths)}
    finally:
        for sock in listeners:
            sock.close()
    assert not codes & {Code.API_SOCKET_MISSING, Code.CRI_SOCKET_MISSING}


def test_errors_sort_first_and_render() -> None:
    findings = [
        Finding(
            severity=Severity.INFO, code=Code.VERIFIERS_UNAVAILABLE, message="m", file=None, fix="f"
        ),
    ]
    assert render_findings(findings).startswith("INFO VERIFIERS_UNAVAILABLE")
    assert "no problems" in render_findings([])


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7", (2, 1)),
        ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", (1, 6)),
        ("containerd containerd.io 1.7.27 05044ec", (1, 7)),
        ("garbage", None),
    ],
)
def test_parse_version(text: str, version: tuple[int, int] | None) -> None:
    assert parse_version(text) == version


def test_main_exit_codes(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    paths = node.paths(Case(V2_NO_PATH, (1, 6), set()))
    common = [
        "--containerd-config",
        str(paths.containerd_config),
        "--kubelet-config",
        str(paths.kubelet_config),
        "--kubelet-flags",
        str(paths.kubelet_flags[0]),
        "--cri-socket",
        str(paths.cri_socket),
        "--no-socket-check",
        "--output",
        "json",
    ]
    assert main_doctor([*common, "--containerd-version", "1.6"]) == 1
    codes = {doc["code"] for doc in json.loads(capsys.readouterr().out)}
    assert Code.CONFIG_PATH_UNSET in codes
    paths.containerd_config.write_text(V2_REGISTRY)
    assert main_doctor([*common, "--containerd-version", "1.6"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main_doctor([*common, "--containerd-version", "new"])
    assert info.value.code == 2
