"""containerd's platform normalisation, Only-matcher order and manifest selection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pullgate.decision.platform import (
    Platform,
    host_platform,
    parse_platform,
    preference,
    select_manifest,
)
from pullgate.errors import MalformedInput

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def _entry(
    n: int, platform: str | None, media_type: str = OCI_MANIFEST, **annotations: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": _digest(n), "size": 100 + n}
    if platform is not None:
        parts = platform.split("/")
        out["platform"] = {"os": parts[0], "architecture": parts[1]}
        if len(parts) == 3:
            out["platform"]["variant"] = parts[2]
    if annotations:
        out["annotations"] = annotations
    return out


def _index(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()


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


AMD64, ARM64, ARMV7, ARMV6, ARMV5, ARM = 1, 2, 3, 4, 5, 6

SELECTION = [
    # (index platforms in order, host, expected entry number or None)
    ([(AMD64, "linux/amd64"), (ARM64, "linux/arm64")], "linux/amd64", AMD64),
    ([(AMD64, "linux/amd64"), (ARM64, "linux/arm64")], "linux/arm64", ARM64),
    ([(AMD64, "linux/amd64"), (ARM64, "linux/arm64/v8")], "linux/arm64", ARM64),
    ([(AMD64, "linux/amd64"), (ARM64, "linux/aarch64")], "linux/arm64/v8", ARM64),
    ([(ARMV5, "linux/arm/v5"), (ARMV6, "linux/arm/v6")], "linux/arm/v7", ARMV6),
    ([(ARMV5, "linux/arm/v5")], "linux/arm/v7", ARMV5),
    ([(ARMV6, "linux/arm/v6"), (ARMV7, "linux/arm/v7")], "linux/arm/v7", ARMV7),
    ([(ARMV7, "linux/arm/v7")], "linux/arm/v6", None),
    ([(ARM, "linux/arm")], "linux/arm/v7", ARM),
    ([(ARMV7, "linux/arm/v7"), (AMD64, "linux/amd64")], "linux/arm64", ARMV7),
    ([(AMD64, "linux/amd64")], "linux/arm64", None),
    ([(AMD64, "windows/amd64")], "linux/amd64", None),
    ([(AMD64, "linux/amd64"), (ARM64, "linux/amd64")], "linux/amd64", AMD64),
    ([(ARM64, "linux/386"), (AMD64, "linux/amd64")], "linux/amd64", AMD64),
    ([(ARM64, "linux/386")], "linux/amd64", ARM64),
]


@pytest.mark.parametrize(("entries", "host", "expected"), SELECTION)
def test_select_manifest_table(
    entries: list[tuple[int, str]], host: str, expected: int | None
) -> None:
    index = _index(*(_entry(n, p) for n, p in entries))
    chosen = select_manifest(index, parse_platform(host))
    assert (chosen.digest if chosen else None) == (_digest(expected) if expected else None)


def test_select_ignores_platformless_attestation_and_nested_index() -> None:
    index = _index(
        _entry(1, None),
        _entry(2, "unknown/unknown"),
        _entry(3, "linux/amd64", **{"vnd.docker.reference.type": "attestation-manifest"}),
        _entry(4, "linux/amd64", media_type=OCI_INDEX),
        _entry(5, "linux/amd64"),
    )
    chosen = select_manifest(index, Platform(os="linux", architecture="amd64"))
    assert chosen is not None
    assert chosen.digest == _digest(5)


def test_select_returns_none_when_only_attestations() -> None:
    index = _index(_entry(2, "unknown/unknown"), _entry(1, None))
    assert select_manifest(index, parse_platform("linux/amd64")) is None


def test_select_accepts_a_parsed_mapping() -> None:
    doc = json.loads(_index(_entry(1, "linux/arm64")))
    chosen = select_manifest(doc, parse_platform("linux/arm64"))
    assert chosen is not None
    assert chosen.size == 101


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"manifests": {}}',
        b'{"manifests": [{"mediaType": "x", "digest": "nope", "size": 1}]}',
        b'{"manifests": [1]}',
    ],
)
def test_select_rejects_malformed_index(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        select_manifest(data, parse_platform("linux/amd64"))


def test_malformed_platform_object_is_ignored() -> None:
    entry = _entry(1, None)
    entry["platform"] = {"os": 1, "architecture": ["x"]}
    index = _index(entry, _entry(2, "linux/amd64"))
    chosen = select_manifest(index, parse_platform("linux/amd64"))
    assert chosen is not None
    assert chosen.digest == _digest(2)
