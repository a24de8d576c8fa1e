"""Certificate revocation: OCSP with CRL fallback (notary-verification.md §12, limits §1.3).

Semantics, as notation-core-go implements them:

* The root (last certificate) is never checked; every other certificate is checked against the
  next one, its issuer. A certificate with neither an OCSP URL nor a CRL distribution point is
  *non-revokable* and counts as good.
* OCSP first when the certificate names a responder: SHA-1 ``CertID``; GET when the base64
  request is shorter than 255 characters, else POST; 2 s timeout; at most 20 KiB; signed by the
  issuer or by a delegated responder (issued by the issuer, EKU OCSPSigning); ``nextUpdate``
  required and in the future. Responders are tried in order; ``good``/``revoked`` end the loop,
  network and parse errors fall through to the next one.
* OCSP that ends *unknown* falls back to CRL when the certificate has a distribution point
  (method ``OCSPFallbackCRL``). CRL: every ``http://`` URL must succeed; signed by the issuer;
  NextUpdate not past; unknown critical extensions refused; entries matched by serial, with
  invalidityDate vs the authentic signing time and certificateHold/removeFromCRL tracking.
  Delta CRLs are fetched from the base CRL's Freshest-CRL extension; a certificate that
  advertises Freshest-CRL without an obtainable delta is *unknown*.
* Aggregation: any revoked → revoked (leaf-most), else any unknown → unknown (leaf-most),
  else good.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import tempfile
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import urllib3
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from pullgate.clock import Clock
from pullgate.errors import Reason, VerificationInconclusive
from pullgate.verification.certs import check_issued_by

_log = logging.getLogger(__name__)

OCSP_MAX_BYTES = 20 * 1024
CRL_MAX_BYTES = 32 * 1024 * 1024
_GET_LIMIT = 255
_TOLERATED_CRL_CRITICAL = frozenset(
    {ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.DELTA_CRL_INDICATOR}
)
_FOREIGN_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension)


class RevocationStatus(StrEnum):
    """Revocation verdict for a certificate or a whole chain."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class Purpose(StrEnum):
    """What the chain is used for (selects the wording and the chain profile)."""

    CODE_SIGNING = "codeSigning"
    TIMESTAMPING = "timestamping"


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationResult:
    """Outcome for a chain; ``subject`` names the leaf-most revoked/unknown certificate."""

    status: RevocationStatus
    subject: str | None
    detail: str
    method: str


class RevocationFetchError(VerificationInconclusive):
    """An OCSP/CRL download failed (network, HTTP status, size, scheme)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.REVOCATION_UNKNOWN, detail)


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


class HttpFetcher(Protocol):
    """Plain-HTTP transport for OCSP and CRL; raises :class:`RevocationFetchError`."""

    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        """GET ``url``; the body of a 200 response of at most ``max_bytes``."""
        ...

    def post(
        self, url: str, body: bytes, *, content_type: str, timeout: float, max_bytes: int
    ) -> bytes:
        """POST ``body`` to ``url``; the body of a 200 response of at most ``max_bytes``."""
        ...


def _require_http(url: str) -> None:
    if urllib.parse.urlsplit(url).scheme.lower() != "http":
        raise RevocationFetchError(f"only http:// revocation URLs are supported: {url!r}")


class Urllib3Fetcher:
    """:class:`HttpFetcher` on one pooled ``urllib3.PoolManager`` (no retries, no redirects)."""

    def __init__(self, pool: urllib3.PoolManager | None = None) -> None:
        """Create the fetcher.

        Args:
            pool: Connection pool to use; a private one is created when omitted.
        """
        self._pool = pool or urllib3.PoolManager(num_pools=16, maxsize=4, retries=False)

    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        """See :meth:`HttpFetcher.get`."""
        return self._request("GET", url, None, {}, timeout, max_bytes)

    def post(
        self, url: str, body: bytes, *, content_type: str, timeout: float, max_bytes: int
    ) -> bytes:
        """See :meth:`HttpFetcher.post`."""
        headers = {"Content-Type": content_type}
        return self._request("POST", url, body, headers, timeout, max_bytes)

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
        max_bytes: int,
    ) -> bytes:
        _require_http(url)
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
                redirect=False,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise RevocationFetchError(f"{method} {url} failed: {exc}") from exc
        complete = False
        try:
            if response.status != 200:
                raise RevocationFetchError(f"{method} {url}: HTTP status {response.status}")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise RevocationFetchError(f"{url}: response exceeds {max_bytes} bytes")
            data = bytearray()
            while len(data) <= max_bytes:
                chunk = response.read(min(65536, max_bytes + 1 - len(data)))
                if not chunk:
                    complete = True
                    break
                data += chunk
            if len(data) > max_bytes:
                raise RevocationFetchError(f"{url}: response exceeds {max_bytes} bytes")
            return bytes(data)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RevocationFetchError(f"{method} {url} failed: {exc}") from exc
        finally:
            if complete:
                response.release_conn()
            else:
                response.close()


# ---------------------------------------------------------------------------------------------
# CRL cache


@dataclass(frozen=True, slots=True, kw_only=True)
class CrlBundle:
    """A base CRL and its optional delta, raw and parsed."""

    base_der: bytes
    delta_der: bytes | None
    base: x509.CertificateRevocationList
    delta: x509.CertificateRevocationList | None

    @classmethod
    def parse(cls, base_der: bytes, delta_der: bytes | None) -> CrlBundle:
        """Parse DER CRLs (raises ``ValueError`` on garbage)."""
        return cls(
            base_der=base_der,
            delta_der=delta_der,
            base=x509.load_der_x509_crl(base_der),
            delta=x509.load_der_x509_crl(delta_der) if delta_der is not None else None,
        )

    def fresh_at(self, now: datetime) -> bool:
        """True while every NextUpdate is present and in the future."""
        crls = [self.base] if self.delta is None else [self.base, self.delta]
        return all(c.next_update_utc is not None and now < c.next_update_utc for c in crls)


class CrlCache:
    """On-disk CRL cache: one JSON file per ``sha256(url)``, written atomically.

    Entries are served while their NextUpdate is in the future. Unreadable or corrupt files
    are ignored (the CRL is simply fetched again); the cache never makes a check fail.
    """

    def __init__(self, directory: Path) -> None:
        """Create the cache (the directory is created on first write).

        Args:
            directory: Where cache files live.
        """
        self._directory = directory
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def hits(self) -> int:
        """Lookups answered from disk."""
        return self._hits

    @property
    def misses(self) -> int:
        """Lookups that found nothing usable."""
        return self._misses

    def _path(self, url: str) -> Path:
        return self._directory / hashlib.sha256(url.encode()).hexdigest()

    def get(self, url: str, now: datetime) -> CrlBundle | None:
        """The cached bundle for ``url`` if present, readable and fresh at ``now``."""
        bundle = self._read(url)
        usable = bundle is not None and bundle.fresh_at(now)
        with self._lock:
            if usable:
                self._hits += 1
            else:
                self._misses += 1
        return bundle if usable else None

    def _read(self, url: str) -> CrlBundle | None:
        try:
            document = json.loads(self._path(url).read_bytes())
            if not isinstance(document, dict) or document.get("url") != url:
                return None
            base = base64.b64decode(document["base"], validate=True)
            delta_text = document.get("delta")
            delta = None if delta_text is None else base64.b64decode(delta_text, validate=True)
            return CrlBundle.parse(base, delta)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            _log.warning("ignoring unreadable CRL cache entry for %s: %s", url, exc)
            return None

    def put(self, url: str, bundle: CrlBundle) -> None:
        """Store ``bundle`` for ``url`` (write to a temporary file, then rename)."""
        document = {
            "url": url,
            "base": base64.b64encode(bundle.base_der).decode(),
            "delta": None
            if bundle.delta_der is None
            else base64.b64encode(bundle.delta_der).decode(),
        }
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(json.dumps(document).encode())
                os.replace(tmp, self._path(url))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            _log.warning("cannot write CRL cache entry for %s: %s", url, exc)


# ---------------------------------------------------------------------------------------------
# Checkers


class _CheckError(Exception):
    """Internal: this OCSP server / CRL URL gave no usable answer."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: RevocationStatus
    detail: str
    method: str


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _aggregate(chain: Sequence[x509.Certificate], answers: Sequence[_Answer]) -> RevocationResult:
    for wanted in (RevocationStatus.REVOKED, RevocationStatus.UNKNOWN):
        for cert, answer in zip(chain, answers, strict=False):
            if answer.status is wanted:
                return RevocationResult(
                    status=wanted,
                    subject=_subject(cert),
                    detail=answer.detail,
                    method=answer.method,
                )
    method = answers[0].method if answers else "none"
    return RevocationResult(
        status=RevocationStatus.GOOD, subject=None, detail="not revoked", method=method
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
            subject = _subject(chain[0])
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
        crl_urls = _dp_urls(dps)
    except x509.ExtensionNotFound:
        pass
    return ocsp_urls, crl_urls


def _dp_urls(points: x509.CRLDistributionPoints | x509.FreshestCRL) -> list[str]:
    return [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    ]


def _has_freshest(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.FreshestCRL)
    except x509.ExtensionNotFound:
        return False
    return True


def _verify_with(key: object, signature: bytes, data: bytes, hash_alg: object) -> None:
    if not isinstance(hash_alg, hashes.HashAlgorithm):
        raise _CheckError("unsupported signature hash")
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hash_alg)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hash_alg))
    else:
        raise _CheckError("unsupported responder key type")


class NetworkRevocationChecker:
    """OCSP + CRL over an injected :class:`HttpFetcher` (§12)."""

    def __init__(
        self,
        fetcher: HttpFetcher,
        clock: Clock,
        crl_cache: CrlCache | None = None,
        ocsp_timeout: float = 2.0,
        crl_timeout: float = 5.0,
    ) -> None:
        """Create the checker.

        Args:
            fetcher: HTTP transport.
            clock: Source of "now" for nextUpdate checks.
            crl_cache: Optional on-disk CRL cache.
            ocsp_timeout: Per-request OCSP timeout, seconds.
            crl_timeout: Per-request CRL timeout, seconds.
        """
        self._fetcher = fetcher
        self._clock = clock
        self._cache = crl_cache
        self._ocsp_timeout = ocsp_timeout
        self._crl_timeout = crl_timeout

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
            if not check_issued_by(chain[index], chain[index + 1]):
                return RevocationResult(
                    status=RevocationStatus.UNKNOWN,
                    subject=_subject(chain[index]),
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
    ) -> _Answer:
        try:
            ocsp_urls, crl_urls = _urls(cert)
        except _FOREIGN_ERRORS as exc:
            return _Answer(RevocationStatus.UNKNOWN, f"malformed extensions: {exc}", "none")
        if not ocsp_urls and not crl_urls:
            return _Answer(RevocationStatus.GOOD, "non-revokable certificate", "none")
        if ocsp_urls:
            answer = self._ocsp(cert, issuer, ocsp_urls, signing_time)
            if answer.status is not RevocationStatus.UNKNOWN or not crl_urls:
                return answer
            _log.debug("OCSP unknown (%s), falling back to CRL", answer.detail)
            crl_answer = self._crl(cert, issuer, crl_urls, signing_time)
            return _Answer(crl_answer.status, crl_answer.detail, "OCSPFallbackCRL")
        return self._crl(cert, issuer, crl_urls, signing_time)

    # --- OCSP ---------------------------------------------------------------------------------

    def _ocsp(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        urls: Sequence[str],
        signing_time: datetime | None,
    ) -> _Answer:
        problems: list[str] = []
        try:
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 - RFC 6960 CertID
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
        except _FOREIGN_ERRORS as exc:
            return _Answer(RevocationStatus.UNKNOWN, f"cannot build OCSP request: {exc}", "OCSP")
        for url in urls:
            try:
                body = self._ocsp_exchange(url, request)
                status, detail = self._ocsp_status(body, cert, issuer, signing_time)
            except (RevocationFetchError, _CheckError) as exc:
                problems.append(f"{url}: {exc}")
                continue
            except (*_FOREIGN_ERRORS, InvalidSignature) as exc:
                problems.append(f"{url}: invalid OCSP response: {exc}")
                continue
            if status is not RevocationStatus.UNKNOWN:
                return _Answer(status, detail, "OCSP")
            problems.append(f"{url}: {detail}")
        return _Answer(RevocationStatus.UNKNOWN, "; ".join(problems), "OCSP")

    def _ocsp_exchange(self, url: str, request: bytes) -> bytes:
        _require_http(url)
        encoded = base64.b64encode(request).decode()
        if len(encoded) < _GET_LIMIT:
            target = url + "/" + urllib.parse.quote(encoded, safe="")
            return self._fetcher.get(target, timeout=self._ocsp_timeout, max_bytes=OCSP_MAX_BYTES)
        return self._fetcher.post(
            url,
            request,
            content_type="application/ocsp-request",
            timeout=self._ocsp_timeout,
            max_bytes=OCSP_MAX_BYTES,
        )

    def _ocsp_status(
        self,
        body: bytes,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        signing_time: datetime | None,
    ) -> tuple[RevocationStatus, str]:
        response = ocsp.load_der_ocsp_response(body)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _CheckError(f"OCSP response status {response.response_status.name}")
        single = self._matching_single(response, cert, issuer)
        responder = self._responder(response, issuer)
        _verify_with(
            responder.public_key(),
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
        )
        next_update = single.next_update_utc
        if next_update is None or self._clock.now() >= next_update:
            raise _CheckError("OCSP response is expired (nextUpdate absent or past)")
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.GOOD:
            return RevocationStatus.GOOD, "OCSP: good"
        if status is ocsp.OCSPCertStatus.REVOKED:
            invalidity = _ocsp_invalidity_date(response)
            if signing_time is not None and invalidity is not None and signing_time < invalidity:
                return RevocationStatus.GOOD, "OCSP: revoked after the authentic signing time"
            return RevocationStatus.REVOKED, "certificate is revoked via OCSP"
        return RevocationStatus.UNKNOWN, "OCSP: responder does not know the certificate"

    @staticmethod
    def _matching_single(
        response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
    ) -> ocsp.OCSPSingleResponse:
        for single in response.responses:
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
                return single
        raise _CheckError("OCSP response does not cover the certificate")

    @staticmethod
    def _responder(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
        if not response.certificates:
            return issuer
        responder = response.certificates[0]
        if _der(responder) == _der(issuer):
            return issuer
        try:
            responder.verify_directly_issued_by(issuer)
            usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, x509.ExtensionNotFound, *_FOREIGN_ERRORS) as exc:
            raise _CheckError(f"OCSP responder certificate not authorised: {exc}") from exc
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            raise _CheckError("OCSP responder certificate lacks the OCSPSigning EKU")
        return responder

    # --- CRL ----------------------------------------------------------------------------------

    def _crl(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        urls: Sequence[str],
        signing_time: datetime | None,
    ) -> _Answer:
        for url in urls:
            try:
                bundle = self._crl_bundle(url, issuer)
                if bundle.delta is None and _has_freshest(cert):
                    raise _CheckError("certificate has Freshest-CRL but no delta CRL was found")
                status, detail = _crl_lookup(cert, bundle, signing_time)
            except (RevocationFetchError, _CheckError) as exc:
                return _Answer(RevocationStatus.UNKNOWN, f"{url}: {exc}", "CRL")
            except _FOREIGN_ERRORS as exc:
                return _Answer(RevocationStatus.UNKNOWN, f"{url}: invalid CRL: {exc}", "CRL")
            if status is RevocationStatus.REVOKED:
                return _Answer(status, detail, "CRL")
        return _Answer(RevocationStatus.GOOD, "CRL: not revoked", "CRL")

    def _crl_bundle(self, url: str, issuer: x509.Certificate) -> CrlBundle:
        _require_http(url)
        now = self._clock.now()
        if self._cache is not None:
            cached = self._cache.get(url, now)
            if cached is not None:
                try:
                    self._validate_bundle(cached, issuer, now)
                except (_CheckError, *_FOREIGN_ERRORS) as exc:
                    _log.warning("cached CRL for %s is unusable (%s); fetching again", url, exc)
                else:
                    return cached
        base_der = self._fetcher.get(url, timeout=self._crl_timeout, max_bytes=CRL_MAX_BYTES)
        base = x509.load_der_x509_crl(base_der)
        delta_der = self._fetch_delta(base)
        bundle = CrlBundle.parse(base_der, delta_der)
        self._validate_bundle(bundle, issuer, now)
        if self._cache is not None:
            self._cache.put(url, bundle)
        return bundle

    def _fetch_delta(self, base: x509.CertificateRevocationList) -> bytes | None:
        try:
            freshest = base.extensions.get_extension_for_class(x509.FreshestCRL).value
        except x509.ExtensionNotFound:
            return None
        urls = _dp_urls(freshest)
        if not urls:
            return None
        if len(urls) > 1:
            raise _CheckError("multiple Freshest-CRL URLs are not supported")
        _require_http(urls[0])
        return self._fetcher.get(urls[0], timeout=self._crl_timeout, max_bytes=CRL_MAX_BYTES)

    @staticmethod
    def _validate_bundle(bundle: CrlBundle, issuer: x509.Certificate, now: datetime) -> None:
        _validate_crl(bundle.base, issuer, now, delta=False)
        if bundle.delta is None:
            return
        _validate_crl(bundle.delta, issuer, now, delta=True)
        base_number = _crl_number(bundle.base)
        delta_number = _crl_number(bundle.delta)
        indicator = bundle.delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        if delta_number <= base_number:
            raise _CheckError("delta CRL number is not larger than the base CRL number")
        if indicator.value.crl_number > base_number:
            raise _CheckError("delta CRL indicator is larger than the base CRL number")


def _spki_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (what OCSP's issuerKeyHash covers)."""
    parsed = asn1_x509.Certificate.load(_der(cert))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:])


def _ocsp_invalidity_date(response: ocsp.OCSPResponse) -> datetime | None:
    try:
        ext = response.single_extensions.get_extension_for_class(x509.InvalidityDate)
    except x509.ExtensionNotFound:
        return None
    return ext.value.invalidity_date_utc


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound as exc:
        raise _CheckError("CRL lacks a CRL number") from exc


def _validate_crl(
    crl: x509.CertificateRevocationList, issuer: x509.Certificate, now: datetime, *, delta: bool
) -> None:
    kind = "delta CRL" if delta else "CRL"
    if crl.issuer.public_bytes() != issuer.subject.public_bytes():
        raise _CheckError(f"{kind} issuer does not match the certificate issuer")
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        raise _CheckError(f"{kind} signature does not verify with the issuer key")
    next_update = crl.next_update_utc
    if next_update is None or now > next_update:
        raise _CheckError(f"{kind} is expired (NextUpdate absent or past)")
    is_delta = False
    for ext in crl.extensions:
        if ext.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            is_delta = True
        if ext.critical and ext.oid not in _TOLERATED_CRL_CRITICAL:
            raise _CheckError(
                f"{kind} has an unsupported critical extension {ext.oid.dotted_string}"
            )
    if is_delta != delta:
        raise _CheckError(f"{kind} delta CRL indicator presence is wrong")


def _crl_lookup(
    cert: x509.Certificate, bundle: CrlBundle, signing_time: datetime | None
) -> tuple[RevocationStatus, str]:
    entries = [
        entry
        for crl in (bundle.base, bundle.delta)
        if crl is not None
        for entry in [crl.get_revoked_certificate_by_serial_number(cert.serial_number)]
        if entry is not None
    ]
    held = False
    for entry in entries:
        reason: x509.ReasonFlags | None = None
        invalidity: datetime | None = None
        for ext in entry.extensions:
            if isinstance(ext.value, x509.CRLReason):
                reason = ext.value.reason
            elif isinstance(ext.value, x509.InvalidityDate):
                invalidity = ext.value.invalidity_date_utc
            elif ext.critical:
                raise _CheckError(f"CRL entry has unsupported critical extension {ext.oid}")
        if signing_time is not None and invalidity is not None and signing_time < invalidity:
            break
        if reason is x509.ReasonFlags.certificate_hold:
            held = True
        elif reason is x509.ReasonFlags.remove_from_crl:
            held = False
        else:
            return RevocationStatus.REVOKED, "certificate is revoked via CRL"
    if held:
        return RevocationStatus.REVOKED, "certificate is on hold via CRL"
    return RevocationStatus.GOOD, "CRL: not revoked"
