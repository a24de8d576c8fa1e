"""Certificate revocation: OCSP with CRL fallback (docs/notation.md §12, limits §1.3).

Semantics, as notation-core-go implements them:

* The root (last certificate) is never checked; every other certificate is checked against the
  next one, its issuer. A certificate with neither an OCSP URL nor a CRL distribution point is
  *non-revokable* and counts as good.
* OCSP first when the certificate names a responder (:mod:`pullgate.verification.revocation.ocsp`).
* OCSP that ends *unknown* falls back to CRL when the certificate has a distribution point
  (method ``OCSPFallbackCRL``); a certificate with only distribution points goes to CRL
  directly (:mod:`pullgate.verification.revocation.crl`, which also holds the on-disk
  :class:`CrlCache`).
* Aggregation: any revoked → revoked (leaf-most), else any unknown → unknown (leaf-most),
  else good.

The network is reached only through the :class:`HttpFetcher` seam
(:mod:`pullgate.verification.revocation.fetch`). Statuses and results live in
:mod:`pullgate.verification.revocation.status`; this module re-exports the public names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509

from pullgate.common.clock import Clock
from pullgate.verification.cache import CertMemo
from pullgate.verification.revocation.crl import (
    CRL_MAX_BYTES,
    CrlBundle,
    CrlCache,
    CrlChecker,
    distribution_point_urls,
)
from pullgate.verification.revocation.fetch import HttpFetcher, RevocationFetchError, Urllib3Fetcher
from pullgate.verification.revocation.ocsp import OCSP_MAX_BYTES, OcspChecker
from pullgate.verification.revocation.status import (
    Answer,
    Purpose,
    RevocationResult,
    RevocationStatus,
    subject_of,
)
from pullgate.verification.x509.certs import X509_DECODE_ERRORS, check_issued_by

__all__ = [
    "CRL_MAX_BYTES",
    "OCSP_MAX_BYTES",
    "CrlBundle",
    "CrlCache",
    "HttpFetcher",
    "NetworkRevocationChecker",
    "Purpose",
    "RevocationChecker",
    "RevocationFetchError",
    "RevocationResult",
    "RevocationStatus",
    "StaticRevocationChecker",
    "Urllib3Fetcher",
]

_log = logging.getLogger(__name__)


class RevocationChecker(Protocol):
    """Source of revocation status for certificate chains."""

    def check(
        self,
        chain: Sequence[x509.Certificate],
        *,
        purpose: Purpose,
        authentic_signing_time: datetime | None,
    ) -> RevocationResult:
        """Check every certificate but the root against its issuer and aggregate."""
        ...


def _aggregate(chain: Sequence[x509.Certificate], answers: Sequence[Answer]) -> RevocationResult:
    for wanted in (RevocationStatus.REVOKED, RevocationStatus.UNKNOWN):
        for cert, answer in zip(chain, answers, strict=False):
            if answer.status is wanted:
                return RevocationResult(
                    status=wanted,
                    subject=subject_of(cert),
                    detail=answer.detail,
                    method=answer.method,
                )
    method = answers[0].method if answers else "none"
    bounds = [a.next_update for a in answers if a.next_update is not None]
    return RevocationResult(
        status=RevocationStatus.GOOD,
        subject=None,
        detail="not revoked",
        method=method,
        next_update=min(bounds, default=None),
    )


@dataclass(frozen=True, slots=True)
class StaticRevocationChecker:
    """Answers one fixed status for every chain (tests, offline conformance runs)."""

    status: RevocationStatus

    def check(
        self,
        chain: Sequence[x509.Certificate],
        *,
        purpose: Purpose,
        authentic_signing_time: datetime | None,
    ) -> RevocationResult:
        """See :meth:`RevocationChecker.check`."""
        del purpose, authentic_signing_time
        subject = None
        if self.status is not RevocationStatus.GOOD and chain:
            subject = subject_of(chain[0])
        return RevocationResult(
            status=self.status, subject=subject, detail="static answer", method="static"
        )


def _urls(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(OCSP URLs, CRL distribution point URLs)."""
    ocsp_urls: list[str] = []
    crl_urls: list[str] = []
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        for desc in aia:
            if desc.access_method == x509.oid.AuthorityInformationAccessOID.OCSP and isinstance(
                desc.access_location, x509.UniformResourceIdentifier
            ):
                ocsp_urls.append(desc.access_location.value)
    except x509.ExtensionNotFound:
        pass
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        crl_urls = distribution_point_urls(dps)
    except x509.ExtensionNotFound:
        pass
    return ocsp_urls, crl_urls


class NetworkRevocationChecker:
    """OCSP + CRL over an injected :class:`HttpFetcher` (§12)."""

    def __init__(
        self,
        fetcher: HttpFetcher,
        clock: Clock,
        crl_cache: CrlCache | None = None,
        ocsp_timeout: float = 2.0,
        crl_timeout: float = 5.0,
        memo: CertMemo | None = None,
    ) -> None:
        """Create the checker.

        Args:
            fetcher: HTTP transport.
            clock: Source of "now" for nextUpdate checks.
            crl_cache: Optional on-disk CRL cache.
            ocsp_timeout: Per-request OCSP timeout, seconds.
            crl_timeout: Per-request CRL timeout, seconds.
            memo: The trust snapshot's certificate memos, for the chain's link checks (None:
                nothing is memoised).
        """
        self._memo = memo
        self._ocsp = OcspChecker(fetcher, clock, ocsp_timeout)
        self._crl = CrlChecker(fetcher, clock, crl_cache, crl_timeout)

    def check(
        self,
        chain: Sequence[x509.Certificate],
        *,
        purpose: Purpose,
        authentic_signing_time: datetime | None,
    ) -> RevocationResult:
        """See :meth:`RevocationChecker.check`."""
        if not chain:
            return RevocationResult(
                status=RevocationStatus.UNKNOWN, subject=None, detail="empty chain", method="chain"
            )
        for index in range(len(chain) - 1):
            if not check_issued_by(chain[index], chain[index + 1], self._memo):
                return RevocationResult(
                    status=RevocationStatus.UNKNOWN,
                    subject=subject_of(chain[index]),
                    detail=f"invalid {purpose.value} chain: certificate {index} is not issued "
                    "by the next one",
                    method="chain",
                )
        answers = [
            self._check_cert(chain[i], chain[i + 1], authentic_signing_time)
            for i in range(len(chain) - 1)
        ]
        return _aggregate(chain, answers)

    def _check_cert(
        self, cert: x509.Certificate, issuer: x509.Certificate, signing_time: datetime | None
    ) -> Answer:
        try:
            ocsp_urls, crl_urls = _urls(cert)
        except X509_DECODE_ERRORS as exc:
            return Answer(RevocationStatus.UNKNOWN, f"malformed extensions: {exc}", "none")
        if not ocsp_urls and not crl_urls:
            return Answer(RevocationStatus.GOOD, "non-revokable certificate", "none")
        if ocsp_urls:
            answer = self._ocsp.check(cert, issuer, ocsp_urls, signing_time)
            if answer.status is not RevocationStatus.UNKNOWN or not crl_urls:
                return answer
            _log.debug("OCSP unknown (%s), falling back to CRL", answer.detail)
            crl_answer = self._crl.check(cert, issuer, crl_urls, signing_time)
            return Answer(
                crl_answer.status, crl_answer.detail, "OCSPFallbackCRL", crl_answer.next_update
            )
        return self._crl.check(cert, issuer, crl_urls, signing_time)

    def _ocsp_exchange(self, url: str, request: bytes) -> bytes:
        """One raw OCSP exchange (GET or POST by request size), for transport-level tests."""
        return self._ocsp.exchange(url, request)
