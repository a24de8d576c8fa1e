"""OCI content descriptors (image-spec ``descriptor.md``) and digest helpers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pullgate.errors import MalformedInput

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$")

_BARE_SHA256 = re.compile(r"[a-f0-9]{64}")  # CRI-O's image IDs: the config digest's hex alone

_HASHES = MappingProxyType(
    {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
)


def is_digest(value: str) -> bool:
    """True for a well-formed ``alg:hex`` digest of a supported algorithm."""
    return bool(_DIGEST_RE.match(value))


def image_id(value: str) -> str | None:
    """The image ID (config digest) ``value`` names, or None when it names none.

    A runtime's image ID is a digest (containerd: ``sha256:<hex>``) or, from CRI-O, the same
    digest's 64 hex characters alone; exactly that shape is read as ``sha256:<hex>``, nothing
    shorter or longer (a truncated ID is a prefix search, not a digest).
    """
    if is_digest(value):
        return value
    if _BARE_SHA256.fullmatch(value):
        return f"sha256:{value}"
    return None


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """Digest ``data`` as ``alg:hex``."""
    return f"{algorithm}:{_HASHES[algorithm](data).hexdigest()}"


def check_digest(data: bytes, expected: str) -> None:
    """Raise :class:`MalformedInput` unless ``data`` hashes to ``expected``."""
    if not is_digest(expected):
        raise MalformedInput(f"invalid digest {expected!r}")
    alg = expected.split(":", 1)[0]
    actual = compute_digest(data, alg)
    if actual != expected:
        raise MalformedInput(f"content digest {actual} does not match expected {expected}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """An OCI descriptor. Equality for verification is on (media_type, digest, size)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def same_target(self, other: Descriptor) -> bool:
        """notation's payload check: mediaType, digest and size exactly equal."""
        return (self.media_type, self.digest, self.size) == (
            other.media_type,
            other.digest,
            other.size,
        )

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        """Parse a JSON descriptor object, raising :class:`MalformedInput` on any problem."""
        if not isinstance(obj, dict):
            raise MalformedInput("descriptor is not a JSON object")
        media_type = obj.get("mediaType")
        digest = obj.get("digest")
        size = obj.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise MalformedInput("descriptor mediaType missing or not a string")
        if not isinstance(digest, str) or not is_digest(digest):
            raise MalformedInput(f"descriptor digest invalid: {digest!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise MalformedInput(f"descriptor size invalid: {size!r}")
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise MalformedInput("descriptor artifactType is not a string")
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise MalformedInput("descriptor annotations must map strings to strings")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            artifact_type=artifact_type,
            annotations=dict(annotations),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form (annotations and artifactType only when set)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out
