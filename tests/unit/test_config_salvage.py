"""The process-level tables of a config file that is not valid TOML as a whole."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullgate.config import load_config, load_process_settings
from pullgate.config.salvage import salvage_tables
from pullgate.errors import ConfigError, Reason
from pullgate.start.break_glass import parse_break_glass

TABLES = ("api", "cri", "metrics", "runtime")

GOOD = """\
trust_dir = "trust"
[api]
socket = "/run/x/api.sock"  # comment
[statements."prod"]
require = "both"
[ metrics ]
address = "127.0.0.1:9999"
"""


def test_a_valid_document_salvages_what_tomllib_reads() -> None:
    assert salvage_tables(GOOD, TABLES) == {
        k: v for k, v in tomllib.loads(GOOD).items() if k in TABLES
    }


def test_a_syntax_error_elsewhere_keeps_the_process_tables() -> None:
    broken = GOOD.replace('require = "both"', 'require = "both')
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(broken)
    assert salvage_tables(broken, TABLES) == {
        "api": {"socket": "/run/x/api.sock"},
        "metrics": {"address": "127.0.0.1:9999"},
    }


def test_a_syntax_error_in_a_process_table_salvages_nothing() -> None:
    broken = GOOD.replace('socket = "/run/x/api.sock"', 'socket = "/run/x/api.sock')
    assert salvage_tables(broken, TABLES) is None


def test_a_process_table_given_twice_salvages_nothing() -> None:
    assert salvage_tables(GOOD + '[api]\nsocket = "/elsewhere"\n', TABLES) is None


def test_dotted_keys_in_a_valid_top_level_section_count() -> None:
    text = 'api.socket = "/a.sock"\n[cri]\nsocket = "/c.sock"\n[x]\ny = =\n'
    assert salvage_tables(text, TABLES) == {
        "api": {"socket": "/a.sock"},
        "cri": {"socket": "/c.sock"},
    }


def test_a_replacement_character_is_never_used() -> None:
    assert salvage_tables('[api]\nsocket = "/run/\ufffd.sock"\n', TABLES) is None


def test_process_settings_of_a_file_with_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('trust_dir = "trust\n[api]\nsocket = "/run/t/api.sock"\nsocket_mode = "0600"\n')
    config = load_process_settings(path)
    assert config is not None
    assert config.api.socket == Path("/run/t/api.sock")
    assert config.api.socket_mode == 0o600


def test_process_settings_of_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'# caf\xe9\n[api]\nsocket = "/run/t/api.sock"\n')
    config = load_process_settings(path)
    assert config is not None
    assert config.api.socket == Path("/run/t/api.sock")


def test_an_invalid_process_table_still_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('trust_dir = "trust\n[api]\nsocket = "relative.sock"\n')
    assert load_process_settings(path) is None


@given(st.text(max_size=400))
def test_any_text_salvages_a_dict_or_none(text: str) -> None:
    result = salvage_tables(text, TABLES)
    assert result is None or set(result) <= set(TABLES)


@pytest.mark.parametrize(
    "breakage",
    ['trust_dir = "trust\n', 'trust_dir = "trust"\nplatfrom = "x"\n'],
    ids=["toml-syntax", "unknown-key"],
)
def test_a_broken_file_keeps_its_break_glass(tmp_path: Path, breakage: str) -> None:
    """Break-glass is the way out of a broken configuration: a start-up with a config error
    still honours the file's ``[break_glass]`` (the gate denies every start with ``CONFIG``
    until a valid configuration loads, and break-glass is what lets a node work meanwhile)."""
    path = tmp_path / "config.toml"
    path.write_text(f'{breakage}[break_glass]\nfile = "/etc/x/break-glass"\n')
    config = load_process_settings(path)
    assert config is not None
    assert config.break_glass is not None
    assert config.break_glass.file == Path("/etc/x/break-glass")


_DEEP = "[" * 5000  # arrays nested deeper than the interpreter's recursion limit


def test_arrays_nested_too_deep_are_a_config_error_not_a_crash(tmp_path: Path) -> None:
    """tomllib recurses per nesting level: such a file is refused with ``CONFIG`` at load
    (``pullgate serve --check-config`` and start-up alike), and salvages nothing."""
    path = tmp_path / "config.toml"
    path.write_text(f'[api]\nsocket = "/run/t/api.sock"\n[x]\ny = {_DEEP}\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.reason is Reason.CONFIG
    config = load_process_settings(path)
    assert config is not None
    assert config.api.socket == Path("/run/t/api.sock")
    path.write_text(f"[api]\nsocket = {_DEEP}\n")
    assert load_process_settings(path) is None


def test_a_break_glass_file_nested_too_deep_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_break_glass(f"expires = 2026-01-01T00:00:00Z\nreferences = {_DEEP}\n".encode())
    assert err.value.reason is Reason.CONFIG
