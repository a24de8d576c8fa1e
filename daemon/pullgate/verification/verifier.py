"""The verification of an artifact: its signatures, one after another, until one passes.

Implements the Notary Project trust-store / trust-policy specification, "Signature verification
details", with notation-go's semantics at the artifact level: the first signature that passes
ends the artifact; at most ``max_signatures`` are evaluated; a statement at level ``skip``
allows without looking at any signature. The checks on each signature, in notation's order, are
:class:`pullgate.verification.signature_checks.SignatureVerifier`; :class:`SignatureBlob` and
:data:`TargetCheck` are re-exported from there.

Everything that touches the outside world is injected: the clock, the revocation checker and the
signature source.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from pullgate.common.descriptor import Descriptor, compute_digest
from pullgate.errors import (
    PullgateError,
    Reason,
    SignatureNotFound,
    VerificationFailed,
)
from pullgate.verification.model import EnvelopeContent
from pullgate.verification.outcome import (
    CheckAction,
    CheckResult,
    CheckType,
    Level,
    SignatureOutcome,
    VerificationOutcome,
)
from pullgate.verification.policy import TrustPolicyStatement
from pullgate.verification.signature_checks import (
    DEFAULT_MAX_SIGNATURES,
    SignatureBlob,
    SignatureVerifier,
    TargetCheck,
    check_result,
)

__all__ = [
    "DEFAULT_MAX_SIGNATURES",
    "SignatureBlob",
    "SignatureSource",
    "TargetCheck",
    "Verifier",
]


class SignatureSource(Protocol):
    """Where signatures come from (an OCI layout, a registry, memory in tests).

    Iteration yields signatures in the store's order. A signature that cannot be retrieved raises
    a :class:`PullgateError` (notation aborts the whole run on a retrieval failure).
    """

    def signatures(self, target: Descriptor) -> Iterable[SignatureBlob]: ...


class Verifier(SignatureVerifier):
    """Runs notation's checks for one trust-policy statement over a set of signatures."""

    # ---------------------------------------------------------------- artifact level

    def verify_artifact(
        self,
        *,
        reference: str,
        target: Descriptor,
        statement: TrustPolicyStatement,
        source: SignatureSource,
        user_metadata: Mapping[str, str] | None = None,
    ) -> VerificationOutcome:
        """Verify an OCI artifact: first passing signature wins.

        Args:
            reference: the ``registry/repo@digest`` string (for reporting).
            target: the resolved descriptor the payload must name exactly.
            statement: the applicable trust-policy statement (already selected).
            source: where the signatures come from.
            user_metadata: key/values that must appear in the signed payload annotations.

        Returns:
            The outcome; never raises for verification results.
        """
        metadata = dict(user_metadata or {})

        def check_target(content: EnvelopeContent) -> CheckResult:
            return self._check_descriptor(content, target)

        if statement.level is Level.SKIP:
            return self._decide(reference, target.digest, statement, (), skipped=True)
        outcomes: list[SignatureOutcome] = []
        try:
            for blob in self._bounded(source.signatures(target), outcomes, reference):
                sig = self.verify_signature(
                    blob, statement=statement, target_check=check_target, user_metadata=metadata
                )
                outcomes.append(sig)
                if sig.passed:
                    break
        except _TooMany as exc:
            return self._deny(reference, target.digest, statement, outcomes, exc.error)
        except PullgateError as exc:
            return self._deny(reference, target.digest, statement, outcomes, exc)
        return self._decide(reference, target.digest, statement, tuple(outcomes))

    def _bounded(
        self, blobs: Iterable[SignatureBlob], outcomes: list[SignatureOutcome], reference: str
    ) -> Iterator[SignatureBlob]:
        for count, blob in enumerate(blobs):
            if count >= self._max:
                raise _TooMany(
                    VerificationFailed(
                        Reason.TOO_MANY_SIGNATURES,
                        f"signature evaluation stopped: the limit of {self._max} signatures per "
                        f"artifact was reached for {reference} without a passing signature",
                    )
                )
            yield blob

    def _decide(
        self,
        reference: str,
        digest: str,
        statement: TrustPolicyStatement,
        outcomes: tuple[SignatureOutcome, ...],
        *,
        skipped: bool = False,
    ) -> VerificationOutcome:
        common = {
            "reference": reference,
            "digest": digest,
            "statement": statement.name,
            "level": statement.level,
            "signatures": outcomes,
        }
        if skipped:
            return VerificationOutcome(
                **common,  # type: ignore[arg-type]
                allowed=True,
                reason=Reason.SKIPPED_BY_POLICY,
                message=f"trust policy statement {statement.name!r} skips verification",
            )
        passed = next((o for o in outcomes if o.passed), None)
        if passed is not None:
            warnings = passed.warnings
            message = f"signature {passed.manifest_digest} verified"
            if warnings:
                message += " with logged failures: " + "; ".join(
                    f"{w.check.value}: {w.message}" for w in warnings
                )
            return VerificationOutcome(
                **common,  # type: ignore[arg-type]
                allowed=True,
                reason=Reason.VERIFIED,
                message=message,
            )
        if not outcomes:
            err: PullgateError = SignatureNotFound(f"no signature is associated with {reference}")
        else:
            failure = outcomes[0].failure
            assert failure is not None  # noqa: S101 - a non-passing outcome has a fatal result
            err = PullgateError(failure.reason or Reason.INTERNAL, failure.message)
        return self._deny(reference, digest, statement, list(outcomes), err)

    @staticmethod
    def _deny(
        reference: str,
        digest: str,
        statement: TrustPolicyStatement,
        outcomes: list[SignatureOutcome],
        err: PullgateError,
    ) -> VerificationOutcome:
        return VerificationOutcome(
            reference=reference,
            digest=digest,
            statement=statement.name,
            level=statement.level,
            allowed=False,
            reason=err.reason,
            message=str(err),
            signatures=tuple(outcomes),
            inconclusive=err.inconclusive,
        )

    def verify_blob(
        self,
        *,
        blob_name: str,
        blob: bytes,
        signature: SignatureBlob,
        statement: TrustPolicyStatement,
        media_type: str | None = None,
        user_metadata: Mapping[str, str] | None = None,
    ) -> VerificationOutcome:
        """Verify a detached blob signature (``notation blob verify`` semantics).

        The payload digest is recomputed with the hash that belongs to the signature algorithm,
        the size must match, and the media type is compared only when the caller gives one.
        """

        def check_blob(content: EnvelopeContent) -> CheckResult:
            alg = content.algorithm.hash_name
            signed = content.target
            ok = signed.digest == compute_digest(blob, alg) and signed.size == len(blob)
            if media_type is not None:
                ok = ok and signed.media_type == media_type
            mismatch = None
            if not ok:
                mismatch = VerificationFailed(
                    Reason.DESCRIPTOR_MISMATCH,
                    "integrity check failed: signature does not match the given blob",
                )
            return check_result(CheckType.DESCRIPTOR, CheckAction.ENFORCE, mismatch)

        if statement.level is Level.SKIP:
            return self._decide(blob_name, "", statement, (), skipped=True)
        outcome = self.verify_signature(
            signature,
            statement=statement,
            target_check=check_blob,
            user_metadata=dict(user_metadata or {}),
        )
        return self._decide(blob_name, compute_digest(blob), statement, (outcome,))

    @staticmethod
    def _check_descriptor(content: EnvelopeContent, target: Descriptor) -> CheckResult:
        mismatch = None
        if not content.target.same_target(target):
            mismatch = VerificationFailed(
                Reason.DESCRIPTOR_MISMATCH,
                f"content descriptor mismatch: signature names {content.target.digest} "
                f"({content.target.media_type}, {content.target.size} bytes), artifact is "
                f"{target.digest} ({target.media_type}, {target.size} bytes)",
            )
        return check_result(CheckType.DESCRIPTOR, CheckAction.ENFORCE, mismatch)


class _TooMany(Exception):
    def __init__(self, error: PullgateError) -> None:
        super().__init__(str(error))
        self.error = error
