"""The one reason vocabulary shared by every front end, and the error tree.

Errors are split by the *decision* they lead to (see STYLE.md §5):

* :class:`VerificationFailed` — the signature or artifact is bad: a definitive deny.
* :class:`VerificationInconclusive` — runtime trouble (network, timeouts, unknown revocation
  status): retryable, and whether it denies is an explicit policy choice.
* :class:`SignatureNotFound` — nothing to verify.
* :class:`NoApplicablePolicy` — no trust-policy statement covers the reference.
* :class:`ConfigError` — the operator's configuration (trust policy, trust store, config file)
  is unusable.

Tests assert on ``.reason``, never on message text.
"""

from __future__ import annotations

from enum import StrEnum


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
    REGISTRY_UNREACHABLE = "REGISTRY_UNREACHABLE"
    REGISTRY_TLS = "REGISTRY_TLS"
    REGISTRY_AUTH = "REGISTRY_AUTH"
    REGISTRY_ERROR = "REGISTRY_ERROR"
    TIMEOUT = "TIMEOUT"
    TOO_MANY_SIGNATURES = "TOO_MANY_SIGNATURES"
    MALFORMED = "MALFORMED"
    AMBIGUOUS_DOCUMENT = "AMBIGUOUS_DOCUMENT"
    CONFIG = "CONFIG"
    INTERNAL = "INTERNAL"
    # Container start: the image's config digest is not the one the verified manifest names.
    CONTENT_MISMATCH = "CONTENT_MISMATCH"
    # Container start: no allow under the current trust configuration covers the image.
    NOT_VERIFIED = "NOT_VERIFIED"
    # Container start: the runtime does not know the image the container asks for.
    IMAGE_UNKNOWN = "IMAGE_UNKNOWN"
    # A denial turned into an audited allow by an unexpired break-glass file.
    BREAK_GLASS = "BREAK_GLASS"


class PullgateError(Exception):
    """Base of every domain error: a typed reason plus human-readable detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason.value}, {self.detail!r})"


class VerificationFailed(PullgateError):
    """A definitive failure: deny, never retry."""


class VerificationInconclusive(PullgateError):
    """Verification could not complete (network, timeout, unknown revocation status)."""


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
