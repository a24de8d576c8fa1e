"""An in-memory :class:`pullgate.registry.store.Store`: the decision engine's content without
sockets. A :class:`MemoryRegistry` holds repositories (tags, manifests, blobs, referrers) and
hands out :class:`MemoryStore` views (``build_engine(stores=registry.opener)``); every view checks
size and digest of what it returns exactly as the registry store does, so tampered content is
denied the same way. Behaviour switches model the outcomes a registry can have (unreachable,
bytes that do not match their digest) and every operation is logged (``requests()``)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pullgate.common.descriptor import Descriptor, check_digest
from pullgate.errors import MalformedInput, Reason, VerificationFailed
from pullgate.registry.client import DescriptorMismatch
from pullgate.registry.endpoint_errors import NotFoundEverywhere
from pullgate.registry.model import ImageReference, RegistryError
from pullgate.registry.store import LocalSession, Store
from pullgate.verification.verifier import SignatureBlob
from tests.support.fake_registry import (
    EMPTY_CONFIG,
    JWS,
    NOTARY,
    OCI_MANIFEST,
    image_manifest,
)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
HOST = "registry.memory.test"


@dataclass(frozen=True, slots=True)
class Op:
    """One store operation: ``resolve`` / ``manifest`` / ``blob`` / ``signatures``."""

    kind: str
    repository: str
    name: str


@dataclass
class _Repo:
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # digest -> (type, body)
    blobs: dict[str, bytes] = field(default_factory=dict)
    referrers: dict[str, list[Descriptor]] = field(default_factory=dict)  # subject -> sigs


@dataclass
class Behaviour:
    """What the registry does wrong."""

    unreachable: bool = False  # every operation: REGISTRY_UNREACHABLE (inconclusive)
    wrong_digest: set[str] = field(default_factory=set)  # these digests serve other bytes


class MemoryRegistry:
    """Repositories in memory; thread-safe."""

    host = HOST

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.repos: dict[str, _Repo] = {}
        self.behaviour = Behaviour()
        self.log: list[Op] = []
        self.hook: Callable[[Op], None] | None = None  # called before each operation

    # ------------------------------------------------------------------ content

    def _repo(self, name: str) -> _Repo:
        return self.repos.setdefault(name, _Repo())

    def put_blob(self, repo: str, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._lock:
            self._repo(repo).blobs[digest] = data
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def put_manifest(
        self, repo: str, doc: dict[str, Any], media_type: str, tag: str | None = None
    ) -> Descriptor:
        body = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        with self._lock:
            self._repo(repo).manifests[digest] = (media_type, body)
            if tag is not None:
                self._repo(repo).tags[tag] = digest
        return Descriptor(media_type=media_type, digest=digest, size=len(body))

    def put_image(self, repo: str, tag: str | None = "v1", payload: bytes = b"layer") -> Descriptor:
        """A minimal image manifest (one layer), optionally tagged."""
        config = self.put_blob(repo, b"{}", EMPTY_CONFIG)
        layer = self.put_blob(repo, payload, "application/vnd.oci.image.layer.v1.tar")
        return self.put_manifest(repo, image_manifest(config, layer), OCI_MANIFEST, tag)

    def add_signature(
        self, repo: str, target: Descriptor, envelope: bytes, media_type: str = JWS
    ) -> Descriptor:
        """A Notary signature manifest (artifactType form) whose subject is ``target``."""
        config = self.put_blob(repo, b"{}", EMPTY_CONFIG)
        layer = self.put_blob(repo, envelope, media_type)
        subject = Descriptor(media_type=target.media_type, digest=target.digest, size=target.size)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": NOTARY,
            "config": config.to_json(),
            "layers": [layer.to_json()],
            "subject": subject.to_json(),
        }
        desc = self.put_manifest(repo, doc, OCI_MANIFEST)
        with self._lock:
            self._repo(repo).referrers.setdefault(target.digest, []).append(desc)
        return desc

    def requests(self) -> list[Op]:
        """Every operation so far, in order."""
        with self._lock:
            return list(self.log)

    def opener(self, _snap: object = None, _credentials: object = None) -> Store:
        """A fresh view (the ``stores`` argument of :class:`~pullgate.decision.decider.Decider`)."""
        return MemoryStore(self)

    # ------------------------------------------------------------------ serving

    def serve(self, op: Op) -> None:
        """Log ``op`` and apply the registry-wide behaviour to it."""
        if self.hook is not None:
            self.hook(op)
        with self._lock:
            self.log.append(op)
        if self.behaviour.unreachable:
            raise RegistryError(Reason.REGISTRY_UNREACHABLE, f"{op.kind} {op.name}: unreachable")

    def manifest(self, repo: str, name: str) -> tuple[str, str, bytes] | None:
        """(digest, media type, bytes) of tag or digest ``name``."""
        with self._lock:
            r = self.repos.get(repo)
            if r is None:
                return None
            digest = r.tags.get(name, name)
            found = r.manifests.get(digest)
        if found is None:
            return None
        return digest, found[0], self._served(digest, found[1])

    def blob(self, repo: str, digest: str) -> bytes | None:
        with self._lock:
            r = self.repos.get(repo)
            data = r.blobs.get(digest) if r is not None else None
        return None if data is None else self._served(digest, data)

    def _served(self, digest: str, data: bytes) -> bytes:
        """``data``, or bytes of the same size that do not match ``digest``."""
        if digest in self.behaviour.wrong_digest and data:
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    def signature_manifests(self, repo: str, digest: str) -> list[Descriptor]:
        with self._lock:
            r = self.repos.get(repo)
            return list(r.referrers.get(digest, ())) if r is not None else []


class MemoryStore(LocalSession):
    """One borrower's view of a :class:`MemoryRegistry` (the :class:`Store` protocol)."""

    def __init__(self, registry: MemoryRegistry) -> None:
        self._registry = registry

    def close(self) -> None:
        """Nothing to release."""

    def resolve(self, ref: ImageReference) -> Descriptor:
        name = ref.digest or ref.tag or ""
        self._registry.serve(Op("resolve", ref.repository, name))
        found = self._registry.manifest(ref.repository, name)
        if found is None:
            raise NotFoundEverywhere(f"image {ref} was not found")
        digest, media_type, body = found  # the digest a registry's HEAD names
        if ref.digest:
            check_digest(body, digest)
        return Descriptor(media_type=media_type, digest=digest, size=len(body))

    def _verified(self, data: bytes | None, desc: Descriptor, cap: int) -> bytes:
        def check() -> bytes:
            if desc.size > cap:
                raise MalformedInput(f"{desc.digest}: size {desc.size} exceeds {cap}")
            if data is None:
                raise NotFoundEverywhere(f"{desc.digest} not found")
            if len(data) != desc.size:
                raise DescriptorMismatch(f"{desc.digest} is {len(data)} bytes, not {desc.size}")
            check_digest(data, desc.digest)
            return data

        return self.timed(check)

    def fetch_manifest(self, ref: ImageReference, desc: Descriptor) -> bytes:
        self._registry.serve(Op("manifest", ref.repository, desc.digest))
        found = self._registry.manifest(ref.repository, desc.digest)
        return self._verified(found[2] if found else None, desc, MAX_MANIFEST_BYTES)

    def fetch_blob(self, ref: ImageReference, desc: Descriptor, cap: int) -> bytes:
        self._registry.serve(Op("blob", ref.repository, desc.digest))
        return self._verified(self._registry.blob(ref.repository, desc.digest), desc, cap)

    def signatures(self, ref: ImageReference, target: Descriptor) -> Iterator[SignatureBlob]:
        self._registry.serve(Op("signatures", ref.repository, target.digest))
        for desc in self._registry.signature_manifests(ref.repository, target.digest):
            try:
                manifest = json.loads(self.fetch_manifest(ref, desc))
                (layer_json,) = manifest["layers"]
                layer = Descriptor.from_json(layer_json)
                envelope = self.fetch_blob(ref, layer, 32 * 1024 * 1024)
            except NotFoundEverywhere as exc:
                raise VerificationFailed(Reason.MALFORMED, f"listed signature: {exc}") from exc
            yield SignatureBlob(
                manifest_digest=desc.digest, media_type=layer.media_type, envelope=envelope
            )
