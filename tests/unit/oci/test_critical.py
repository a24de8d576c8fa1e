"""The critical-image allowlist."""

from __future__ import annotations

import pytest

from pullgate.errors import ConfigError, Reason
from pullgate.oci.critical import CriticalImages
from pullgate.registry.reference import parse_reference

DIGEST = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64


def _match(entries: list[str], image: str) -> str | None:
    return CriticalImages.parse(entries).match(parse_reference(image))


@pytest.mark.parametrize(
    ("entries", "image", "expected"),
    [
        (["registry.k8s.io/pause:3.9"], "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        (["registry.k8s.io/pause:3.9"], "registry.k8s.io/pause:3.10", None),
        (["pause:3.9"], "docker.io/library/pause:3.9", "docker.io/library/pause:3.9"),
        (["registry.k8s.io/pause:*"], "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:*"),
        (["registry.k8s.io/pause:*"], "registry.k8s.io/pause-evil:3.9", None),
        (["registry.k8s.io/pause:*"], "evil.io/registry.k8s.io/pause:3.9", None),
        (["*/calico/*"], "quay.io/calico/node:v3", "*/calico/*"),
        (["quay.io/calico/[n]ode:*"], "quay.io/calico/node:v3", None),
        ([DIGEST], f"anything.io/x@{DIGEST}", DIGEST),
        ([DIGEST], f"anything.io/x@{OTHER}", None),
        ([DIGEST], "anything.io/x:v1", None),
        ([f"r.io/x@{DIGEST}"], f"r.io/x@{DIGEST}", f"r.io/x@{DIGEST}"),
        ([f"r.io/x@{DIGEST}"], f"r.io/y@{DIGEST}", None),
        ([f"r.io/x:v1@{DIGEST}"], f"r.io/x:v1@{DIGEST}", f"r.io/x@{DIGEST}"),
        ([f"r.io/x:v1@{DIGEST}"], "r.io/x:v1", None),
        (["r.io/x@*"], f"r.io/x@{DIGEST}", "r.io/x@*"),
        ([], "registry.k8s.io/pause:3.9", None),
        # `*` stays within one path component.
        (["*.gcr.io/*"], "attacker.io/foo.gcr.io/x:1", None),
        (["*.gcr.io/*"], "eu.gcr.io/app:1", "*.gcr.io/*"),
        (["*.gcr.io/*"], "eu.gcr.io/team/app:1", None),
        (["*.gcr.io/*/*"], "eu.gcr.io/team/app:1", "*.gcr.io/*/*"),
        (["registry.k8s.io/*"], "registry.k8s.io/sub/pause:3.9", None),
        (["*/calico/*"], "evil.io/x/calico/node:v3", None),
        (["*/calico/*"], "quay.io/calico/sub/node:v3", None),
        # A pull that carries a digest is never admitted by its tag.
        (["pause:3.9"], f"docker.io/library/pause:3.9@{DIGEST}", None),
        (["registry.k8s.io/pause:3.9"], f"registry.k8s.io/pause:3.9@{DIGEST}", None),
        (["registry.k8s.io/pause:*"], f"registry.k8s.io/pause:3.9@{DIGEST}", None),
        (["registry.k8s.io/pause:3.9@*"], f"registry.k8s.io/pause:3.9@{DIGEST}", None),
        (["registry.k8s.io/pause:*"], f"registry.k8s.io/pause@{DIGEST}", None),
        # ... but by its digest, in any digest spelling.
        ([DIGEST], f"docker.io/library/pause:3.9@{DIGEST}", DIGEST),
        (
            ["registry.k8s.io/pause@*"],
            f"registry.k8s.io/pause:3.9@{DIGEST}",
            "registry.k8s.io/pause@*",
        ),
        (["registry.k8s.io/*"], f"registry.k8s.io/pause:3.9@{DIGEST}", "registry.k8s.io/*"),
        ([f"pause@{DIGEST}"], f"pause:3.9@{DIGEST}", f"docker.io/library/pause@{DIGEST}"),
        ([f"pause:3.9@{DIGEST}"], f"pause:3.9@{DIGEST}", f"docker.io/library/pause@{DIGEST}"),
        ([f"pause:3.9@{DIGEST}"], f"pause:3.9@{OTHER}", None),
        # A tag pull still matches its tag entry and tag pattern.
        (["pause:3.9"], "pause:3.9", "docker.io/library/pause:3.9"),
        (["registry.k8s.io/pause:*"], "registry.k8s.io/pause:3.10", "registry.k8s.io/pause:*"),
    ],
)
def test_matching(entries: list[str], image: str, expected: str | None) -> None:
    assert _match(entries, image) == expected


@pytest.mark.parametrize(
    "entry",
    ["", "   ", "r.io/UPPER:1", "sha256:abc", "sha512:" + "1" * 64, "r.io/x?", "r.io/x:bad tag"],
)
def test_invalid_entries_are_config_errors(entry: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        CriticalImages.parse(["registry.k8s.io/pause:3.9", entry])
    assert excinfo.value.reason is Reason.CONFIG
    assert len(excinfo.value.problems) == 1


def test_non_string_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        CriticalImages.parse([42])  # type: ignore[list-item]
