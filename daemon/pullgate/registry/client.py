"""OCI distribution client with containerd's endpoint semantics.

Implements docs/containerd.md §1.5-1.9 and the OCI distribution
spec (``spec.md``: pulling manifests and blobs, the referrers API):

* endpoints come from ``hosts.toml`` (mirrors first, server last) and are filtered per operation:
  tag resolve needs ``pull`` + ``resolve``, anything by digest needs ``pull``;
* every request walks the filtered list from the top; any transport error or status >= 400 moves
  on to the next endpoint; when all fail, the most relevant error is raised (transport < 404 <
  other HTTP error < oversize/digest mismatch);
* manifest HEADs send the OCI/Docker Accept list and fall back to GET when the response lacks
  ``Docker-Content-Digest`` or ``Content-Length`` (or on 405);
* **every byte fetched by digest is hashed and compared**, read no further than its declared
  size (:mod:`pullgate.registry.digest_fetch`); a mismatch is definitive, so a hostile registry
  can cause a deny but never a fail-open;
* endpoints that failed at transport level go last for a while (:mod:`.health`), and endpoints
  without the referrers API are remembered (:mod:`pullgate.registry.referrers_memo`).

Not done: containerd's retry of a digest reference under ``/blobs/<digest>`` after every endpoint
answered 404 on ``/manifests/<digest>`` (only relevant for pulling a bare blob).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pullgate.common.clock import Clock
from pullgate.common.descriptor import Descriptor, check_digest, compute_digest, is_digest
from pullgate.common.textnum import ascii_int
from pullgate.errors import MalformedInput, PullgateError
from pullgate.registry.auth import Authenticator, CredentialStore, parse_www_authenticate
from pullgate.registry.digest_fetch import DescriptorMismatch, fetch_at
from pullgate.registry.endpoint_errors import (
    NotFoundEverywhere,
    is_not_found,
    media_type_of,
    most_relevant,
)
from pullgate.registry.hosts import request_url
from pullgate.registry.media_types import (
    MANIFEST_ACCEPT,
    MANIFEST_MEDIA_TYPES,
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
    manifest_type,
)
from pullgate.registry.model import (
    Capability,
    Endpoint,
    HostsConfig,
    ImageReference,
    RegistryLimits,
)
from pullgate.registry.redirect import same_origin
from pullgate.registry.referrers_memo import ReferrersMemo
from pullgate.registry.source import registry_signatures
from pullgate.registry.store import FetchHook, StoreSignatureSource
from pullgate.registry.transport import (
    HttpStatusError,
    Response,
    ResponseTooLarge,
    Transport,
)
from pullgate.verification.verifier import SignatureBlob

# The media_types names are re-exported: callers import them from here.
__all__ = [
    "MANIFEST_ACCEPT",
    "MANIFEST_MEDIA_TYPES",
    "MEDIA_TYPE_DOCKER_LIST",
    "MEDIA_TYPE_DOCKER_MANIFEST",
    "MEDIA_TYPE_OCI_INDEX",
    "MEDIA_TYPE_OCI_MANIFEST",
    "DescriptorMismatch",
    "RegistryClient",
]

log = logging.getLogger(__name__)


class RegistryClient:
    """Reads manifests, blobs and Notary signatures from a registry, as containerd would: the
    registry :class:`~pullgate.registry.store.Store`.

    Args:
        hosts: Registry host → its endpoint configuration (``hosts.load_hosts`` bound to the
            certs.d roots); called on every operation so edits apply without restart.
        credentials: Where credentials come from (None: anonymous).
        limits: Size, page, timeout and retry bounds.
        clock: Token expiry.
        transport: The HTTP transport (its TLS contexts, deadline watchdog, byte budget and
            endpoint memory are the owner's; the fuzz harness passes an in-process one).
        referrers_memo: Where endpoints without the referrers API are remembered.
    """

    def __init__(
        self,
        hosts: Callable[[str], HostsConfig],
        *,
        credentials: CredentialStore | None,
        limits: RegistryLimits,
        clock: Clock,
        transport: Transport,
        referrers_memo: ReferrersMemo,
    ) -> None:
        self._hosts = hosts
        self.limits = limits
        self.referrers_memo = referrers_memo
        self.transport = transport
        self._auth = Authenticator(self.transport, credentials, clock)
        self.on_fetch: FetchHook | None = None

    def __repr__(self) -> str:
        return f"RegistryClient(requests={self.transport.request_count})"

    def close(self) -> None:
        """Release pooled connections."""
        self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self, *, deadline: float | None, on_fetch: FetchHook | None) -> Iterator[None]:
        """See :meth:`pullgate.registry.store.Store.session`: ``deadline`` bounds every request
        (the transport's), ``on_fetch`` times every digest-verified GET."""
        self.transport.deadline, self.on_fetch = deadline, on_fetch
        try:
            yield
        finally:
            self.transport.deadline, self.on_fetch = None, None

    # ------------------------------------------------------------------ plumbing

    def endpoints(self, ref: ImageReference, *needed: Capability) -> tuple[Endpoint, ...]:
        """Endpoints of ``ref``'s registry that have every capability in ``needed``, in
        containerd's order except that endpoints remembered as down come last."""
        config = self._hosts(ref.registry)
        found = [ep for ep in config.endpoints if all(ep.has(c) for c in needed)]
        return self.transport.health.order(found)

    def signature_endpoints(self, ref: ImageReference) -> tuple[Endpoint, ...]:
        """Endpoints used for signature discovery: those with ``pull`` or ``referrers`` (down
        ones last, as in :meth:`endpoints`)."""
        config = self._hosts(ref.registry)
        found = [
            ep for ep in config.endpoints if ep.has(Capability.PULL) or ep.has(Capability.REFERRERS)
        ]
        return self.transport.health.order(found)

    def url(
        self,
        endpoint: Endpoint,
        ref: ImageReference,
        kind: str,
        name: str,
        query: dict[str, str] | None = None,
    ) -> str:
        """The request URL for ``kind`` (manifests|blobs|referrers|tags) at ``endpoint``."""
        return request_url(endpoint, ref, kind, name, query)

    def exchange(
        self,
        endpoint: Endpoint,
        ref: ImageReference,
        method: str,
        url: str,
        *,
        accept: str | None = None,
        cap: int,
    ) -> Response:
        """One request with authentication (401 → answer the challenge → retry once).

        Raises:
            RegistryError: Transport failure, or ``REGISTRY_AUTH`` when still unauthorised.
            ResponseTooLarge: A 2xx body over ``cap``.
        """
        scope = f"repository:{ref.repository}:pull"
        headers: dict[str, str] = {}
        if accept:
            headers["Accept"] = accept
        cached = self._auth.cached(endpoint, scope)
        if cached:
            headers["Authorization"] = cached
        response = self.transport.request(endpoint, method, url, headers=headers, cap=cap)
        if response.status != 401:
            return response
        if not same_origin(response.url, url):
            # A redirect target asks for credentials: the endpoint's are not its to have, and
            # the realm it names is its choice (containerd looks up credentials by that host).
            raise HttpStatusError(
                401,
                f"endpoint {endpoint.url}: a redirect to another origin answered 401; the "
                "endpoint's credentials are not sent there",
                endpoint=endpoint.url,
            )
        challenges = parse_www_authenticate(response.header_values("WWW-Authenticate"))
        headers["Authorization"] = self._auth.answer(endpoint, challenges, scope)
        response = self.transport.request(endpoint, method, url, headers=headers, cap=cap)
        if response.status == 401:
            raise HttpStatusError(
                401,
                f"endpoint {endpoint.url}: unauthorized after authentication",
                endpoint=endpoint.url,
            )
        return response

    @staticmethod
    def expect_ok(response: Response, endpoint: Endpoint) -> None:
        """Raise :class:`HttpStatusError` unless the status is 200."""
        if response.status != 200:
            raise HttpStatusError(
                response.status,
                f"endpoint {endpoint.url}: HTTP {response.status}",
                endpoint=endpoint.url,
            )

    # ------------------------------------------------------------------ resolve

    def resolve(self, ref: ImageReference) -> Descriptor:
        """Resolve a tag or digest reference to the target manifest's descriptor.

        Raises:
            MalformedInput: Content does not match the digest, is oversize, or is not a manifest.
            NotFoundEverywhere: Every endpoint answered 404/410 (``NOT_FOUND``, definitive).
            RegistryError: Every endpoint failed (most relevant error).
        """
        if ref.digest:
            endpoints = self.endpoints(ref, Capability.PULL)
            name = ref.digest
        elif ref.tag:
            endpoints = self.endpoints(ref, Capability.PULL, Capability.RESOLVE)
            name = ref.tag
        else:
            raise MalformedInput(f"reference {ref} has neither tag nor digest")
        errors: list[PullgateError] = []
        for index, endpoint in enumerate(endpoints):
            try:
                with self.transport.attempt(len(endpoints) - index - 1):
                    return self._resolve_at(endpoint, ref, name)
            except PullgateError as exc:
                log.info("resolve %s at %s failed: %s", ref, endpoint.url, exc)
                errors.append(exc)
        if errors and all(is_not_found(e) for e in errors):
            raise NotFoundEverywhere(
                f"image {ref} was not found at any of the {len(errors)} registry endpoint(s)"
            )
        raise most_relevant(errors, f"resolve {ref}")

    def _resolve_at(self, endpoint: Endpoint, ref: ImageReference, name: str) -> Descriptor:
        cap = self.limits.max_manifest_bytes
        url = self.url(endpoint, ref, "manifests", name)
        head = self.exchange(endpoint, ref, "HEAD", url, accept=MANIFEST_ACCEPT, cap=cap)
        if head.status == 200:
            digest = (head.header("Docker-Content-Digest") or "").strip()
            length = ascii_int(head.header("Content-Length"))
            media_type = media_type_of(head)
            if length is not None and length > cap:
                raise ResponseTooLarge(
                    f"endpoint {endpoint.url}: manifest of {length} bytes exceeds {cap}"
                )
            if is_digest(digest) and length is not None and media_type in MANIFEST_MEDIA_TYPES:
                if ref.digest and digest != ref.digest:
                    raise MalformedInput(
                        f"endpoint {endpoint.url}: resolved digest {digest} differs from "
                        f"requested {ref.digest}"
                    )
                return Descriptor(media_type=media_type, digest=digest, size=length)
        elif head.status != 405:
            self.expect_ok(head, endpoint)
        response = self.exchange(endpoint, ref, "GET", url, accept=MANIFEST_ACCEPT, cap=cap)
        self.expect_ok(response, endpoint)
        body = response.body
        if ref.digest:
            check_digest(body, ref.digest)
            digest = ref.digest
        else:
            header = (response.header("Docker-Content-Digest") or "").strip()
            algorithm = header.split(":", 1)[0] if is_digest(header) else "sha256"
            digest = compute_digest(body, algorithm)
            if header and header != digest:
                raise MalformedInput(
                    f"endpoint {endpoint.url}: manifest hashes to {digest}, header says {header}"
                )
        return Descriptor(media_type=manifest_type(response), digest=digest, size=len(body))

    # ------------------------------------------------------------------ fetch by digest

    def fetch_manifest(self, ref: ImageReference, desc: Descriptor) -> bytes:
        """Fetch a manifest or index by digest (≤ ``limits.max_manifest_bytes``), verified.

        Raises:
            MalformedInput: Oversize, or no endpoint served bytes matching ``desc``.
            RegistryError: Every endpoint failed at transport/HTTP level.
        """
        accept = ", ".join(dict.fromkeys((desc.media_type, *MANIFEST_MEDIA_TYPES)))
        return self.fetch_verified(
            ref, desc, "manifests", self.limits.max_manifest_bytes, accept=accept
        )

    def fetch_blob(self, ref: ImageReference, desc: Descriptor, cap: int) -> bytes:
        """Fetch a blob by digest (≤ ``cap`` bytes), verified.

        Raises:
            MalformedInput: Oversize, or no endpoint served bytes matching ``desc``.
            RegistryError: Every endpoint failed at transport/HTTP level.
        """
        return self.fetch_verified(ref, desc, "blobs", cap)

    def fetch_verified(
        self,
        ref: ImageReference,
        desc: Descriptor,
        kind: str,
        cap: int,
        *,
        accept: str | None = None,
        first: Endpoint | None = None,
    ) -> bytes:
        """GET ``kind/<digest>`` walking the ``pull`` endpoints; size and digest checked.

        ``kind`` is ``manifests`` or ``blobs``; ``cap`` the maximum accepted size; ``first`` an
        endpoint to try before the configured order (where a listing came from).

        Raises:
            MalformedInput: Oversize descriptor or digest mismatch everywhere.
            DescriptorMismatch: A body of another size than ``desc`` says (read no further
                than ``desc.size + 1`` bytes).
            NotFoundEverywhere: Every endpoint tried answered 404/410 (``NOT_FOUND``).
            RegistryError: Every endpoint failed at transport/HTTP level.
        """
        if desc.size > cap:
            raise MalformedInput(f"{desc.digest}: size {desc.size} exceeds the {cap}-byte limit")
        endpoints = list(self.endpoints(ref, Capability.PULL))
        if first is not None:
            endpoints = [first, *(ep for ep in endpoints if ep != first)]
        errors: list[PullgateError] = []
        started = time.perf_counter()
        try:
            for index, endpoint in enumerate(endpoints):
                try:
                    fallbacks = len(endpoints) - index - 1
                    return fetch_at(self, endpoint, ref, desc, kind, accept, fallbacks)
                except PullgateError as exc:
                    log.info("fetch %s from %s failed: %s", desc.digest, endpoint.url, exc)
                    errors.append(exc)
        finally:
            if self.on_fetch is not None:  # the phase timing hook (Store.session)
                self.on_fetch(time.perf_counter() - started)
        if errors and all(is_not_found(e) for e in errors):
            raise NotFoundEverywhere(
                f"fetch {desc.digest}: not found at any of {len(errors)} endpoint(s)"
            ) from errors[0]
        raise most_relevant(errors, f"fetch {desc.digest}")

    # ------------------------------------------------------------------ signatures

    def signatures(self, ref: ImageReference, target: Descriptor) -> Iterator[SignatureBlob]:
        """Notary signatures of ``target`` (see :mod:`pullgate.registry.source`)."""
        return registry_signatures(self, ref, target)

    def signature_source(self, ref: ImageReference) -> StoreSignatureSource:
        """A :class:`~pullgate.verification.verifier.SignatureSource` bound to ``ref``."""
        return StoreSignatureSource(self, ref)
