"""Write OCI image layouts for tests: images, multi-platform indexes and Notary signatures.

Signatures are attached the way ``notation sign --oci-layout`` does: the signature manifest is
added to ``index.json`` so that it is reachable, and it names its target through ``subject``.
Both signature-manifest forms are supported (image-spec 1.1 ``artifactType`` + empty config, and
the legacy config media type).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pullgate.common.descriptor import Descriptor

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
SIG_TYPE = "application/vnd.cncf.notary.signature"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class LayoutWriter:
    """Builds an OCI image layout directory step by step."""

    root: Path
    index_entries: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.flush()

    def blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def flush(self) -> None:
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.index_entries}
        (self.root / "index.json").write_text(json.dumps(index, indent=1))

    def add_to_index(self, desc: Descriptor, *, tag: str | None = None) -> None:
        entry = desc.to_json()
        if tag:
            entry.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = tag
        self.index_entries.append(entry)
        self.flush()

    def image(
        self, *, content: bytes = b"layer", platform: str = "linux/amd64", tag: str | None = None
    ) -> Descriptor:
        """A single-platform image manifest (added to index.json when tagged)."""
        os_, arch, *variant = platform.split("/")
        cfg: dict[str, Any] = {"architecture": arch, "os": os_, "rootfs": {"type": "layers"}}
        if variant:
            cfg["variant"] = variant[0]
        config = self.blob(_canonical(cfg), MT_CONFIG)
        layer = self.blob(content, MT_LAYER)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        }
        desc = self.blob(_canonical(manifest), MT_MANIFEST)
        if tag is not None:
            self.add_to_index(desc, tag=tag)
        return desc

    def index(self, platforms: dict[str, Descriptor], *, tag: str | None = None) -> Descriptor:
        """A multi-platform image index over existing manifests."""
        manifests = []
        for plat, desc in platforms.items():
            os_, arch, *variant = plat.split("/")
            entry = desc.to_json()
            entry["platform"] = {"os": os_, "architecture": arch}
            if variant:
                entry["platform"]["variant"] = variant[0]
            manifests.append(entry)
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
        desc = self.blob(_canonical(index), MT_INDEX)
        self.add_to_index(desc, tag=tag)
        return desc

    def attach_signature(
        self,
        subject: Descriptor,
        envelope: bytes,
        envelope_media_type: str,
        *,
        legacy: bool = False,
        extra_layers: int = 0,
        artifact_type: str | None = SIG_TYPE,
        config_media_type: str | None = None,
    ) -> Descriptor:
        """Attach a Notary signature manifest to ``subject`` and make it reachable."""
        layer = self.blob(envelope, envelope_media_type)
        layers = [layer.to_json()] + [
            self.blob(b"extra%d" % i, envelope_media_type).to_json() for i in range(extra_layers)
        ]
        manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_MANIFEST}
        if legacy:
            config = self.blob(b"{}", config_media_type or SIG_TYPE)
        else:
            if artifact_type is not None:
                manifest["artifactType"] = artifact_type
            config = self.blob(b"{}", config_media_type or MT_EMPTY)
        manifest["config"] = config.to_json()
        manifest["layers"] = layers
        manifest["subject"] = Descriptor(
            media_type=subject.media_type, digest=subject.digest, size=subject.size
        ).to_json()
        manifest["annotations"] = {"org.opencontainers.image.created": "2026-11-23T00:00:00Z"}
        desc = self.blob(_canonical(manifest), MT_MANIFEST)
        if not legacy and artifact_type is not None:
            desc = Descriptor(
                media_type=desc.media_type,
                digest=desc.digest,
                size=desc.size,
                artifact_type=artifact_type,
            )
        self.add_to_index(desc)
        return desc
