"""``[cache]`` bounds of the memos beyond the decision cache: each key is read, and a bad value
is a typed ConfigError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullgate.config import CacheConfig, parse_config
from pullgate.errors import ConfigError, Reason

SOURCE = Path("/etc/pullgate/config.toml")

# key -> (a valid non-default value, its attribute on CacheConfig)
KEYS = {
    "certificate_entries": 7,
}


@pytest.mark.parametrize(("key", "value"), KEYS.items())
def test_each_key_is_read(key: str, value: int) -> None:
    config = parse_config(f"[cache]\n{key} = {value}\n".encode(), SOURCE)
    assert getattr(config.cache, key) == value
    assert getattr(CacheConfig(), key) != value


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("bad", ["0", "-1", "1.5", '"8"', "true", "inf"])
def test_a_bad_value_is_a_config_error_naming_the_key(key: str, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[cache]\n{key} = {bad}\n".encode(), SOURCE)
    assert info.value.reason is Reason.CONFIG
    assert [p.removeprefix(f"{SOURCE}: ").split(": ", 1)[0] for p in info.value.problems] == [
        f"cache.{key}"
    ]
