"""A small OCI distribution-API pusher for tests (mutual TLS, optional basic/bearer auth).

Pushes blobs (POST + PUT upload), manifests, single-platform images, multi-platform indexes and
Notary signatures. Registries without the Referrers API (distribution 2.8) are handled the way
notation/oras-go do (distribution-spec "referrers tag schema", docs/notation.md §1.2): after
the signature manifest is pushed, the index tagged ``<alg>-<hex of the subject digest>`` is read,
the new signature descriptor (with ``artifactType`` and the manifest's annotations) is appended,
and the index is written back under the same tag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pullgate.common.descriptor import Descriptor
from tests.support.docker_registry import DockerRegistry

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
SIG_TYPE = "application/vnd.cncf.notary.signature"
MT_JWS = "application/jose+json"
MT_COSE = "application/cose"
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
CREATED_ANNOTATION = "org.opencontainers.image.created"

_MANIFEST_ACCEPT = ", ".join(
    (
        MT_MANIFEST,
        MT_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


class PushError(RuntimeError):
    """The registry refused a push step (status and body in the message)."""


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def referrers_tag(digest: str) -> str:
    """The referrers tag schema tag for ``digest``: ``sha256:ab…`` -> ``sha256-ab…``."""
    alg, _, hexpart = digest.partition(":")
    return f"{alg}-{hexpart}"


def thumbprints(certificates: Sequence[x509.Certificate]) -> str:
    """notation's ``thumbprint#S256`` annotation value: JSON list of lowercase SHA-256 hex."""
    return json.dumps(
        [
            hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest()
            for c in certificates
        ],
        separators=(",", ":"),
    )


class Pusher:
    """Pushes content to one registry over (m)TLS with urllib3.

    Args:
        base_url: ``https://host:port``.
        ca_file: CA that validates the server certificate.
        client_cert / client_key: the TLS client certificate (None: present none).
        username / password: HTTP basic credentials (htpasswd registries).
        bearer_token: a static bearer token, sent as ``Authorization: Bearer``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: Path,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._pool = urllib3.PoolManager(
            ca_certs=str(ca_file),
            cert_reqs="CERT_REQUIRED",
            cert_file=str(client_cert) if client_cert else None,
            key_file=str(client_key) if client_key else None,
            timeout=urllib3.Timeout(connect=5.0, read=30.0),
            retries=False,
        )
        self._auth: dict[str, str] = {}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth["Authorization"] = f"Basic {token}"
        elif bearer_token is not None:
            self._auth["Authorization"] = f"Bearer {bearer_token}"

    @classmethod
    def for_registry(
        cls, registry: DockerRegistry, *, username: str | None = None, password: str | None = None
    ) -> Pusher:
        """A pusher presenting ``registry``'s client certificate (and its first user, if any)."""
        if username is None and registry.users:
            username, password = next(iter(registry.users.items()))
        return cls(
            registry.url,
            ca_file=registry.ca_pem,
            client_cert=registry.client_pem,
            client_key=registry.client_key,
            username=username,
            password=password,
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._pool.clear()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...],
    ) -> urllib3.BaseHTTPResponse:
        if not url.startswith(("http://", "https://")):
            url = self.base_url + url
        all_headers = {**self._auth, **(headers or {})}
        response = self._pool.request(method, url, body=body, headers=all_headers)
        if response.status not in ok:
            text = response.data[:500].decode(errors="replace")
            raise PushError(f"{method} {url} -> {response.status}: {text}")
        return response

    # -- primitives -------------------------------------------------------------------------

    def push_blob(
        self, repo: str, data: bytes, media_type: str = "application/octet-stream"
    ) -> Descriptor:
        """Upload ``data`` (POST to open an upload session, PUT with ``?digest=`` to finish)."""
        digest = _sha256(data)
        start = self._request("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        location = start.headers.get("Location")
        if not location:
            raise PushError("upload session without Location header")
        location = urllib.parse.urljoin(self.base_url + "/", location)
        sep = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
            ok=(201,),
        )
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def push_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> Descriptor:
        """PUT a manifest or index under ``ref`` (a tag or its digest)."""
        response = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            body=data,
            headers={"Content-Type": media_type},
            ok=(201,),
        )
        digest = _sha256(data)
        returned = response.headers.get("Docker-Content-Digest")
        if returned is not None and returned != digest:
            raise PushError(f"registry reports digest {returned}, pushed {digest}")
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def fetch_manifest(self, repo: str, ref: str) -> bytes | None:
        """GET a manifest/index; None on 404."""
        response = self._request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            headers={"Accept": _MANIFEST_ACCEPT},
            ok=(200, 404),
        )
        return None if response.status == 404 else bytes(response.data)

    # -- images -----------------------------------------------------------------------------

    def push_image(
        self,
        repo: str,
        tag: str | None,
        platform: str = "linux/amd64",
        content: bytes = b"layer",
    ) -> Descriptor:
        """A one-layer image manifest for ``platform`` (``os/arch[/variant]``), tagged if given."""
        os_, arch, *variant = platform.split("/")
        cfg: dict[str, Any] = {"architecture": arch, "os": os_, "rootfs": {"type": "layers"}}
        if variant:
            cfg["variant"] = variant[0]
        config = self.push_blob(repo, _canonical(cfg), MT_CONFIG)
        layer = self.push_blob(repo, content, MT_LAYER)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        }
        data = _canonical(manifest)
        desc = self.push_manifest(repo, tag or _sha256(data), data, MT_MANIFEST)
        return desc

    def push_index(
        self, repo: str, tag: str | None, platforms: Mapping[str, Descriptor]
    ) -> Descriptor:
        """A multi-platform image index over already-pushed manifests."""
        manifests = []
        for plat, desc in platforms.items():
            os_, arch, *variant = plat.split("/")
            entry = desc.to_json()
            entry["platform"] = {"os": os_, "architecture": arch}
            if variant:
                entry["platform"]["variant"] = variant[0]
            manifests.append(entry)
        data = _canonical({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests})
        return self.push_manifest(repo, tag or _sha256(data), data, MT_INDEX)

    # -- signatures -------------------------------------------------------------------------

    def push_signature(
        self,
        repo: str,
        subject: Descriptor,
        envelope: bytes,
        envelope_media_type: str,
        *,
        legacy: bool = False,
        certificates: Sequence[x509.Certificate] = (),
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Push a Notary signature manifest for ``subject`` and list it in the referrers tag.

        Args:
            repo: repository holding ``subject``.
            subject: the signed manifest's descriptor.
            envelope: the JWS/COSE envelope bytes.
            envelope_media_type: ``application/jose+json`` or ``application/cose``.
            legacy: image-spec 1.0 form (config mediaType = the Notary signature type, no
                ``artifactType``) instead of 1.1 (``artifactType`` + empty config).
            certificates: when given, the thumbprint annotation notation adds.
            annotations: extra manifest annotations.

        Returns:
            The signature manifest's descriptor (with ``artifactType`` set).
        """
        layer = self.push_blob(repo, envelope, envelope_media_type)
        config_type = SIG_TYPE if legacy else MT_EMPTY
        config = self.push_blob(repo, b"{}", config_type)
        manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_MANIFEST}
        if not legacy:
            manifest["artifactType"] = SIG_TYPE
        manifest["config"] = config.to_json()
        manifest["layers"] = [layer.to_json()]
        manifest["subject"] = Descriptor(
            media_type=subject.media_type, digest=subject.digest, size=subject.size
        ).to_json()
        notes: dict[str, str] = dict(annotations or {})
        if certificates:
            notes[THUMBPRINT_ANNOTATION] = thumbprints(certificates)
        if notes:
            manifest["annotations"] = notes
        data = json.dumps(manifest, separators=(",", ":")).encode()
        pushed = self.push_manifest(repo, _sha256(data), data, MT_MANIFEST)
        # In a referrers listing a legacy manifest's artifactType is its config mediaType.
        desc = Descriptor(
            media_type=MT_MANIFEST,
            digest=pushed.digest,
            size=pushed.size,
            artifact_type=SIG_TYPE if not legacy else config_type,
            annotations=notes,
        )
        self.add_referrer(repo, subject, desc)
        return desc

    def add_referrer(self, repo: str, subject: Descriptor, referrer: Descriptor) -> Descriptor:
        """Read-modify-write the referrers tag index of ``subject`` to list ``referrer``."""
        tag = referrers_tag(subject.digest)
        current = self.fetch_manifest(repo, tag)
        entries: list[dict[str, Any]] = []
        if current is not None:
            doc = json.loads(current)
            if not isinstance(doc, dict) or doc.get("mediaType") != MT_INDEX:
                raise PushError(f"{repo}:{tag} is not an OCI image index")
            entries = [e for e in doc.get("manifests", []) if isinstance(e, dict)]
        if any(e.get("digest") == referrer.digest for e in entries):
            return Descriptor(
                media_type=MT_INDEX, digest=_sha256(current or b""), size=len(current or b"")
            )
        entries.append(referrer.to_json())
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}
        return self.push_manifest(repo, tag, _canonical(index), MT_INDEX)
