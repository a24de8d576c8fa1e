"""containerd's platform choice per release line (the real runtimes judge in
tests/integration/test_differential.py; these pin the matcher and its order)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from pullgate.decision.matcher import MAX_DEPTH, Profile, containerd_picks, pick
from pullgate.decision.platform import IndexEntry, index_entries, parse_platform
from pullgate.errors import MalformedInput

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def _entry(
    n: int, platform: str | None, media_type: str = OCI_MANIFEST, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": _digest(n), "size": 100 + n}
    if platform is not None:
        os_name, arch, *variant = platform.split("/")
        out["platform"] = {"os": os_name, "architecture": arch}
        if variant:
            out["platform"]["variant"] = variant[0]
    out.update(extra)
    return out


def _entries(*entries: dict[str, Any]) -> tuple[IndexEntry, ...]:
    return index_entries(json.dumps({"schemaVersion": 2, "manifests": entries}).encode())


def _no_nested(entry: IndexEntry) -> Sequence[IndexEntry]:
    raise AssertionError(f"unexpected nested index {entry.descriptor.digest}")


def _picked(entries: Sequence[IndexEntry], host: str, profile: Profile) -> int | None:
    chosen = pick(entries, parse_platform(host), profile, _no_nested)
    return int(chosen.descriptor.digest.split(":")[1], 16) if chosen else None


BOTH = tuple(Profile)

SELECTION = [
    # (index entries (number, platform), host, expected number, profiles)
    ([(1, "linux/amd64"), (2, "linux/arm64")], "linux/amd64", 1, BOTH),
    ([(1, "linux/amd64"), (2, "linux/arm64")], "linux/arm64", 2, BOTH),
    ([(1, "linux/amd64"), (2, "linux/arm64/v8")], "linux/arm64", 2, BOTH),
    ([(5, "linux/arm/v5"), (6, "linux/arm/v6")], "linux/arm/v7", 6, BOTH),
    ([(7, "linux/arm/v7")], "linux/arm/v6", None, BOTH),
    ([(7, "linux/arm")], "linux/arm/v7", 7, BOTH),
    ([(7, "linux/arm/v7"), (1, "linux/amd64")], "linux/arm64", 7, BOTH),
    ([(1, "windows/amd64")], "linux/amd64", None, BOTH),
    ([(1, "linux/amd64"), (2, "linux/amd64")], "linux/amd64", 1, BOTH),
    ([(3, "linux/386"), (1, "linux/amd64")], "linux/amd64", 1, BOTH),
    ([(3, "linux/386")], "linux/amd64", 3, BOTH),
    ([(3, "linux/i686")], "linux/amd64", None, BOTH),
    ([(1, "/amd64")], "linux/amd64", 1, BOTH),  # empty os is containerd's own GOOS
    ([(1, "LINUX/X86_64/V1")], "linux/amd64", 1, BOTH),
    ([(1, "linux/amd64/1")], "linux/amd64", None, BOTH),
    ([(1, "linux/amd64/v2"), (2, "linux/amd64")], "linux/amd64/v3", 1, BOTH),
    ([(2, "linux/arm64/v8.0")], "linux/arm64", None, (Profile.V16,)),
    ([(2, "linux/arm64/v8.0")], "linux/arm64", 2, (Profile.V2,)),
    ([(2, "linux/arm64/v8.2"), (3, "linux/arm64")], "linux/arm64/v9", 2, (Profile.V2,)),
    ([(2, "linux/arm64/v8.2"), (3, "linux/arm64")], "linux/arm64/v9", None, (Profile.V16,)),
]


@pytest.mark.parametrize(("entries", "host", "expected", "profiles"), SELECTION)
def test_selection_table(
    entries: list[tuple[int, str]], host: str, expected: int | None, profiles: tuple[Profile, ...]
) -> None:
    index = _entries(*(_entry(n, p) for n, p in entries))
    for profile in profiles:
        assert _picked(index, host, profile) == expected, profile


def test_annotations_and_media_types_play_no_part_in_matching() -> None:
    attestation = {"vnd.docker.reference.type": "attestation-manifest"}
    index = _entries(_entry(1, "linux/amd64", annotations=attestation), _entry(2, "linux/amd64"))
    assert _picked(index, "linux/amd64", Profile.V16) == 1
    odd = _entries(
        _entry(1, "linux/amd64", media_type="application/x-odd"), _entry(2, "linux/amd64")
    )
    assert _picked(odd, "linux/amd64", Profile.V2) is None  # containerd picks it, then fails


def test_platformless_entries_come_last_but_are_candidates() -> None:
    index = _entries(_entry(1, None), _entry(2, "linux/386"))
    assert _picked(index, "linux/amd64", Profile.V16) == 2
    assert (
        _picked(_entries(_entry(1, None), _entry(2, "linux/s390x")), "linux/amd64", Profile.V2) == 1
    )


def test_os_features_split_the_release_lines() -> None:
    featured = _entry(1, "linux/amd64")
    featured["platform"]["os.features"] = ["sse4"]
    index = _entries(featured, _entry(2, "linux/amd64"))
    assert _picked(index, "linux/amd64", Profile.V16) == 1
    assert _picked(index, "linux/amd64", Profile.V2) == 2
    picks = containerd_picks(index, parse_platform("linux/amd64"), _no_nested)
    assert [p.descriptor.digest for p in picks] == [_digest(1), _digest(2)]


def test_nested_indexes_are_walked() -> None:
    nested = _entries(_entry(5, "linux/arm64"), _entry(6, "linux/amd64"))
    top = _entries(_entry(9, "linux/amd64", media_type=OCI_INDEX), _entry(2, "linux/amd64"))

    def load(entry: IndexEntry) -> Sequence[IndexEntry]:
        assert entry.descriptor.digest == _digest(9)
        return nested

    picks = containerd_picks(top, parse_platform("linux/amd64"), load)
    assert [p.descriptor.digest for p in picks] == [_digest(6)]


def test_nesting_is_bounded() -> None:
    loop = _entries(_entry(9, None, media_type=OCI_INDEX))
    with pytest.raises(MalformedInput):
        pick(loop, parse_platform("linux/amd64"), Profile.V16, lambda _: loop)
    assert MAX_DEPTH >= 2
