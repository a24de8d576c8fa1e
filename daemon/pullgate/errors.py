"""The one reason vocabulary, the one table of what each reason means, and the error tree.

:data:`REASONS` is the authority, keyed by :class:`Reason`: whether a failure is definitive or
inconclusive, the gRPC status code an aborted RPC carries, the CRI message prefix the kubelet
turns into a waiting reason, and the operator's fix hint. Every front end (CRI proxy, shim,
gRPC, ``on_inconclusive``) reads it; none keeps a list of its own.

Errors are split by the *decision* they lead to:

* :class:`VerificationFailed` — the signature or artifact is bad: a definitive deny.
* :class:`VerificationInconclusive` — runtime trouble (network, timeouts, unknown revocation
  status): retryable, and whether it denies is an explicit policy choice.
* :class:`SignatureNotFound` — nothing to verify.
* :class:`NoApplicablePolicy` — no trust-policy statement covers the reference.
* :class:`ConfigError` — the operator's configuration (trust policy, trust store, config file)
  is unusable.

A :class:`VerificationFailed` or :class:`VerificationInconclusive` whose reason the table
classifies the other way cannot be constructed (``TypeError``); the other classes take whatever
their reason's row says. Tests assert on ``.reason``, never on message text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Reason(StrEnum):
    """Why a decision was reached. Names are part of the external contract."""

    VERIFIED = "VERIFIED"
    SKIPPED_BY_POLICY = "SKIPPED_BY_POLICY"
    AUDIT_ONLY = "AUDIT_ONLY"
    NO_SIGNATURE = "NO_SIGNATURE"
    INTEGRITY = "INTEGRITY"
    UNTRUSTED = "UNTRUSTED"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    EXPIRED = "EXPIRED"
    TIMESTAMP = "TIMESTAMP"
    REVOKED = "REVOKED"
    REVOCATION_UNKNOWN = "REVOCATION_UNKNOWN"
    DESCRIPTOR_MISMATCH = "DESCRIPTOR_MISMATCH"
    USER_METADATA = "USER_METADATA"
    PLUGIN_REQUIRED = "PLUGIN_REQUIRED"
    NO_POLICY = "NO_POLICY"
    PLATFORM_NOT_FOUND = "PLATFORM_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    REGISTRY_UNREACHABLE = "REGISTRY_UNREACHABLE"
    REGISTRY_TLS = "REGISTRY_TLS"
    REGISTRY_AUTH = "REGISTRY_AUTH"
    REGISTRY_ERROR = "REGISTRY_ERROR"
    TIMEOUT = "TIMEOUT"
    TOO_MANY_SIGNATURES = "TOO_MANY_SIGNATURES"
    MALFORMED = "MALFORMED"
    AMBIGUOUS_DOCUMENT = "AMBIGUOUS_DOCUMENT"
    CONFIG = "CONFIG"
    DAEMON_UNAVAILABLE = "DAEMON_UNAVAILABLE"
    RUNTIME_UNAVAILABLE = "RUNTIME_UNAVAILABLE"
    INTERNAL = "INTERNAL"
    # Container start: the image's config digest is not the one the verified manifest names.
    CONTENT_MISMATCH = "CONTENT_MISMATCH"
    # Container start: no allow under the current trust configuration covers the image.
    NOT_VERIFIED = "NOT_VERIFIED"
    # Container start: the runtime does not know the image the container asks for.
    IMAGE_UNKNOWN = "IMAGE_UNKNOWN"
    # A denial turned into an audited allow by an unexpired break-glass file.
    BREAK_GLASS = "BREAK_GLASS"
    # Container start (NRI): not verified yet; verification has started, a retry finds its result.
    VERIFICATION_STARTED = "VERIFICATION_STARTED"


class ReasonKind(StrEnum):
    """What a reason means for the decision."""

    ALLOW = "allow"  # the pull may go ahead
    DEFINITIVE = "definitive"  # deny; retrying cannot change the answer
    INCONCLUSIVE = "inconclusive"  # deny unless on_inconclusive = "allow"; a retry may differ


CRI_DEFINITIVE_PREFIX = "SignatureValidationFailed"
CRI_INCONCLUSIVE_PREFIX = "RegistryUnavailable"


@dataclass(frozen=True, slots=True)
class ReasonRow:
    """One reason's meaning for every front end.

    ``grpc_code`` names a ``grpc.StatusCode`` member (this module does not import grpc).
    """

    kind: ReasonKind
    grpc_code: str
    fix: str

    @property
    def inconclusive(self) -> bool:
        """True when a retry could give another answer (``on_inconclusive`` applies)."""
        return self.kind is ReasonKind.INCONCLUSIVE

    @property
    def cri_prefix(self) -> str:
        """The kubelet-recognised start of a CRI denial message (without ``": "``)."""
        return CRI_INCONCLUSIVE_PREFIX if self.inconclusive else CRI_DEFINITIVE_PREFIX


_A, _D, _I = ReasonKind.ALLOW, ReasonKind.DEFINITIVE, ReasonKind.INCONCLUSIVE
_FP = "FAILED_PRECONDITION"

REASONS: Mapping[Reason, ReasonRow] = MappingProxyType(
    {
        Reason.VERIFIED: ReasonRow(_A, "OK", "nothing to fix"),
        Reason.SKIPPED_BY_POLICY: ReasonRow(
            _A, "OK", "nothing to fix: the trust policy skips verification"
        ),
        Reason.AUDIT_ONLY: ReasonRow(
            _A, "OK", "nothing to fix: the trust policy only audits this image"
        ),
        Reason.NO_SIGNATURE: ReasonRow(
            _D, _FP, "sign the image with notation and push the signature to the registry"
        ),
        Reason.INTEGRITY: ReasonRow(
            _D, _FP, "the signature does not match its content: re-sign the image"
        ),
        Reason.UNTRUSTED: ReasonRow(
            _D, _FP, "add the signer's root CA to a trust store named in the trust policy"
        ),
        Reason.IDENTITY_MISMATCH: ReasonRow(
            _D,
            _FP,
            "add the signer's subject to trustedIdentities or sign with a trusted identity",
        ),
        Reason.EXPIRED: ReasonRow(
            _D, _FP, "re-sign the image (the signature or its certificate has expired)"
        ),
        Reason.TIMESTAMP: ReasonRow(
            _D, _FP, "check the TSA root in the tsa trust store, or re-sign with a timestamp"
        ),
        Reason.REVOKED: ReasonRow(
            _D, _FP, "re-sign the image with a certificate that is not revoked"
        ),
        Reason.REVOCATION_UNKNOWN: ReasonRow(
            _I, "UNAVAILABLE", "make the OCSP/CRL endpoints reachable from the node, then retry"
        ),
        Reason.DESCRIPTOR_MISMATCH: ReasonRow(
            _D, _FP, "pull by digest, or stop re-tagging while nodes pull; then retry"
        ),
        Reason.USER_METADATA: ReasonRow(
            _D, _FP, "sign with the user metadata the trust policy requires"
        ),
        Reason.PLUGIN_REQUIRED: ReasonRow(
            _D, _FP, "pullgate does not run notation plugins: sign without a plugin"
        ),
        Reason.NO_POLICY: ReasonRow(
            _D, _FP, "add a trust-policy statement whose registryScopes cover this image"
        ),
        Reason.PLATFORM_NOT_FOUND: ReasonRow(
            _D, "NOT_FOUND", "publish the image for this node's platform"
        ),
        Reason.NOT_FOUND: ReasonRow(
            _D,
            "NOT_FOUND",
            "check the image name and tag, and that it is pushed to the registry "
            "(or the mirrors) this node pulls from",
        ),
        Reason.REGISTRY_UNREACHABLE: ReasonRow(
            _I, "UNAVAILABLE", "check that the node can reach the registry, then retry"
        ),
        Reason.REGISTRY_TLS: ReasonRow(
            _I,
            "UNAVAILABLE",
            "check the CA and client certificate in the registry's certs.d hosts.toml",
        ),
        Reason.REGISTRY_AUTH: ReasonRow(
            _I,
            "PERMISSION_DENIED",
            "check the pod's imagePullSecrets or the node's registry credentials",
        ),
        Reason.REGISTRY_ERROR: ReasonRow(
            _I, "UNAVAILABLE", "the registry answered with an error: check it, then retry"
        ),
        Reason.TIMEOUT: ReasonRow(
            _I,
            "DEADLINE_EXCEEDED",
            "the registry or a revocation endpoint is slow: retry or raise timeouts",
        ),
        Reason.TOO_MANY_SIGNATURES: ReasonRow(
            _D, _FP, "remove stale signatures or raise the maximum number of signatures tried"
        ),
        Reason.MALFORMED: ReasonRow(
            _D,
            "INVALID_ARGUMENT",
            "fix the image reference or the artifact the registry serves",
        ),
        Reason.AMBIGUOUS_DOCUMENT: ReasonRow(
            _D, _FP, "rebuild the index: a key repeats a field (e.g. manifests and Manifests)"
        ),
        Reason.CONFIG: ReasonRow(
            _D,
            _FP,
            "fix pullgate's configuration or the containerd certs.d directory "
            "(see 'pullgate doctor' and the daemon log)",
        ),
        Reason.DAEMON_UNAVAILABLE: ReasonRow(
            _I,
            "UNAVAILABLE",
            "start the pullgate daemon and check the verifier's -socket path, then retry",
        ),
        Reason.RUNTIME_UNAVAILABLE: ReasonRow(
            _I,
            "UNAVAILABLE",
            "check that containerd is running and reachable on its socket (NRI enabled), "
            "then retry",
        ),
        Reason.INTERNAL: ReasonRow(_D, "INTERNAL", "a pullgate bug: see the pullgate logs"),
        Reason.CONTENT_MISMATCH: ReasonRow(
            _D,
            _FP,
            "the image on the node is not the content that was signed: remove it and pull it "
            "again through pullgate",
        ),
        Reason.NOT_VERIFIED: ReasonRow(
            _I,
            _FP,
            "pull the image through pullgate (or wait for the verification started now), "
            "then retry",
        ),
        Reason.IMAGE_UNKNOWN: ReasonRow(_I, "NOT_FOUND", "pull the image, then retry"),
        Reason.BREAK_GLASS: ReasonRow(
            _A, "OK", "remove the break-glass file once the trust configuration is fixed"
        ),
        Reason.VERIFICATION_STARTED: ReasonRow(
            _I, "UNAVAILABLE", "nothing to fix: retry in a moment (the kubelet retries)"
        ),
    }
)


def reason_row(reason: Reason) -> ReasonRow:
    """The table row of ``reason`` (every reason has one; a unit test holds that)."""
    return REASONS[reason]


def is_inconclusive(reason: Reason) -> bool:
    """True when the table calls ``reason`` inconclusive."""
    return REASONS[reason].inconclusive


class PullgateError(Exception):
    """Base of every domain error: a typed reason plus human-readable detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        _check_class(self, reason)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason.value}, {self.detail!r})"

    @property
    def inconclusive(self) -> bool:
        """The table's answer for this error's reason."""
        return is_inconclusive(self.reason)


class VerificationFailed(PullgateError):
    """A definitive failure: deny, never retry."""


class VerificationInconclusive(PullgateError):
    """Verification could not complete (network, timeout, unknown revocation status)."""


def _check_class(err: PullgateError, reason: Reason) -> None:
    """Refuse an error whose class says the opposite of its reason's row."""
    inconclusive = REASONS[reason].inconclusive
    if isinstance(err, VerificationInconclusive) and not inconclusive:
        raise TypeError(f"{type(err).__name__} with {reason.value}, which is not inconclusive")
    if isinstance(err, VerificationFailed) and inconclusive:
        raise TypeError(f"{type(err).__name__} with {reason.value}, which is inconclusive")


class SignatureNotFound(PullgateError):
    """The artifact has no signature to evaluate."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.NO_SIGNATURE, detail)


class NoApplicablePolicy(PullgateError):
    """No trust-policy statement applies to the reference."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.NO_POLICY, detail)


class ConfigError(PullgateError):
    """Operator configuration is unusable. ``problems`` lists every problem found."""

    def __init__(self, detail: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(Reason.CONFIG, detail)
        self.problems = problems or (detail,)


class MalformedInput(VerificationFailed):
    """Input that cannot be parsed at all (OCI layout, manifest, document)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.MALFORMED, detail)


class AmbiguousDocument(VerificationFailed):
    """A document containerd would read in a way pullgate cannot be sure to reproduce."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.AMBIGUOUS_DOCUMENT, detail)
