"""OCI image layout (image-spec ``image-layout.md``) as a signature source.

Signature discovery follows notation-go for non-registry stores: every manifest reachable from
``index.json`` whose ``subject`` equals the target (mediaType, digest and size) is a candidate,
kept when it is a Notary signature manifest in one of the two accepted forms:

* image-spec 1.1: ``artifactType = application/vnd.cncf.notary.signature`` and the empty config
  (``application/vnd.oci.empty.v1+json``);
* legacy: no ``artifactType`` and ``config.mediaType = application/vnd.cncf.notary.signature``.

A kept manifest must carry exactly one layer (the envelope). Every byte read is hashed and
compared with the digest that named it, and sizes are capped before reading.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pullgate.common.descriptor import Descriptor, check_digest, is_digest
from pullgate.errors import MalformedInput, PullgateError
from pullgate.verification.model import (
    ARTIFACT_TYPE_SIGNATURE,
    MEDIA_TYPE_EMPTY_CONFIG,
)
from pullgate.verification.verifier import SignatureBlob

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_ENVELOPE_BYTES = 32 * 1024 * 1024

MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
INDEX_TYPES = frozenset({MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST})
MANIFEST_TYPES = frozenset(
    {MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_ARTIFACT_MANIFEST}
)
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedInput(f"{what} is not a JSON object")
    return obj


def _descriptor_list(obj: dict[str, Any], key: str, what: str) -> list[Descriptor]:
    raw = obj.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise MalformedInput(f"{what}: {key} is not a list")
    return [Descriptor.from_json(d) for d in raw]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayoutReference:
    """``PATH@DIGEST`` or ``PATH:TAG`` as notation accepts with ``--oci-layout``."""

    path: Path
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> LayoutReference:
        """Split a layout reference; the path may itself contain ``:`` before the last ``/``."""
        if "@" in text:
            path, _, digest = text.rpartition("@")
            if not path or not is_digest(digest):
                raise MalformedInput(f"invalid OCI layout reference {text!r}: bad digest")
            return cls(path=Path(path), digest=digest)
        head, sep, tail = text.rpartition(":")
        if sep and head and "/" not in tail and tail:
            return cls(path=Path(head), tag=tail)
        raise MalformedInput(
            f"invalid OCI layout reference {text!r}: expected PATH@sha256:DIGEST or PATH:TAG"
        )


class OciLayout:
    """Read-only access to an OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        """Open ``root``; raises :class:`MalformedInput` unless it is an OCI image layout."""
        self.root = root
        marker = self._read_file(root / "oci-layout", MAX_MANIFEST_BYTES, "oci-layout")
        version = _json_object(marker, "oci-layout").get("imageLayoutVersion")
        if not isinstance(version, str):
            raise MalformedInput(f"{root}: oci-layout has no imageLayoutVersion")
        index = _json_object(
            self._read_file(root / "index.json", MAX_MANIFEST_BYTES, "index.json"), "index.json"
        )
        self._index_entries = _descriptor_list(index, "manifests", "index.json")

    # -------------------------------------------------------------------- reading

    @staticmethod
    def _read_file(path: Path, limit: int, what: str) -> bytes:
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise MalformedInput(f"{what} at {path} is not a regular file")
            if info.st_size > limit:
                raise MalformedInput(f"{what} at {path} is {info.st_size} bytes, limit {limit}")
            with path.open("rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise MalformedInput(f"cannot read {what} at {path}: {exc.strerror}") from exc
        if len(data) > limit:
            raise MalformedInput(f"{what} at {path} exceeds {limit} bytes")
        return data

    def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        """Read a blob named by ``desc``: size cap, size equality and digest check."""
        if desc.size > limit:
            raise MalformedInput(f"blob {desc.digest} is {desc.size} bytes, limit {limit}")
        alg, _, hexpart = desc.digest.partition(":")
        data = self._read_file(self.root / "blobs" / alg / hexpart, limit, f"blob {desc.digest}")
        if len(data) != desc.size:
            raise MalformedInput(
                f"blob {desc.digest} has {len(data)} bytes, descriptor says {desc.size}"
            )
        check_digest(data, desc.digest)
        return data

    def read_manifest(self, desc: Descriptor) -> dict[str, Any]:
        """Read and parse a manifest or index blob."""
        return _json_object(self.read_blob(desc, MAX_MANIFEST_BYTES), f"manifest {desc.digest}")

    # -------------------------------------------------------------------- resolving

    def resolve(self, ref: LayoutReference) -> Descriptor:
        """The descriptor for a tag (``index.json`` ref-name annotation) or digest."""
        if ref.tag is not None:
            for desc in self._index_entries:
                if desc.annotations.get(REF_NAME_ANNOTATION) == ref.tag:
                    return self._plain(desc)
            raise MalformedInput(f"tag {ref.tag!r} not found in {self.root}/index.json")
        assert ref.digest is not None  # noqa: S101 - LayoutReference.parse guarantees one of both
        for desc in self.manifests():
            if desc.digest == ref.digest:
                return self._plain(desc)
        raise MalformedInput(f"digest {ref.digest} not found in OCI layout {self.root}")

    @staticmethod
    def _plain(desc: Descriptor) -> Descriptor:
        return Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)

    def manifests(self) -> Iterator[Descriptor]:
        """Every manifest/index descriptor reachable from ``index.json`` (each once)."""
        seen: set[str] = set()
        stack = list(reversed(self._index_entries))
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            yield desc
            if desc.media_type in INDEX_TYPES:
                children = _descriptor_list(self.read_manifest(desc), "manifests", desc.digest)
                stack.extend(reversed(children))

    # -------------------------------------------------------------------- signatures

    def signature_manifests(self, target: Descriptor) -> Iterator[Descriptor]:
        """Descriptors of the Notary signature manifests whose subject is ``target``."""
        for desc, _manifest in self._signature_manifests(target):
            yield desc

    def _signature_manifests(
        self, target: Descriptor
    ) -> Iterator[tuple[Descriptor, dict[str, Any]]]:
        """:meth:`signature_manifests` with each manifest as parsed (read once)."""
        for desc in self.manifests():
            if desc.media_type not in MANIFEST_TYPES or desc.digest == target.digest:
                continue
            manifest = self.read_manifest(desc)
            subject_raw = manifest.get("subject")
            if subject_raw is None:
                continue
            subject = Descriptor.from_json(subject_raw)
            if not subject.same_target(target):
                continue
            if _is_notary_signature(manifest, desc.digest):
                yield desc, manifest

    def signatures(self, target: Descriptor) -> Iterator[SignatureBlob]:
        """The :class:`SignatureSource` protocol: envelope bytes in layout order."""
        for desc, manifest in self._signature_manifests(target):
            layers = manifest.get("layers", manifest.get("blobs"))
            if not isinstance(layers, list) or len(layers) != 1:
                count = len(layers) if isinstance(layers, list) else 0
                raise MalformedInput(
                    f"signature manifest {desc.digest} must have exactly one envelope layer, "
                    f"got {count}"
                )
            layer = Descriptor.from_json(layers[0])
            yield SignatureBlob(
                manifest_digest=desc.digest,
                media_type=layer.media_type,
                envelope=self.read_blob(layer, MAX_ENVELOPE_BYTES),
            )


def _is_notary_signature(manifest: dict[str, Any], digest: str) -> bool:
    artifact_type = manifest.get("artifactType")
    config = manifest.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    if artifact_type == ARTIFACT_TYPE_SIGNATURE:
        if config_type == MEDIA_TYPE_EMPTY_CONFIG:
            return True
        log.warning(
            "manifest %s has the Notary artifactType but config media type %r; skipped",
            digest,
            config_type,
        )
        return False
    return artifact_type is None and config_type == ARTIFACT_TYPE_SIGNATURE


def open_layout(path: Path) -> OciLayout:
    """Open an OCI layout, turning any filesystem surprise into :class:`MalformedInput`."""
    try:
        if not os.path.isdir(path):
            raise MalformedInput(f"{path} is not a directory")
        return OciLayout(path)
    except PullgateError:
        raise
    except (OSError, ValueError) as exc:
        raise MalformedInput(f"cannot open OCI layout {path}: {exc}") from exc
