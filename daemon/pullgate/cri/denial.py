"""How a denied ``PullImage`` reads in ``kubectl describe pod`` (containerd-integration.md §3.6).

The kubelet (>= 1.28) turns a gRPC status with code ``Unknown`` whose message *starts with*
``SignatureValidationFailed`` or ``RegistryUnavailable`` into the container waiting reason of the
same name, and strips nothing else; any other code keeps the ``rpc error: code = … desc = …``
prefix and ends up as ``ErrImagePull``. So every denial is code ``UNKNOWN`` with the text::

    SignatureValidationFailed: <REASON>: <message> (fix: <hint>)
    RegistryUnavailable: <REASON>: <message> (fix: <hint>)

``RegistryUnavailable`` is used for inconclusive decisions (retryable: network, timeouts,
unknown revocation status); everything else is ``SignatureValidationFailed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from pullgate.decision.model import Decision
from pullgate.errors import PullgateError, Reason, VerificationInconclusive

MAX_MESSAGE_CHARS = 3000  # the kubelet copies the text into events and pod status


class DenialKind(StrEnum):
    """The kubelet-recognised prefix of a denial message."""

    SIGNATURE = "SignatureValidationFailed"
    REGISTRY = "RegistryUnavailable"


FIX_HINTS: MappingProxyType[Reason, str] = MappingProxyType(
    {
        Reason.VERIFIED: "nothing to fix",
        Reason.SKIPPED_BY_POLICY: "nothing to fix: the trust policy skips verification",
        Reason.AUDIT_ONLY: "nothing to fix: the trust policy only audits this image",
        Reason.NO_SIGNATURE: "sign the image with notation and push the signature to the registry",
        Reason.INTEGRITY: "the signature does not match its content: re-sign the image",
        Reason.UNTRUSTED: "add the signer's root CA to a trust store named in the trust policy",
        Reason.IDENTITY_MISMATCH: (
            "add the signer's subject to trustedIdentities or sign with a trusted identity"
        ),
        Reason.EXPIRED: "re-sign the image (the signature or its certificate has expired)",
        Reason.TIMESTAMP: "check the TSA root in the tsa trust store, or re-sign with a timestamp",
        Reason.REVOKED: "re-sign the image with a certificate that is not revoked",
        Reason.REVOCATION_UNKNOWN: (
            "make the OCSP/CRL endpoints reachable from the node, then retry"
        ),
        Reason.DESCRIPTOR_MISMATCH: (
            "pull by digest, or stop re-tagging while nodes pull; then retry"
        ),
        Reason.USER_METADATA: "sign with the user metadata the trust policy requires",
        Reason.PLUGIN_REQUIRED: "pullgate does not run notation plugins: sign without a plugin",
        Reason.NO_POLICY: "add a trust-policy statement whose registryScopes cover this image",
        Reason.PLATFORM_NOT_FOUND: "publish the image for this node's platform",
        Reason.REGISTRY_UNREACHABLE: "check that the node can reach the registry, then retry",
        Reason.REGISTRY_TLS: (
            "check the CA and client certificate in the registry's certs.d hosts.toml"
        ),
        Reason.REGISTRY_AUTH: "check the pod's imagePullSecrets or the node's registry credentials",
        Reason.REGISTRY_ERROR: "the registry answered with an error: check it, then retry",
        Reason.TIMEOUT: "the registry or a revocation endpoint is slow: retry or raise timeouts",
        Reason.TOO_MANY_SIGNATURES: (
            "remove stale signatures or raise the maximum number of signatures tried"
        ),
        Reason.MALFORMED: "fix the image reference or the artifact the registry serves",
        Reason.AMBIGUOUS_DOCUMENT: (
            "rebuild the index without duplicate, case-variant or null-valued keys"
        ),
        Reason.CONFIG: "fix pullgate's trust configuration (see 'pullgate doctor' and its logs)",
        Reason.INTERNAL: "a pullgate bug: see the pullgate logs",
        Reason.CONTENT_MISMATCH: (
            "the image on the node is not the content that was signed: remove it and pull it "
            "again through pullgate"
        ),
        Reason.NOT_VERIFIED: (
            "pull the image through pullgate (or wait for the verification started now), then retry"
        ),
        Reason.IMAGE_UNKNOWN: "pull the image, then retry",
        Reason.BREAK_GLASS: "remove the break-glass file once the trust configuration is fixed",
    }
)


def fix_hint(reason: Reason) -> str:
    """The operator-facing fix hint for ``reason``."""
    return FIX_HINTS.get(reason, "see the pullgate logs")


@dataclass(frozen=True, slots=True, kw_only=True)
class Denial:
    """A refused pull as the proxy reports it to the kubelet."""

    kind: DenialKind
    reason: Reason
    message: str

    @property
    def text(self) -> str:
        """The gRPC status message (begins with ``kind`` and ``": "``)."""
        body = " ".join(self.message.split())  # one line, whatever the source produced
        text = f"{self.kind.value}: {self.reason.value}: {body} (fix: {fix_hint(self.reason)})"
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 3] + "..."
        return text

    @classmethod
    def from_decision(cls, decision: Decision) -> Denial:
        """The denial for a decision that does not allow the pull."""
        kind = DenialKind.REGISTRY if decision.inconclusive else DenialKind.SIGNATURE
        return cls(kind=kind, reason=decision.reason, message=decision.message)

    @classmethod
    def from_error(cls, err: PullgateError) -> Denial:
        """The denial for a domain error raised while deciding."""
        kind = (
            DenialKind.REGISTRY
            if isinstance(err, VerificationInconclusive)
            else DenialKind.SIGNATURE
        )
        return cls(kind=kind, reason=err.reason, message=err.detail)
