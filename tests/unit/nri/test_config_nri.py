"""``[nri]`` in the daemon config file, and containerd's launch environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.config import load_process_settings, parse_config
from pullgate.errors import ConfigError, Reason
from pullgate.nri.daemon import NriLaunch, launch_from_environment

SOURCE = Path("/etc/pullgate/config.toml")


def test_absent_table_means_no_plugin() -> None:
    assert parse_config(b"", SOURCE).nri is None


def test_table_is_read() -> None:
    config = parse_config(
        b'[nri]\nsocket = "/run/nri/nri.sock"\nname = "pull.gate-1"\nindex = "05"\n'
        b'evict = true\nevict_per_minute = 2\nevict_endpoint = "unix:///run/c.sock"\n'
        b"recheck_after = 5\n",
        SOURCE,
    )
    nri = config.nri
    assert nri is not None
    assert (str(nri.socket), nri.name, nri.index) == ("/run/nri/nri.sock", "pull.gate-1", "05")
    assert (nri.evict, nri.evict_per_minute, nri.evict_endpoint) == (True, 2, "unix:///run/c.sock")
    assert nri.recheck_after == 5.0


def test_defaults() -> None:
    nri = parse_config(b"[nri]\n", SOURCE).nri
    assert nri is not None
    assert (nri.name, nri.index, nri.evict, nri.evict_endpoint) == ("pullgate", "10", False, None)


@pytest.mark.parametrize(
    "text",
    [
        b'[nri]\nsocket = "relative.sock"\n',
        b'[nri]\nname = "pull gate"\n',
        b'[nri]\nname = ""\n',
        b'[nri]\nindex = "1"\n',
        b"[nri]\nindex = 10\n",
        b"[nri]\nevict = 1\n",
        b"[nri]\nevict_per_minute = 0\n",
        b'[nri]\nevict_endpoint = "/run/c.sock"\n',
        b"[nri]\nrecheck_after = -1\n",
        b"[nri]\nsockt = 1\n",
    ],
)
def test_bad_values_are_config_errors(text: bytes) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, SOURCE)
    assert info.value.reason is Reason.CONFIG


def test_nri_is_a_process_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[nri]\nsocket = "/run/n.sock"\n[statements.x]\nrequire = "nope"\n')
    salvaged = load_process_settings(path)
    assert salvaged is not None
    assert salvaged.nri is not None
    assert str(salvaged.nri.socket) == "/run/n.sock"


def test_launch_environment() -> None:
    assert launch_from_environment({}) is None
    env = {"NRI_PLUGIN_SOCKET": "3", "NRI_PLUGIN_NAME": "pullgate", "NRI_PLUGIN_IDX": "07"}
    assert launch_from_environment(env) == NriLaunch(fd=3, name="pullgate", index="07")
    with pytest.raises(ConfigError):
        launch_from_environment({"NRI_PLUGIN_SOCKET": "three"})
