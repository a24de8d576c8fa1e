"""The verification checks on one signature, in notation's order.

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

A check whose action is ``enforce`` and that fails ends the signature. The loop over an
artifact's signatures is :class:`pullgate.verification.verifier.Verifier`.

The clock, the revocation checkers and the certificate memos are injected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from pullgate.common.clock import Clock
from pullgate.errors import PullgateError, Reason, VerificationFailed, VerificationInconclusive
from pullgate.verification.cache import CertMemo
from pullgate.verification.envelope import verify_envelope
from pullgate.verification.model import EnvelopeContent, SigningScheme
from pullgate.verification.outcome import CheckAction, CheckResult, CheckType, SignatureOutcome
from pullgate.verification.policy import TrustPolicyStatement, VerifyTimestamp
from pullgate.verification.revocation import Purpose, RevocationChecker, RevocationStatus
from pullgate.verification.timestamp import verify_timestamp_token
from pullgate.verification.truststore import StoreType, TrustStore
from pullgate.verification.x509.certs import certificate_der, fingerprint_sha256
from pullgate.verification.x509.identity import (
    certificate_subject,
    go_name_string,
    match_trusted_identities,
)

__all__ = ["SignatureBlob", "SignatureVerifier", "TargetCheck", "check_result"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureBlob:
    """One discovered signature: the manifest that carries it and the envelope bytes."""

    manifest_digest: str
    media_type: str
    envelope: bytes


TargetCheck = Callable[[EnvelopeContent], CheckResult]
"""Compares the signed payload with what is being verified (OCI descriptor or blob)."""


def check_result(check: CheckType, action: CheckAction, err: PullgateError | None) -> CheckResult:
    """The result of one check: passed when ``err`` is None, else its reason and message."""
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
    chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate], memo: CertMemo
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
            if certificate_der(candidate, memo) == certificate_der(cert, memo):
                return True
    return False


DEFAULT_MAX_SIGNATURES = 100


class SignatureVerifier:
    """Runs notation's checks on one signature for one trust-policy statement."""

    def __init__(
        self,
        *,
        trust_store: TrustStore,
        revocation: RevocationChecker,
        clock: Clock,
        max_signatures: int = DEFAULT_MAX_SIGNATURES,
        tsa_revocation: RevocationChecker | None = None,
        memo: CertMemo,
    ) -> None:
        """Create a verifier.

        Args:
            trust_store: the named x509 stores of the notation configuration directory.
            revocation: OCSP/CRL source for the signing chain.
            clock: the time source for expiry and validity checks.
            max_signatures: at most this many signatures are evaluated per artifact (> 0; the
                bound of :class:`~pullgate.verification.verifier.Verifier`'s artifact loop).
            tsa_revocation: revocation source for TSA chains (defaults to ``revocation``).
            memo: the trust snapshot's certificate memos.
        """
        if max_signatures <= 0:
            raise ValueError("max_signatures must be > 0")
        self._store = trust_store
        self._revocation = revocation
        self._tsa_revocation = tsa_revocation or revocation
        self._clock = clock
        self._max = max_signatures
        self._memo = memo

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
        memo = self._memo

        def done(content: EnvelopeContent | None = None) -> SignatureOutcome:
            leaf = content.certificates[0] if content and content.certificates else None
            return SignatureOutcome(
                manifest_digest=blob.manifest_digest,
                envelope_media_type=blob.media_type,
                results=tuple(results),
                signer_subject=certificate_subject(leaf, memo) if leaf is not None else None,
                signer_fingerprint=fingerprint_sha256(leaf, memo) if leaf is not None else None,
                signing_time=content.signing_time.isoformat() if content else None,
                valid_until=_valid_until(content) if content else None,
            )

        # 1. integrity
        try:
            content = verify_envelope(blob.media_type, blob.envelope, memo)
        except PullgateError as exc:
            results.append(check_result(CheckType.INTEGRITY, CheckAction.ENFORCE, exc))
            return done()
        results.append(check_result(CheckType.INTEGRITY, CheckAction.ENFORCE, None))

        # 2. verification plugins are not supported: such a signature fails at every level.
        if content.verification_plugin is not None:
            err = VerificationFailed(
                Reason.PLUGIN_REQUIRED,
                f"signature requires verification plugin {content.verification_plugin!r}, "
                "which pullgate does not run",
            )
            results.append(check_result(CheckType.PLUGIN, CheckAction.ENFORCE, err))
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
                results.append(check_result(check, action, None))
                continue
            try:
                step(content, statement)
                results.append(check_result(check, action, None))
            except PullgateError as exc:
                results.append(check_result(check, action, exc))
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
        if not _contains_trusted(content.certificates, trusted, self._memo):
            raise VerificationFailed(
                Reason.UNTRUSTED,
                "the signature's certificate chain does not contain any trusted certificate",
            )
        match_trusted_identities(
            content.certificates[0], statement.trusted_identities, statement.name, self._memo
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
        stamp = verify_timestamp_token(
            content.timestamp_token, content.raw_signature, tsa_roots, self._memo
        )
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
        return check_result(CheckType.USER_METADATA, CheckAction.ENFORCE, mismatch)
