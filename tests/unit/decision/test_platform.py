"""Parsing and normalising the requested and the host platform; the Only preference order."""

from __future__ import annotations

import pytest

from pullgate.decision.matcher import Profile, vector
from pullgate.decision.platform import (
    MAX_VARIANT_LEVEL,
    host_platform,
    parse_platform,
    preference,
)
from pullgate.errors import MalformedInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("Linux/AMD64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/arm64/v9.0", "linux/arm64/v9"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("macos/arm64", "darwin/arm64"),
        ("linux/s390x", "linux/s390x"),
    ],
)
def test_parse_platform_normalises_like_containerd(text: str, expected: str) -> None:
    assert str(parse_platform(text)) == expected


@pytest.mark.parametrize(
    "text", ["", "linux", "linux/", "/amd64", "linux/amd64/v8/x", "linux/amd 64", "a" * 300]
)
def test_parse_platform_rejects_garbage(text: str) -> None:
    with pytest.raises(MalformedInput):
        parse_platform(text)


def test_parse_platform_rejects_non_string() -> None:
    with pytest.raises(MalformedInput):
        parse_platform(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "linux/amd64"),
        ("aarch64", "linux/arm64"),
        ("armv7l", "linux/arm/v7"),
        ("armv6l", "linux/arm/v6"),
        ("armv8l", "linux/arm/v8"),
        ("i686", "linux/386"),
        ("ppc64le", "linux/ppc64le"),
        ("riscv64", "linux/riscv64"),
    ],
)
def test_host_platform_normalises_machine(machine: str, expected: str) -> None:
    assert str(host_platform(machine)) == expected


def test_host_platform_of_this_machine_is_linux() -> None:
    assert host_platform().os == "linux"


@pytest.mark.parametrize(
    ("host", "order"),
    [
        ("linux/arm/v7", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
        ("linux/arm/v6", ["linux/arm/v6", "linux/arm/v5"]),
        (
            "linux/arm64",
            ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"],
        ),
        ("linux/amd64", ["linux/amd64", "linux/386"]),
        ("linux/amd64/v3", ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]),
        ("linux/s390x", ["linux/s390x"]),
    ],
)
def test_preference_order(host: str, order: list[str]) -> None:
    assert [str(p) for p in preference(parse_platform(host))] == order


@pytest.mark.parametrize("text", ["linux/amd64/v9999999", "linux/arm/v65", "linux/amd64/99999"])
def test_an_absurd_variant_level_is_malformed_at_once(text: str) -> None:
    # containerd's matcher walks every level below the asked one; pullgate refuses such a
    # platform instead of building a vector of millions of matchers per decision.
    with pytest.raises(MalformedInput):
        parse_platform(text)


def test_the_highest_accepted_level_builds_a_short_vector() -> None:
    host = parse_platform(f"linux/amd64/v{MAX_VARIANT_LEVEL}")
    assert len(vector(host, Profile.V16)) == MAX_VARIANT_LEVEL + 1
