"""Seed inputs per target: well-formed registry answers (manifests, indexes, Docker manifest
lists, referrers pages, signature manifests and envelopes, challenges, token answers, ``Link``
and ``Retry-After`` values) and a few near misses. ``python -m fuzz.seeds DIR`` writes them as
``DIR/<target>/seed-<n>``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fuzz.mutate import DICTIONARY
from fuzz.scripted import REGISTRY, descriptor_of, sha256
from fuzz.targets_registry import SIGNED
from fuzz.wire import Reply, join_fields, reply
from pullgate.common.descriptor import Descriptor
from pullgate.registry.client import (
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
)
from pullgate.verification.model import ARTIFACT_TYPE_SIGNATURE, MEDIA_TYPE_JWS

EMPTY_CONFIG = b"{}"
CONFIG = Descriptor(
    media_type="application/vnd.oci.empty.v1+json", digest=sha256(EMPTY_CONFIG), size=2
)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def image_manifest(payload: bytes = b"layer") -> bytes:
    """An OCI image manifest with one layer."""
    layer = Descriptor(
        media_type="application/vnd.oci.image.layer.v1.tar", digest=sha256(payload), size=7
    )
    return _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "config": CONFIG.to_json(),
            "layers": [layer.to_json()],
        }
    )


def entry(desc: Descriptor, os: str, arch: str, **extra: object) -> dict[str, object]:
    """An index entry for ``desc`` with a platform."""
    return {**desc.to_json(), "platform": {"os": os, "architecture": arch, **extra}}


def index_document(media_type: str = MEDIA_TYPE_OCI_INDEX) -> bytes:
    """A multi-platform index (or Docker manifest list) with an attestation entry."""
    manifest_type = (
        MEDIA_TYPE_DOCKER_MANIFEST
        if media_type == MEDIA_TYPE_DOCKER_LIST
        else MEDIA_TYPE_OCI_MANIFEST
    )
    amd64 = Descriptor(media_type=manifest_type, digest=sha256(b"amd64"), size=400)
    arm = Descriptor(media_type=manifest_type, digest=sha256(b"arm"), size=401)
    attestation = Descriptor(
        media_type=MEDIA_TYPE_OCI_MANIFEST,
        digest=sha256(b"att"),
        size=300,
        annotations={"vnd.docker.reference.type": "attestation-manifest"},
    )
    return _json(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                entry(amd64, "linux", "amd64"),
                entry(arm, "linux", "arm", variant="v7"),
                entry(attestation, "unknown", "unknown"),
            ],
        }
    )


def signature_manifest(subject: Descriptor, envelope: bytes) -> bytes:
    """A Notary signature manifest over ``subject`` with ``envelope`` as its only layer."""
    layer = Descriptor(media_type=MEDIA_TYPE_JWS, digest=sha256(envelope), size=len(envelope))
    return _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE_SIGNATURE,
            "config": CONFIG.to_json(),
            "layers": [layer.to_json()],
            "subject": subject.to_json(),
            "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[]"},
        }
    )


def referrers_page(*listed: Descriptor, link: str | None = None) -> Reply:
    """A referrers API page listing ``listed`` as signatures."""
    body = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_INDEX,
            "manifests": [{**d.to_json(), "artifactType": ARTIFACT_TYPE_SIGNATURE} for d in listed],
        }
    )
    headers = [("Content-Type", MEDIA_TYPE_OCI_INDEX)] + ([("Link", link)] if link else [])
    return Reply(headers=tuple(headers), body=body)


def fake_envelope(subject: Descriptor) -> bytes:
    """A JWS-shaped envelope (not validly signed) naming ``subject``."""
    return _json({"payload": "e30", "protected": "e30", "header": {"x5c": []}, "signature": ""})


def _signed(subject: Descriptor, envelope: bytes) -> tuple[Reply, Reply, Descriptor]:
    """The signature manifest and envelope answers, and the manifest's descriptor."""
    manifest = reply(signature_manifest(subject, envelope), content_type=MEDIA_TYPE_OCI_MANIFEST)
    envelope_reply = reply(envelope, content_type=MEDIA_TYPE_JWS)
    return manifest, envelope_reply, descriptor_of(manifest, MEDIA_TYPE_OCI_MANIFEST)


def descriptor_seeds() -> list[bytes]:
    """Descriptors: plain, with artifactType and annotations, and near misses."""
    base = CONFIG.to_json()
    return [
        _json(base),
        _json({**base, "artifactType": ARTIFACT_TYPE_SIGNATURE, "annotations": {"a": "b"}}),
        _json({**base, "size": -1}),
        _json({**base, "digest": "sha512:" + "a" * 128, "urls": ["https://x"]}),
    ]


def index_seeds() -> list[bytes]:
    """An OCI index, a Docker manifest list, an empty and a nested index."""
    nested = Descriptor(media_type=MEDIA_TYPE_OCI_INDEX, digest=sha256(b"n"), size=9)
    return [
        index_document(),
        index_document(MEDIA_TYPE_DOCKER_LIST),
        _json({"schemaVersion": 2, "manifests": []}),
        _json({"schemaVersion": 2, "manifests": [entry(nested, "linux", "amd64")]}),
    ]


def link_seeds() -> list[bytes]:
    """``Link`` headers: relative, absolute, another origin, several values; one after a
    redirect (second field: the URL that answered)."""
    page = f"/v2/app/referrers/{SIGNED.digest}?n=2&last=x"
    return [
        f'<{page}>; rel="next"'.encode(),
        f"<https://{REGISTRY}{page}>; rel=next".encode(),
        b'<https://elsewhere.test/v2/x>; rel="next"',
        f'<{page}>; rel="prev", <{page}&b>; type="x"; rel="next"\n<x>; rel=next'.encode(),
        join_fields([f'<{page}>; rel="next"'.encode(), b"https://cdn.test/redirected/page"]),
    ]


def retry_after_seeds() -> list[bytes]:
    """Delta seconds, an HTTP date, and near misses."""
    return [
        b"5",
        b"0",
        b"120",
        b"Wed, 21 Oct 2015 07:28:00 GMT",
        b"Thu, 01 Jan 2026 00:00:03 GMT",
        b"-1",
    ]


def redirect_seeds() -> list[bytes]:
    """A status byte (and ``P`` for a request with a body), then a ``Location``."""
    return [
        join_fields([b"\x00", b"/v2/app/blobs/sha256:00"]),
        join_fields([b"\x01P", b"https://cdn.test/blob?sig=1"]),
        join_fields([b"\x03", b"//other.test:8443/x"]),
        join_fields([b"\x04P", b"ftp://x/"]),
        join_fields([b"\x02", b"http://[::1"]),
    ]


def manifest_seeds() -> list[bytes]:
    """HEAD with every header, HEAD without a digest, HEAD refused (405): then the GET."""
    body = image_manifest()
    complete = reply(
        b"",
        content_type=MEDIA_TYPE_OCI_MANIFEST,
        Docker_Content_Digest=sha256(body),
        Content_Length=str(len(body)),
    )
    get = reply(body, content_type=MEDIA_TYPE_OCI_MANIFEST, Docker_Content_Digest=sha256(body))
    index = index_document()
    return [
        join_fields([complete.encode(), get.encode()]),
        join_fields([reply(content_type=MEDIA_TYPE_OCI_INDEX).encode(), reply(index).encode()]),
        join_fields([reply(status=405).encode(), get.encode()]),
    ]


def referrers_seeds() -> list[bytes]:
    """A listing across two pages, a filtered page, the tag-schema fallback (404 and HTML)."""
    envelope = fake_envelope(SIGNED)
    manifest, envelope_reply, desc = _signed(SIGNED, envelope)
    link = f'</v2/app/referrers/{SIGNED.digest}?page=2>; rel="next"'
    empty = referrers_page()
    blobs = [manifest.encode(), envelope_reply.encode(), b""]
    html = reply(b"<html></html>", content_type="text/html")
    return [
        join_fields(
            [referrers_page(link=link).encode(), referrers_page(desc).encode(), b"", *blobs]
        ),
        join_fields([referrers_page(desc).encode(), b"", b"", *blobs]),
        join_fields([reply(status=404).encode(), b"", referrers_page(desc).encode(), *blobs]),
        join_fields([html.encode(), b"", empty.encode(), *blobs]),
    ]


def signature_manifest_seeds() -> list[bytes]:
    """A signature manifest and its envelope (the last field, so it may hold any byte)."""
    envelope = fake_envelope(SIGNED)
    manifest, envelope_reply, _ = _signed(SIGNED, envelope)
    return [join_fields([manifest.encode(), envelope_reply.encode()])]


def auth_challenge_seeds() -> list[bytes]:
    """Bearer (with service and scope), Basic, several challenges; then the token answer."""
    token = reply(
        _json({"token": "fuzz-token", "expires_in": 300}), content_type="application/json"
    )
    realm = 'realm="https://auth.fuzz.test/token",service="registry.fuzz.test"'
    bearer = [
        join_fields([reply(status=s, WWW_Authenticate=f"Bearer {realm}").encode(), token.encode()])
        for s in (400, 401, 402, 403)  # every choice of credentials and scheme
    ]
    return [
        *bearer,
        join_fields([reply(status=401, WWW_Authenticate='Basic realm="fuzz"').encode(), b""]),
        join_fields(
            [
                reply(
                    status=401,
                    WWW_Authenticate=f'Basic realm="x", Bearer {realm},scope="repository:app:pull"',
                ).encode(),
                token.encode(),
            ]
        ),
        join_fields(
            [
                reply(
                    status=401, WWW_Authenticate='Bearer realm="http://auth.fuzz.test/t"'
                ).encode(),
                token.encode(),
            ]
        ),
    ]


def token_response_seeds() -> list[bytes]:
    """Token answers: ``token``, ``access_token``, odd lifetimes."""
    return [
        reply(_json({"token": "t0k3n", "expires_in": 300})).encode(),
        reply(_json({"access_token": "t0k3n", "expires_in": 0})).encode(),
        reply(_json({"token": "a", "access_token": "b", "expires_in": 1e9})).encode(),
        reply(_json({"token": "x"}), status=500).encode(),
    ]


def image_seeds() -> list[bytes]:
    """A signed image (untrusted signer): tag, referrers listing, signature, envelope."""
    from tests.support.pki import KeySpec, Pki
    from tests.support.signing import sign_jws

    from fuzz.targets_image import FIELDS

    body = image_manifest()
    get = reply(body, content_type=MEDIA_TYPE_OCI_MANIFEST, Docker_Content_Digest=sha256(body))
    head = reply(
        content_type=MEDIA_TYPE_OCI_MANIFEST,
        Docker_Content_Digest=sha256(body),
        Content_Length=str(len(body)),
    )
    subject = descriptor_of(get, MEDIA_TYPE_OCI_MANIFEST)
    chain = Pki(name="fuzz-untrusted").chain(key=KeySpec.ec(256))
    manifest, envelope_reply, desc = _signed(subject, sign_jws(chain, subject))
    listing = referrers_page(desc)
    fields = [head, get, listing, Reply(), Reply(), manifest, envelope_reply]
    tag_schema = [head, get, reply(status=404), Reply(), listing, manifest, envelope_reply]
    padded = [[f.encode() for f in fs] + [b""] * (FIELDS - len(fs)) for fs in (fields, tag_schema)]
    return [join_fields(p) for p in padded]


def manifest_config_seeds() -> list[bytes]:
    """Image manifests (OCI, Docker), one with Go-style key case, and an index posing as one."""
    docker = json.loads(image_manifest())
    docker["mediaType"] = MEDIA_TYPE_DOCKER_MANIFEST
    cased = json.loads(image_manifest())
    cased["Config"] = cased.pop("config")
    return [image_manifest(), _json(docker), _json(cased), index_document()]


def index_tree_seeds() -> list[bytes]:
    """An index whose entries are nested indexes (the other fields), three levels deep, one
    nesting past the walking bound, and a nested index listed twice."""
    leaf = index_document()
    middle = _json(
        {"schemaVersion": 2, "manifests": [entry(_index_descriptor(leaf), "linux", "amd64")]}
    )
    top = _json(
        {
            "schemaVersion": 2,
            "manifests": [
                entry(_index_descriptor(middle), "linux", "amd64"),
                entry(_index_descriptor(leaf), "linux", "arm", variant="v7"),
            ],
        }
    )
    chain = [leaf]
    for _ in range(6):
        below = _index_descriptor(chain[-1])
        chain.append(_json({"schemaVersion": 2, "manifests": [entry(below, "linux", "amd64")]}))
    return [join_fields([top, middle, leaf]), join_fields(reversed(chain)), leaf]


def _index_descriptor(document: bytes) -> Descriptor:
    return Descriptor(media_type=MEDIA_TYPE_OCI_INDEX, digest=sha256(document), size=len(document))


SEEDS: dict[str, Callable[[], Sequence[bytes]]] = {
    "manifest_config": manifest_config_seeds,
    "index_tree": index_tree_seeds,
    "descriptor": descriptor_seeds,
    "index": index_seeds,
    "link": link_seeds,
    "retry_after": retry_after_seeds,
    "redirect": redirect_seeds,
    "manifest": manifest_seeds,
    "referrers": referrers_seeds,
    "signature_manifest": signature_manifest_seeds,
    "auth_challenge": auth_challenge_seeds,
    "token_response": token_response_seeds,
    "image": image_seeds,
}


def write(directory: Path) -> None:
    """Write every target's seeds under ``directory/<target>/`` and the dictionary to
    ``directory/dictionary``."""
    for name, make in SEEDS.items():
        target = directory / name
        target.mkdir(parents=True, exist_ok=True)
        for n, seed in enumerate(make()):
            (target / f"seed-{n}").write_bytes(seed)
    lines = [json.dumps(token) for token in DICTIONARY]  # libFuzzer's "…" with C escapes
    (directory / "dictionary").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
