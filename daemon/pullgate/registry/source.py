"""Notary signature discovery on a registry: referrers API, tag-schema fallback, fetch rules.

Implements docs/notation.md §1.2-1.3 (as notation-go/oras-go do it)
on top of containerd's endpoint order (docs/containerd.md §1.7):

1. ``GET …/referrers/<digest>?artifactType=application%2Fvnd.cncf.notary.signature``, following
   ``Link: <…>; rel="next"`` (at most ``limits.max_referrers_pages`` pages, same origin only); when
   neither ``OCI-Filters-Applied: artifactType`` nor the legacy index annotation says the server
   filtered, descriptors are filtered here.
2. The API is "absent" on a 404 that is not ``NAME_UNKNOWN`` or on a 200 whose Content-Type is not
   the OCI index type (e.g. an HTML page): fall back to the tag ``<alg>-<hex>``, an OCI index whose
   ``manifests`` are filtered by ``artifactType``; a missing tag means "no signatures here".
   That finding is remembered per (registry, endpoint, repository) for a while
   (:class:`~pullgate.registry.referrers_memo.ReferrersMemo`, as oras-go keeps per-repository
   referrers state): while remembered, the tag schema is asked directly, saving the probe's
   round trip; if the tag lists nothing, the memo is dropped and the API probed as usual before
   "no signatures here" is concluded.
3. Per endpoint, in order: a transport error or status >= 400 moves on to the next endpoint, and
   so does an endpoint with **no** signatures — "unsigned" is only concluded after every endpoint
   was asked, at least one answered and none served hostile content. Otherwise the most relevant
   error is raised: a definitive one (content anyone with push access can plant — a referrers tag
   that is not an OCI index, more referrers than the page bound) outranks any outage, so a
   hostile endpoint can cause a deny, never a fail-open allow.
4. Each signature manifest (≤ 4 MiB) and its envelope (≤ 32 MiB) are fetched by digest and
   verified; a manifest without exactly one layer raises :class:`MalformedInput`, and one that
   every endpoint reports missing (404/410) a ``MALFORMED`` :class:`VerificationFailed`; both abort
   the run as in notation.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from pullgate.common.descriptor import Descriptor
from pullgate.errors import MalformedInput, PullgateError, Reason, VerificationFailed
from pullgate.registry.endpoint_errors import NotFoundEverywhere, media_type_of, most_relevant
from pullgate.registry.media_types import MEDIA_TYPE_OCI_INDEX
from pullgate.registry.model import Endpoint, ImageReference, RegistryError
from pullgate.registry.redirect import same_origin
from pullgate.registry.transport import Response
from pullgate.registry.wire import Wire
from pullgate.verification.model import ARTIFACT_TYPE_SIGNATURE
from pullgate.verification.verifier import SignatureBlob

log = logging.getLogger(__name__)

FILTERS_APPLIED_HEADER = "OCI-Filters-Applied"
FILTERS_APPLIED_ANNOTATION = "org.opencontainers.referrers.filtersApplied"
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"{what} is not valid JSON") from exc
    if not isinstance(obj, dict):
        raise MalformedInput(f"{what} is not a JSON object")
    return obj


def _index_descriptors(data: bytes, what: str) -> tuple[list[Descriptor], dict[str, Any]]:
    index = _json_object(data, what)
    raw = index.get("manifests") or []
    if not isinstance(raw, list):
        raise MalformedInput(f"{what}: manifests is not a list")
    return [Descriptor.from_json(d) for d in raw], index


def _is_name_unknown(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return False
    errors = doc.get("errors") if isinstance(doc, dict) else None
    return isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("code") == "NAME_UNKNOWN" for e in errors
    )


def _filters_applied(response: Response, index: dict[str, Any]) -> bool:
    applied = ",".join(response.header_values(FILTERS_APPLIED_HEADER))
    annotations = index.get("annotations")
    if isinstance(annotations, dict):
        legacy = annotations.get(FILTERS_APPLIED_ANNOTATION)
        if isinstance(legacy, str):
            applied += "," + legacy
    return "artifactType" in (part.strip() for part in applied.split(","))


def next_link(response: Response, endpoint: Endpoint, requested: str) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, resolved against the URL that answered;
    only on the origin of ``requested`` (the URL pullgate asked for: a page that came from a
    redirect target cannot send the next request, with the endpoint's headers and token, there).

    Raises:
        RegistryError: ``REGISTRY_ERROR`` for a link to another scheme/host, or one that is not
            a URL (oras-go fails the listing when ``url.Parse`` refuses the link).
    """
    for value in response.header_values("Link"):
        for match in _LINK_RE.finditer(value):
            params = match.group(2).replace(" ", "").lower()
            if 'rel="next"' not in params and "rel=next" not in params:
                continue
            try:
                target = str(urljoin(response.url, match.group(1)))
            except ValueError:  # e.g. "https://[/x": an unclosed IPv6 bracket
                target = ""
            if not same_origin(requested, target):
                raise RegistryError(
                    Reason.REGISTRY_ERROR,
                    f"endpoint {endpoint.url}: referrers Link is not a URL on this origin",
                    endpoint=endpoint.url,
                )
            return target
    return None


def _referrers(
    client: Wire, endpoint: Endpoint, ref: ImageReference, target: Descriptor
) -> Iterator[Descriptor]:
    """Signature descriptors at one endpoint, page by page (tag schema if the API is absent)."""
    memo_key = (ref.registry, endpoint.url, ref.repository)
    if client.referrers_memo.api_absent(memo_key):
        # Skip the probe. Only a listing with signatures is taken from this shortcut: "none here"
        # is concluded by the full path below, so a stale entry can never hide signatures that
        # the referrers API (gained since, or missed by a transient 404) would list.
        log.debug("endpoint %s: referrers API known absent, using the tag schema", endpoint.url)
        listed = list(_tag_schema(client, endpoint, ref, target))
        if listed:
            yield from listed
            return
        client.referrers_memo.forget(memo_key)
    cap = client.limits.max_manifest_bytes
    url: str | None = client.url(
        endpoint, ref, "referrers", target.digest, {"artifactType": ARTIFACT_TYPE_SIGNATURE}
    )
    pages = 0
    while url is not None:
        if pages >= client.limits.max_referrers_pages:
            # Anyone who can push can add referrers: more than the bound is a definitive deny.
            raise VerificationFailed(
                Reason.TOO_MANY_SIGNATURES,
                f"endpoint {endpoint.url}: more than {pages} referrers pages",
            )
        pages += 1
        response = client.exchange(endpoint, ref, "GET", url, accept=MEDIA_TYPE_OCI_INDEX, cap=cap)
        api_absent = (response.status == 404 and not _is_name_unknown(response.body)) or (
            response.status == 200 and media_type_of(response) != MEDIA_TYPE_OCI_INDEX
        )
        if api_absent and pages == 1:
            log.debug("endpoint %s: referrers API absent, using the tag schema", endpoint.url)
            client.referrers_memo.mark_absent(memo_key)
            yield from _tag_schema(client, endpoint, ref, target)
            return
        client.expect_ok(response, endpoint)
        if api_absent:
            raise RegistryError(
                Reason.REGISTRY_ERROR,
                f"endpoint {endpoint.url}: referrers page {pages} is not an OCI index",
                endpoint=endpoint.url,
            )
        descriptors, index = _index_descriptors(response.body, f"referrers of {target.digest}")
        filtered = _filters_applied(response, index)
        for desc in descriptors:
            if filtered or desc.artifact_type == ARTIFACT_TYPE_SIGNATURE:
                yield desc
        url = next_link(response, endpoint, url)


def _tag_schema(
    client: Wire, endpoint: Endpoint, ref: ImageReference, target: Descriptor
) -> Iterator[Descriptor]:
    tag = target.digest.replace(":", "-", 1)
    url = client.url(endpoint, ref, "manifests", tag)
    response = client.exchange(
        endpoint,
        ref,
        "GET",
        url,
        accept=MEDIA_TYPE_OCI_INDEX,
        cap=client.limits.max_manifest_bytes,
    )
    if response.status == 404:
        return
    client.expect_ok(response, endpoint)
    if media_type_of(response) != MEDIA_TYPE_OCI_INDEX:
        # Anyone who can push can plant this tag: content, not an outage.
        raise MalformedInput(f"endpoint {endpoint.url}: referrers tag {tag} is not an OCI index")
    descriptors, _ = _index_descriptors(response.body, f"referrers tag {tag}")
    for desc in descriptors:
        if desc.artifact_type == ARTIFACT_TYPE_SIGNATURE:
            yield desc


def fetch_signature(
    client: Wire, ref: ImageReference, desc: Descriptor, first: Endpoint | None = None
) -> SignatureBlob:
    """Fetch one signature manifest and its single envelope layer, both digest-checked.

    A listed signature whose manifest or envelope every endpoint reports as not found (404/410)
    is a definitive failure: anyone with push access can list a dangling signature, so it must
    not read as an outage (which ``on_inconclusive = "allow"`` would let through).

    Raises:
        MalformedInput: Oversize manifest/envelope, not exactly one layer, digest mismatch.
        VerificationFailed: ``MALFORMED`` when the manifest or envelope is not found anywhere.
        RegistryError: Every endpoint failed otherwise (transport, TLS, auth, 5xx).
    """
    limits = client.limits
    try:
        data = client.fetch_verified(
            ref, desc, "manifests", limits.max_manifest_bytes, accept=desc.media_type, first=first
        )
    except NotFoundEverywhere as exc:
        raise VerificationFailed(
            Reason.MALFORMED, f"listed signature manifest {desc.digest} does not exist: {exc}"
        ) from exc
    manifest = _json_object(data, f"signature manifest {desc.digest}")
    layers = manifest.get("layers", manifest.get("blobs"))
    if not isinstance(layers, list) or len(layers) != 1:
        count = len(layers) if isinstance(layers, list) else 0
        raise MalformedInput(
            f"signature manifest {desc.digest} must have exactly one envelope layer, got {count}"
        )
    layer = Descriptor.from_json(layers[0])
    try:
        envelope = client.fetch_verified(
            ref, layer, "blobs", limits.max_envelope_bytes, first=first
        )
    except NotFoundEverywhere as exc:
        raise VerificationFailed(
            Reason.MALFORMED, f"envelope {layer.digest} of {desc.digest} does not exist: {exc}"
        ) from exc
    return SignatureBlob(
        manifest_digest=desc.digest, media_type=layer.media_type, envelope=envelope
    )


def registry_signatures(
    client: Wire, ref: ImageReference, target: Descriptor
) -> Iterator[SignatureBlob]:
    """Yield ``target``'s Notary signatures, trying endpoints in containerd's order.

    Raises:
        MalformedInput: A malformed signature (aborts the run), or a malformed listing at an
            endpoint while no endpoint listed a signature.
        VerificationFailed: ``TOO_MANY_SIGNATURES`` past the referrers page bound, ``MALFORMED``
            for a listed signature found nowhere.
        RegistryError: No endpoint could be asked, or a signature could not be fetched.
    """
    errors: list[PullgateError] = []
    answered = False  # some endpoint listed its signatures completely
    found = False  # some endpoint listed at least one signature
    seen: set[str] = set()
    endpoints = client.signature_endpoints(ref)
    for index, endpoint in enumerate(endpoints):
        listing = _referrers(client, endpoint, ref, target)
        complete = here = False
        while True:
            try:
                with client.transport.attempt(len(endpoints) - index - 1):
                    desc = next(listing)
            except StopIteration:
                complete = True
                break
            except PullgateError as exc:
                log.info("signature discovery at %s failed: %s", endpoint.url, exc)
                errors.append(exc)
                break
            here = found = True
            if desc.digest not in seen:
                seen.add(desc.digest)
                yield fetch_signature(client, ref, desc, endpoint)
        answered = answered or complete
        if complete and here:
            return
        if complete:
            log.debug("endpoint %s lists no signature for %s", endpoint.url, target.digest)
    if answered and not found and not any(isinstance(e, VerificationFailed) for e in errors):
        return
    if not errors:
        errors.append(
            RegistryError(
                Reason.REGISTRY_ERROR, f"{ref}: no endpoint with pull or referrers capability"
            )
        )
    raise most_relevant(errors, f"signatures of {ref}")
