"""The verification pipeline, per signature and per artifact.

Implements the Notary Project trust-store / trust-policy specification, "Signature verification
details", with notation-go's order and semantics:

1. integrity (envelope parse, crypto, headers, chain shape) — always enforced;
2. a signature naming a verification plugin fails (pullgate runs no plugins);
3. authenticity: an envelope certificate byte-equal to a certificate of the scheme's store type,
   then the statement's trusted identities;
4. expiry;
5. authentic timestamp (RFC 3161 countersignature for ``notary.x509``; the authentic signing time
   for ``notary.x509.signingAuthority``);
6. revocation of the signing chain;
7. payload descriptor equality and user metadata — enforced at every non-skip level.

A check whose action is ``enforce`` and that fails ends the signature. The first signature that
passes ends the artifact; at most ``max_signatures`` are evaluated.

Everything that touches the outside world is injected: the clock, the revocation checker and the
signature source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509

from pullgate.clock import Clock
from pullgate.descriptor import Descriptor, compute_digest
from pullgate.errors import (
    PullgateError,
    Reason,
    SignatureNotFound,
    VerificationFailed,
    VerificationInconclusive,
)
from pullgate.verification.certs import certificate_der, fingerprint_sha256
from pullgate.verification.envelope import verify_envelope
from pullgate.verification.identity import (
    certificate_subject,
    go_name_string,
    match_trusted_identities,
)
from pullgate.verification.model import EnvelopeContent, SigningScheme
from pullgate.verification.outcome import (
    CheckAction,
    CheckResult,
    CheckType,
    Level,
    SignatureOutcome,
    VerificationOutcome,
)
from pullgate.verification.policy import TrustPolicyStatement, VerifyTimestamp
from pullgate.verification.revocation import Purpose, RevocationChecker, RevocationStatus
from pullgate.verification.timestamp import verify_timestamp_token
from pullgate.verification.truststore import StoreType, TrustStore

log = logging.getLogger(__name__)

DEFAULT_MAX_SIGNATURES = 100

# Runtime trouble that a retry could clear. INTERNAL is deliberately absent: an error we do not
# understand must fail closed, even where a statement opts into on_inconclusive = "allow".
INCONCLUSIVE_REASONS = frozenset(
    {
        Reason.REVOCATION_UNKNOWN,
        Reason.REGISTRY_UNREACHABLE,
        Reason.REGISTRY_ERROR,
        Reason.REGISTRY_TLS,
        Reason.REGISTRY_AUTH,
        Reason.TIMEOUT,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureBlob:
    """One discovered signature: the manifest that carries it and the envelope bytes."""

    manifest_digest: str
    media_type: str
    envelope: bytes


class SignatureSource(Protocol):
    """Where signatures come from (an OCI layout, a registry, memory in tests).

    Iteration yields signatures in the store's order. A signature that cannot be retrieved raises
    a :class:`PullgateError` (notation aborts the whole run on a retrieval failure).
    """

    def signatures(self, target: Descriptor) -> Iterable[SignatureBlob]: ...


TargetCheck = Callable[[EnvelopeContent], CheckResult]
"""Compares the signed payload with what is being verified (OCI descriptor or blob)."""


def _result(check: CheckType, action: CheckAction, err: PullgateError | None) -> CheckResult:
    if err is None:
        return CheckResult(check=check, action=action, passed=True)
    return CheckResult(
        check=check, action=action, passed=False, reason=err.reason, message=str(err)
    )


def _cert_validity_error(content: EnvelopeContent, at: datetime, what: str) -> str | None:
    for cert in content.certificates:
        if at < cert.not_valid_before_utc:
            return (
                f"{what} is before certificate {go_name_string(cert.subject)!r} validity period, "
                f"it will be valid from {cert.not_valid_before_utc.isoformat()}"
            )
        if at > cert.not_valid_after_utc:
            return (
                f"{what} is after certificate {go_name_string(cert.subject)!r} validity period, "
                f"it was expired at {cert.not_valid_after_utc.isoformat()}"
            )
    return None


def _valid_until(content: EnvelopeContent) -> datetime | None:
    """The earliest of the signature's expiry and every chain certificate's notAfter."""
    bounds = [cert.not_valid_after_utc for cert in content.certificates]
    if content.expiry is not None:
        bounds.append(content.expiry)
    return min(bounds, default=None)


def _contains_trusted(
    chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate]
) -> bool:
    """True when a certificate of ``chain`` is byte-equal (DER) to one of ``trusted``.

    Byte-equal certificates have equal signature values, so only certificates that share one
    are compared by DER.
    """
    by_signature: dict[bytes, list[x509.Certificate]] = {}
    for cert in trusted:
        by_signature.setdefault(cert.signature, []).append(cert)
    for cert in chain:
        for candidate in by_signature.get(cert.signature, ()):
            if certificate_der(candidate) == certificate_der(cert):
                return True
    return False


class Verifier:
    """Runs notation's checks for one trust-policy statement over a set of signatures."""

    def __init__(
        self,
        *,
        trust_store: TrustStore,
        revocation: RevocationChecker,
        clock: Clock,
        max_signatures: int = DEFAULT_MAX_SIGNATURES,
        tsa_revocation: RevocationChecker | None = None,
    ) -> None:
        """Create a verifier.

        Args:
            trust_store: the named x509 stores of the notation configuration directory.
            revocation: OCSP/CRL source for the signing chain.
            clock: the time source for expiry and validity checks.
            max_signatures: at most this many signatures are evaluated per artifact (> 0).
            tsa_revocation: revocation source for TSA chains (defaults to ``revocation``).
        """
        if max_signatures <= 0:
            raise ValueError("max_signatures must be > 0")
        self._store = trust_store
        self._revocation = revocation
        self._tsa_revocation = tsa_revocation or revocation
        self._clock = clock
        self._max = max_signatures

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
            inconclusive=isinstance(err, VerificationInconclusive)
            or err.reason in INCONCLUSIVE_REASONS,
        )

    # ---------------------------------------------------------------- signature level

    def verify_signature(
        self,
        blob: SignatureBlob,
        *,
        statement: TrustPolicyStatement,
        target_check: TargetCheck,
        user_metadata: Mapping[str, str],
    ) -> SignatureOutcome:
        """Run every check on one signature, stopping at the first enforced failure."""
        results: list[CheckResult] = []

        def done(content: EnvelopeContent | None = None) -> SignatureOutcome:
            leaf = content.certificates[0] if content and content.certificates else None
            return SignatureOutcome(
                manifest_digest=blob.manifest_digest,
                envelope_media_type=blob.media_type,
                results=tuple(results),
                signer_subject=certificate_subject(leaf) if leaf is not None else None,
                signer_fingerprint=fingerprint_sha256(leaf) if leaf is not None else None,
                signing_time=content.signing_time.isoformat() if content else None,
                valid_until=_valid_until(content) if content else None,
            )

        # 1. integrity
        try:
            content = verify_envelope(blob.media_type, blob.envelope)
        except PullgateError as exc:
            results.append(_result(CheckType.INTEGRITY, CheckAction.ENFORCE, exc))
            return done()
        results.append(_result(CheckType.INTEGRITY, CheckAction.ENFORCE, None))

        # 2. verification plugins are not supported: such a signature fails at every level.
        if content.verification_plugin is not None:
            err = VerificationFailed(
                Reason.PLUGIN_REQUIRED,
                f"signature requires verification plugin {content.verification_plugin!r}, "
                "which pullgate does not run",
            )
            results.append(_result(CheckType.PLUGIN, CheckAction.ENFORCE, err))
            return done(content)

        steps: tuple[tuple[CheckType, Callable[[EnvelopeContent, TrustPolicyStatement], None]], ...]
        steps = (
            (CheckType.AUTHENTICITY, self.check_authenticity),
            (CheckType.EXPIRY, self.check_expiry),
            (CheckType.AUTHENTIC_TIMESTAMP, self.check_authentic_timestamp),
            (CheckType.REVOCATION, self.check_revocation),
        )
        for check, step in steps:
            action = statement.actions.get(check, CheckAction.ENFORCE)
            if action is CheckAction.SKIP:
                results.append(_result(check, action, None))
                continue
            try:
                step(content, statement)
                results.append(_result(check, action, None))
            except PullgateError as exc:
                results.append(_result(check, action, exc))
                if action is CheckAction.ENFORCE:
                    return done(content)

        # 7. out-of-table checks, fatal at every non-skip level.
        target_result = target_check(content)
        results.append(target_result)
        if not target_result.passed:
            return done(content)
        results.append(self._check_user_metadata(content, user_metadata))
        return done(content)

    # ---------------------------------------------------------------- the checks

    def check_authenticity(self, content: EnvelopeContent, statement: TrustPolicyStatement) -> None:
        """Trust anchor (byte-equal certificate) then trusted identity."""
        store_type = (
            StoreType.CA if content.scheme is SigningScheme.X509 else StoreType.SIGNING_AUTHORITY
        )
        refs = statement.stores_of(store_type)
        if not refs:
            raise VerificationFailed(
                Reason.UNTRUSTED,
                f"no trusted certificates are found to verify authenticity: statement "
                f"{statement.name!r} lists no {store_type.value} trust store",
            )
        try:
            trusted = self._store.load_many(refs)
        except PullgateError as exc:
            raise VerificationFailed(Reason.UNTRUSTED, str(exc)) from exc
        if not _contains_trusted(content.certificates, trusted):
            raise VerificationFailed(
                Reason.UNTRUSTED,
                "the signature's certificate chain does not contain any trusted certificate",
            )
        match_trusted_identities(
            content.certificates[0], statement.trusted_identities, statement.name
        )

    def check_expiry(self, content: EnvelopeContent, statement: TrustPolicyStatement) -> None:
        """The signature's own ``io.cncf.notary.expiry``."""
        del statement
        if content.expiry is not None and self._clock.now() >= content.expiry:
            raise VerificationFailed(
                Reason.EXPIRED, f"digital signature has expired on {content.expiry.isoformat()}"
            )

    def check_authentic_timestamp(
        self, content: EnvelopeContent, statement: TrustPolicyStatement
    ) -> None:
        """RFC 3161 countersignature or authentic signing time, per signing scheme."""
        if content.scheme is SigningScheme.SIGNING_AUTHORITY:
            problem = _cert_validity_error(content, content.signing_time, "authentic signing time")
            if problem:
                raise VerificationFailed(
                    Reason.TIMESTAMP,
                    f"certificate was not valid when the digital signature was produced: {problem}",
                )
            return
        now = self._clock.now()
        tsa_refs = statement.stores_of(StoreType.TSA)
        triggered = bool(tsa_refs)
        if triggered and statement.verify_timestamp is VerifyTimestamp.AFTER_CERT_EXPIRY:
            triggered = any(now > c.not_valid_after_utc for c in content.certificates)
        if not triggered:
            problem = _cert_validity_error(content, now, "verification time")
            if problem:
                raise VerificationFailed(Reason.TIMESTAMP, problem)
            return
        if not content.timestamp_token:
            raise VerificationFailed(
                Reason.TIMESTAMP,
                "no timestamp countersignature was found in the signature envelope",
            )
        try:
            tsa_roots = self._store.load_many(tsa_refs)
        except PullgateError as exc:
            raise VerificationFailed(
                Reason.TIMESTAMP, f"failed to load tsa trust store: {exc}"
            ) from exc
        stamp = verify_timestamp_token(content.timestamp_token, content.raw_signature, tsa_roots)
        for cert in content.certificates:
            if stamp.lower < cert.not_valid_before_utc:
                raise VerificationFailed(
                    Reason.TIMESTAMP,
                    f"timestamp can be before certificate {go_name_string(cert.subject)!r} "
                    f"validity period, it will be valid from {cert.not_valid_before_utc}",
                )
            if stamp.upper > cert.not_valid_after_utc:
                raise VerificationFailed(
                    Reason.TIMESTAMP,
                    f"timestamp can be after certificate {go_name_string(cert.subject)!r} "
                    f"validity period, it was expired at {cert.not_valid_after_utc}",
                )
        tsa_status = self._tsa_revocation.check(
            stamp.tsa_chain, purpose=Purpose.TIMESTAMPING, authentic_signing_time=None
        )
        if tsa_status.status is not RevocationStatus.GOOD:
            raise VerificationFailed(
                Reason.TIMESTAMP,
                f"timestamping certificate with subject {tsa_status.subject!r} revocation status "
                f"is {tsa_status.status.value}: {tsa_status.detail}",
            )

    def check_revocation(self, content: EnvelopeContent, statement: TrustPolicyStatement) -> None:
        """OCSP/CRL status of the signing chain."""
        del statement
        signing_time = (
            content.signing_time if content.scheme is SigningScheme.SIGNING_AUTHORITY else None
        )
        result = self._revocation.check(
            content.certificates, purpose=Purpose.CODE_SIGNING, authentic_signing_time=signing_time
        )
        if result.status is RevocationStatus.REVOKED:
            raise VerificationFailed(
                Reason.REVOKED, f"signing certificate with subject {result.subject!r} is revoked"
            )
        if result.status is RevocationStatus.UNKNOWN:
            raise VerificationInconclusive(
                Reason.REVOCATION_UNKNOWN,
                f"signing certificate with subject {result.subject!r} revocation status is "
                f"unknown: {result.detail}",
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
            return _result(CheckType.DESCRIPTOR, CheckAction.ENFORCE, mismatch)

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
        return _result(CheckType.DESCRIPTOR, CheckAction.ENFORCE, mismatch)

    @staticmethod
    def _check_user_metadata(
        content: EnvelopeContent, user_metadata: Mapping[str, str]
    ) -> CheckResult:
        signed = content.target.annotations
        missing = sorted(k for k, v in user_metadata.items() if signed.get(k) != v)
        mismatch = None
        if missing:
            mismatch = VerificationFailed(
                Reason.USER_METADATA,
                f"unable to find specified metadata in the signature: {', '.join(missing)}",
            )
        return _result(CheckType.USER_METADATA, CheckAction.ENFORCE, mismatch)


class _TooMany(Exception):
    def __init__(self, error: PullgateError) -> None:
        super().__init__(str(error))
        self.error = error
