"""Targets that drive the real registry client over scripted answers: manifest resolution
(HEAD/GET headers and body), referrers pages and the tag-schema fallback, signature manifests,
the ``WWW-Authenticate`` challenge and the token realm's answer.

Answers are served content-addressed as well (``manifests/<digest>``, ``blobs/<digest>``), so a
seed whose documents name each other by digest stays consistent while the fuzzer mutates it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from fuzz.oracle import FuzzTarget, check
from fuzz.scripted import (
    NOT_FOUND,
    by_digest,
    client,
    descriptor_of,
    endpoint,
    path_parts,
    reference,
    sha256,
)
from fuzz.wire import Reply, parse_reply, split_fields
from pullgate.common.descriptor import Descriptor, compute_digest, is_digest
from pullgate.errors import PullgateError
from pullgate.registry.auth import StaticCredentials
from pullgate.registry.client import MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST
from pullgate.registry.model import Credentials
from pullgate.registry.source import fetch_signature

SIGNED = Descriptor(media_type=MEDIA_TYPE_OCI_MANIFEST, digest=sha256(b"subject"), size=7)
PASSWORD = "fuzz-password"
IDENTITY = "fuzz-refresh-token"


def _content(store: Mapping[str, Reply], method: str, url: str) -> Reply | None:
    """``manifests/<digest>`` and ``blobs/<digest>`` from ``store``; None for other paths."""
    parts = path_parts(url)
    if len(parts) >= 2 and parts[-2] in ("manifests", "blobs") and is_digest(parts[-1]):
        found = store.get(parts[-1])
        if found is None:
            return NOT_FOUND
        return Reply(status=200, headers=found.headers, body=found.body)
    return None


def manifest(data: bytes) -> None:
    """``RegistryClient.resolve`` by tag and by digest: the descriptor names what was served."""
    head, get = (parse_reply(f) for f in split_fields(data, 2))
    for digest in (None, sha256(get.body)):

        def route(method: str, url: str, headers: Mapping[str, str]) -> Reply:
            return head if method == "HEAD" else get

        registry, _ = client(route)
        ref = reference(digest=digest)
        try:
            desc = registry.resolve(ref)
        except PullgateError:
            continue
        check(is_digest(desc.digest) and desc.size >= 0, f"resolved to {desc}")
        if digest is not None:
            check(desc.digest == digest, "a digest reference resolved to another digest")
        if head.status != 200 or desc.digest != (head.header("Docker-Content-Digest") or ""):
            # Not taken from the HEAD: the GET body was read, and the descriptor must name it.
            alg = desc.digest.split(":", 1)[0]
            check(desc.digest == compute_digest(get.body, alg), "digest is not the body's")
            check(desc.size == len(get.body), "size is not the body's")


def referrers(data: bytes) -> None:
    """Signature discovery (referrers pages, ``Link``, the tag schema): whatever is yielded was
    listed for the subject and served with matching digests."""
    fields = [parse_reply(f) for f in split_fields(data, 6)]
    first, following, tag = fields[:3]
    store = by_digest(fields[3:])

    def route(method: str, url: str, headers: Mapping[str, str]) -> Reply:
        content = _content(store, method, url)
        if content is not None:
            return content
        parts = path_parts(url)
        if parts[-2:] == ["manifests", SIGNED.digest.replace(":", "-")]:
            return tag
        if parts[-2:] == ["referrers", SIGNED.digest] and "artifactType=" in url:
            return first
        return following

    registry, _ = client(route)
    served = {sha256(r.body) for r in fields[3:]}
    try:
        for blob in registry.signatures(reference(), SIGNED):
            check(blob.manifest_digest in served, "a signature manifest that was not served")
            check(sha256(blob.envelope) in served, "an envelope that was not served")
    except PullgateError:
        return


def signature_manifest(data: bytes) -> None:
    """``fetch_signature``: exactly one envelope layer, fetched by its (checked) digest."""
    manifest_reply, envelope_reply = (parse_reply(f) for f in split_fields(data, 2))
    store = by_digest([manifest_reply, envelope_reply])
    desc = descriptor_of(manifest_reply, MEDIA_TYPE_OCI_MANIFEST)

    def route(method: str, url: str, headers: Mapping[str, str]) -> Reply:
        return _content(store, method, url) or NOT_FOUND

    registry, _ = client(route)
    try:
        blob = fetch_signature(registry, reference(), desc)
    except PullgateError:
        return
    check(blob.manifest_digest == desc.digest, "signature digest changed")
    check(blob.envelope == envelope_reply.body, "envelope is not the served blob")


_MANIFEST_BODY = b'{"schemaVersion":2,"mediaType":"' + MEDIA_TYPE_OCI_INDEX.encode() + b'"}'
_MANIFEST = Reply(
    headers=(("Content-Type", MEDIA_TYPE_OCI_INDEX),),
    body=_MANIFEST_BODY,
)


def _authenticated(challenge: Reply, token: Reply, creds: Credentials, scheme: str) -> None:
    """Resolve through a 401 answered with ``challenge``; the realm answers ``token``."""

    def route(method: str, url: str, headers: Mapping[str, str]) -> Reply:
        if path_parts(url)[:1] != ["v2"]:
            return token
        if "Authorization" not in headers:
            return Reply(status=401, headers=challenge.headers, body=challenge.body)
        return _MANIFEST

    registry, transport = client(
        route, where=endpoint(scheme), credentials=StaticCredentials(creds)
    )
    try:
        registry.resolve(reference())
    except PullgateError:
        resolved = False
    else:
        resolved = True
    basic = "Basic " + base64.b64encode(f"fuzz:{creds.password}".encode()).decode()
    for sent in transport.sent:
        secret = sent.headers.get("Authorization") == basic or (
            sent.body is not None and IDENTITY.encode() in sent.body
        )
        if scheme == "https" and sent.url.lower().startswith("http:"):
            check(not secret, "credentials sent to a plain-HTTP realm of an HTTPS endpoint")
    if resolved:
        final = transport.sent[-1].headers.get("Authorization", "")
        check(final.isascii() and final.isprintable(), "unprintable Authorization header")
        check(final == basic or final.startswith("Bearer "), f"odd Authorization {final!r}")


CREDENTIALS = (
    Credentials(username="fuzz", password=PASSWORD),
    Credentials(identity_token=IDENTITY),
)


def auth_challenge(data: bytes) -> None:
    """``parse_www_authenticate`` and the client's answer to it: credentials only where they
    may go, and a usable ``Authorization`` header or a typed refusal.

    The challenge is always sent as a 401: its status line instead picks the credentials
    (password or refresh token) and the endpoint's scheme (HTTPS or HTTP), one each per input.
    """
    challenge, token = (parse_reply(f) for f in split_fields(data, 2))
    creds = CREDENTIALS[challenge.status % 2]
    _authenticated(challenge, token, creds, ("https", "http")[challenge.status // 2 % 2])


TOKEN_CHALLENGE = Reply(
    headers=(("WWW-Authenticate", 'Bearer realm="https://auth.fuzz.test/token",service="reg"'),)
)


def token_response(data: bytes) -> None:
    """The token realm's answer (``token``/``access_token``, ``expires_in``)."""
    token = parse_reply(data)
    for creds in (Credentials(username="fuzz", password=PASSWORD), Credentials()):
        _authenticated(TOKEN_CHALLENGE, token, creds, "https")


TARGETS = (
    FuzzTarget("manifest", "pullgate.registry.client.RegistryClient.resolve", manifest),
    FuzzTarget("referrers", "pullgate.registry.client.RegistryClient.signatures", referrers),
    FuzzTarget(
        "signature_manifest", "pullgate.registry.source.fetch_signature", signature_manifest
    ),
    FuzzTarget(
        "auth_challenge",
        "pullgate.registry.auth.parse_www_authenticate + Authenticator.answer",
        auth_challenge,
    ),
    FuzzTarget(
        "token_response", "pullgate.registry.auth.Authenticator (token realm)", token_response
    ),
)
