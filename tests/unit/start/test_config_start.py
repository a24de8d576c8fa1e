"""``[runtime]`` and ``[break_glass]`` in the daemon config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.config import parse_config
from pullgate.config.model import RuntimeTransport
from pullgate.errors import ConfigError, Reason

SOURCE = Path("/etc/pullgate/config.toml")


def test_absent_tables_mean_no_gate_and_no_break_glass() -> None:
    config = parse_config(b"", SOURCE)
    assert (config.runtime, config.break_glass) == (None, None)


def test_tables_are_read() -> None:
    config = parse_config(
        b'[runtime]\nsocket = "/run/x/runtime.sock"\nupstream = "unix:///run/c.sock"\n'
        b'overlap_pulls = false\naudit_interval = 5\ntransport = "splice"\n'
        b'[break_glass]\nfile = "glass"\n',
        SOURCE,
    )
    assert config.runtime is not None
    assert (str(config.runtime.socket), config.runtime.socket_mode) == (
        "/run/x/runtime.sock",
        0o600,
    )
    assert (config.runtime.upstream, config.runtime.overlap_pulls) == ("unix:///run/c.sock", False)
    assert config.runtime.audit_interval == 5.0
    assert config.runtime.transport is RuntimeTransport.SPLICE
    assert config.break_glass is not None
    assert config.break_glass.file == Path("/etc/pullgate/glass")


@pytest.mark.parametrize(
    "text",
    [
        b'[runtime]\nsocket = "relative.sock"\n',
        b'[runtime]\nupstream = "tcp://1.2.3.4:1"\n',
        b"[runtime]\nsocket_mode = true\n",
        b"[runtime]\nunknown = 1\n",
        b"[runtime]\naudit_interval = -1\n",
        b'[runtime]\ntransport = "h2c"\n',
        b'[break_glass]\nfile = ""\n',
        b"[break_glass]\nexpires = 1\n",
    ],
)
def test_bad_values_are_refused(text: bytes) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, SOURCE)
    assert err.value.reason is Reason.CONFIG
