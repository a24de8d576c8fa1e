"""``pullgate doctor --nri``: NRI disabled, pullgate not required, the tolerate annotation, and a
request timeout too short for the measured answer p99."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.doctor import DoctorPaths, run_doctor
from pullgate.doctor.findings import Code

GOOD = """version = 3
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d'
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  plugin_request_timeout = '2s'
  [plugins.'io.containerd.nri.v1.nri'.default_validator]
    enable = true
    required_plugins = ['pullgate']
"""


def _codes(
    tmp_path: Path, text: str, *, p99: float | None = None, version: tuple[int, int] = (2, 4)
) -> set[Code]:
    config = tmp_path / "config.toml"
    config.write_text(text)
    paths = DoctorPaths(
        containerd_config=config,
        kubelet_config=tmp_path / "none.yaml",
        kubelet_flags=(),
        containerd_version=version,
        check_sockets=False,
        nri_plugin="pullgate",
        nri_p99=p99,
    )
    return {f.code for f in run_doctor(paths) if f.code.value.startswith("NRI_")}


def test_a_fail_closed_configuration_has_no_nri_finding(tmp_path: Path) -> None:
    assert _codes(tmp_path, GOOD, p99=0.005) == set()


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (("disable = false", "disable = true"), Code.NRI_DISABLED),
        (("['pullgate']", "['other']"), Code.NRI_NOT_REQUIRED),
        (("enable = true", "enable = false"), Code.NRI_NOT_REQUIRED),
        (
            ("enable = true", "enable = true\n    tolerate_missing_plugins_annotation = 'x'"),
            Code.NRI_TOLERATE_ANNOTATION,
        ),
    ],
)
def test_each_fail_open_setting_is_flagged(
    tmp_path: Path, edit: tuple[str, str], code: Code
) -> None:
    assert code in _codes(tmp_path, GOOD.replace(*edit))


def test_no_nri_table_means_not_required(tmp_path: Path) -> None:
    text = GOOD.split("[plugins.'io.containerd.nri.v1.nri']")[0]
    assert _codes(tmp_path, text) == {Code.NRI_NOT_REQUIRED}


def test_request_timeout_against_measured_p99(tmp_path: Path) -> None:
    assert Code.NRI_TIMEOUT_SHORT in _codes(tmp_path, GOOD, p99=0.6)
    assert Code.NRI_TIMEOUT_SHORT not in _codes(tmp_path, GOOD, p99=0.4)
    short = GOOD.replace("'2s'", "'50ms'")
    assert Code.NRI_TIMEOUT_SHORT in _codes(tmp_path, short, p99=0.02)


def test_containerd_before_2_has_no_nri_gate(tmp_path: Path) -> None:
    assert Code.NRI_DISABLED in _codes(tmp_path, "version = 2\n", version=(1, 7))
