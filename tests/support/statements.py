"""Trust policies for tests and benches: a one-statement OCI policy document, parsed or as JSON
data, and an in-memory signature source for the verifier."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pullgate.common.descriptor import Descriptor
from pullgate.errors import PullgateError
from pullgate.verification.model import MEDIA_TYPE_JWS
from pullgate.verification.policy import TrustPolicyStatement, parse_oci_policy
from pullgate.verification.verifier import SignatureBlob


def policy_document(
    level: str = "strict",
    *,
    name: str = "app",
    stores: Sequence[str] = ("ca:main",),
    identities: Sequence[str] = ("*",),
    override: dict[str, str] | None = None,
    verify_timestamp: str | None = None,
) -> dict[str, Any]:
    """A trust policy document with one statement for every registry scope (``*``)."""
    verification: dict[str, Any] = {"level": level}
    if override:
        verification["override"] = override
    if verify_timestamp:
        verification["verifyTimestamp"] = verify_timestamp
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": name,
                "registryScopes": ["*"],
                "signatureVerification": verification,
                "trustStores": list(stores),
                "trustedIdentities": list(identities),
            }
        ],
    }


def oci_statement(level: str = "strict", **fields: Any) -> TrustPolicyStatement:
    """The statement of :func:`policy_document` (same arguments), parsed as pullgate parses
    trustpolicy.json."""
    document = policy_document(level, **fields)
    return parse_oci_policy(json.dumps(document).encode()).statements[0]


def signature_blob(envelope: bytes, media_type: str = MEDIA_TYPE_JWS, n: int = 0) -> SignatureBlob:
    """``envelope`` as the signature with manifest digest number ``n``."""
    return SignatureBlob(
        manifest_digest=f"sha256:{n:064x}", media_type=media_type, envelope=envelope
    )


@dataclass
class Source:
    """An in-memory signature source that records how many signatures were pulled."""

    blobs: list[SignatureBlob]
    pulled: int = 0
    error: PullgateError | None = None

    def signatures(self, target: Descriptor) -> Iterator[SignatureBlob]:
        """The blobs in order, then ``error`` if one is set."""
        for blob in self.blobs:
            self.pulled += 1
            yield blob
        if self.error is not None:
            raise self.error
