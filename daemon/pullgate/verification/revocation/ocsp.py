"""OCSP revocation checks (docs/notation.md §12, limits §1.3).

As notation-core-go does it: a SHA-1 ``CertID``; GET when the base64 request is shorter than
255 characters, else POST; at most 20 KiB per response. A response counts only when it is
signed by the issuer or by a delegated responder (issued by the issuer, EKU OCSPSigning) and its
``nextUpdate`` is present and in the future. Responders are tried in order: the first valid
response ends the loop, whether it says ``good``, ``revoked`` or ``unknown``; network, HTTP,
parse, signature and freshness failures fall through to the next one (notation-core-go's
``revocation/internal/ocsp.CertCheckStatus``,
https://github.com/notaryproject/notation-core-go/blob/main/revocation/internal/ocsp/ocsp.go).
A revocation
whose invalidity date is after the authentic signing time does not count.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.common.clock import Clock
from pullgate.verification.revocation.fetch import HttpFetcher, RevocationFetchError, require_http
from pullgate.verification.revocation.status import (
    Answer,
    CheckError,
    RevocationStatus,
    der_of,
)
from pullgate.verification.x509.certs import X509_DECODE_ERRORS

__all__ = ["OCSP_MAX_BYTES", "OcspChecker"]

OCSP_MAX_BYTES = 20 * 1024
_GET_LIMIT = 255


class OcspChecker:
    """OCSP status of one certificate, over an injected :class:`HttpFetcher`."""

    def __init__(self, fetcher: HttpFetcher, clock: Clock, timeout: float) -> None:
        """Create the checker.

        Args:
            fetcher: HTTP transport.
            clock: Source of "now" for nextUpdate checks.
            timeout: Per-request timeout, seconds.
        """
        self._fetcher = fetcher
        self._clock = clock
        self._timeout = timeout

    def check(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        urls: Sequence[str],
        signing_time: datetime | None,
    ) -> Answer:
        """Ask each responder in ``urls`` in turn about ``cert``.

        The first valid response decides, ``unknown`` included (a responder that does not know
        the certificate has answered); failures to get a valid response fall through to the
        next responder, and *unknown* is returned with every problem when none answers.
        """
        problems: list[str] = []
        try:
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 - RFC 6960 CertID
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
        except X509_DECODE_ERRORS as exc:
            return Answer(RevocationStatus.UNKNOWN, f"cannot build OCSP request: {exc}", "OCSP")
        for url in urls:
            try:
                body = self.exchange(url, request)
                status, detail, next_update = self._status(body, cert, issuer, signing_time)
            except (RevocationFetchError, CheckError) as exc:
                problems.append(f"{url}: {exc}")
                continue
            except (*X509_DECODE_ERRORS, InvalidSignature) as exc:
                problems.append(f"{url}: invalid OCSP response: {exc}")
                continue
            return Answer(status, f"{url}: {detail}" if problems else detail, "OCSP", next_update)
        return Answer(RevocationStatus.UNKNOWN, "; ".join(problems), "OCSP")

    def exchange(self, url: str, request: bytes) -> bytes:
        """Send a DER request to ``url``: GET when its base64 is short enough, else POST."""
        require_http(url)
        encoded = base64.b64encode(request).decode()
        if len(encoded) < _GET_LIMIT:
            target = url + "/" + urllib.parse.quote(encoded, safe="")
            return self._fetcher.get(target, timeout=self._timeout, max_bytes=OCSP_MAX_BYTES)
        return self._fetcher.post(
            url,
            request,
            content_type="application/ocsp-request",
            timeout=self._timeout,
            max_bytes=OCSP_MAX_BYTES,
        )

    def _status(
        self,
        body: bytes,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        signing_time: datetime | None,
    ) -> tuple[RevocationStatus, str, datetime]:
        response = ocsp.load_der_ocsp_response(body)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise CheckError(f"OCSP response status {response.response_status.name}")
        index, single = self._matching_single(response, cert, issuer)
        responder = self._responder(response, issuer)
        _verify_with(
            responder.public_key(),
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
        )
        next_update = single.next_update_utc
        if next_update is None or self._clock.now() >= next_update:
            raise CheckError("OCSP response is expired (nextUpdate absent or past)")
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.GOOD:
            return RevocationStatus.GOOD, "OCSP: good", next_update
        if status is ocsp.OCSPCertStatus.REVOKED:
            invalidity = _ocsp_invalidity_date(body, index)
            if signing_time is not None and invalidity is not None and signing_time < invalidity:
                return (
                    RevocationStatus.GOOD,
                    "OCSP: revoked after the authentic signing time",
                    next_update,
                )
            return RevocationStatus.REVOKED, "certificate is revoked via OCSP", next_update
        return (
            RevocationStatus.UNKNOWN,
            "OCSP: responder does not know the certificate",
            next_update,
        )

    @staticmethod
    def _matching_single(
        response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
    ) -> tuple[int, ocsp.OCSPSingleResponse]:
        for index, single in enumerate(response.responses):
            if single.serial_number != cert.serial_number:
                continue
            hash_alg = single.hash_algorithm
            name_hash = hashes.Hash(hash_alg)
            name_hash.update(issuer.subject.public_bytes())
            key_hash = hashes.Hash(hash_alg)
            key_hash.update(_spki_bits(issuer))
            if (
                single.issuer_name_hash == name_hash.finalize()
                and single.issuer_key_hash == key_hash.finalize()
            ):
                return index, single
        raise CheckError("OCSP response does not cover the certificate")

    @staticmethod
    def _responder(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
        if not response.certificates:
            return issuer
        responder = response.certificates[0]
        if der_of(responder) == der_of(issuer):
            return issuer
        try:
            responder.verify_directly_issued_by(issuer)
            usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, x509.ExtensionNotFound, *X509_DECODE_ERRORS) as exc:
            raise CheckError(f"OCSP responder certificate not authorised: {exc}") from exc
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            raise CheckError("OCSP responder certificate lacks the OCSPSigning EKU")
        return responder


def _verify_with(key: object, signature: bytes, data: bytes, hash_alg: object) -> None:
    if not isinstance(hash_alg, hashes.HashAlgorithm):
        raise CheckError("unsupported signature hash")
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hash_alg)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hash_alg))
    else:
        raise CheckError("unsupported responder key type")


def _spki_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (what OCSP's issuerKeyHash covers)."""
    parsed = asn1_x509.Certificate.load(der_of(cert))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:])


def _ocsp_invalidity_date(body: bytes, index: int) -> datetime | None:
    """The invalidity date of the ``index``-th single response of the DER response ``body``.

    ``cryptography`` only exposes the extensions of a response's *first* single response, so
    the matched one is read with asn1crypto (a response may cover several certificates).

    Raises:
        CheckError: The single response's extensions cannot be read.
    """
    try:
        basic = asn1_ocsp.OCSPResponse.load(body)["response_bytes"]["response"].parsed
        single = basic["tbs_response_data"]["responses"][index]
        for extension in single["single_extensions"]:
            if extension["extn_id"].native == "invalidity_date":
                value = extension["extn_value"].parsed.native
                if not isinstance(value, datetime):
                    raise CheckError("OCSP invalidity date is not a time")
                return value.astimezone(UTC)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise CheckError(f"OCSP single response extensions unreadable: {exc}") from exc
    return None
