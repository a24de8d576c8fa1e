"""CRL revocation checks and the on-disk CRL cache (docs/notation.md §12, limits §1.3).

As notation-core-go does it: every ``http://`` distribution point must yield a CRL (at most
32 MiB) signed by the issuer, whose NextUpdate is not past and which has no unknown critical
extension; entries are matched by serial number, with invalidityDate compared to the authentic
signing time and certificateHold/removeFromCRL tracked. Delta CRLs are fetched from the base
CRL's Freshest-CRL extension; a certificate that advertises Freshest-CRL without an obtainable
delta is *unknown*.

:class:`CrlCache` keeps fetched CRLs on disk while they are fresh; it never makes a check fail.
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from pullgate.common.clock import Clock
from pullgate.verification.revocation.fetch import HttpFetcher, RevocationFetchError, require_http
from pullgate.verification.revocation.status import (
    Answer,
    CheckError,
    RevocationStatus,
)
from pullgate.verification.x509.certs import X509_DECODE_ERRORS

__all__ = ["CRL_MAX_BYTES", "CrlBundle", "CrlCache", "CrlChecker", "distribution_point_urls"]

_log = logging.getLogger(__name__)

CRL_MAX_BYTES = 32 * 1024 * 1024
_TOLERATED_CRL_CRITICAL = frozenset(
    {ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.DELTA_CRL_INDICATOR}
)


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
        except (OSError, KeyError, binascii.Error, *X509_DECODE_ERRORS) as exc:
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


class CrlChecker:
    """CRL status of one certificate, over an injected :class:`HttpFetcher` and optional cache."""

    def __init__(
        self, fetcher: HttpFetcher, clock: Clock, cache: CrlCache | None, timeout: float
    ) -> None:
        """Create the checker.

        Args:
            fetcher: HTTP transport.
            clock: Source of "now" for NextUpdate checks and cache freshness.
            cache: Optional on-disk CRL cache.
            timeout: Per-request timeout, seconds.
        """
        self._fetcher = fetcher
        self._clock = clock
        self._cache = cache
        self._timeout = timeout

    def check(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        urls: Sequence[str],
        signing_time: datetime | None,
    ) -> Answer:
        """Look ``cert`` up in the CRL of every URL in ``urls``; all must be obtainable.

        *revoked* as soon as one CRL lists the certificate; *unknown* when any URL fails;
        otherwise *good*.
        """
        bounds: list[datetime] = []
        for url in urls:
            try:
                bundle = self._bundle(url, issuer)
                if bundle.delta is None and _has_freshest(cert):
                    raise CheckError("certificate has Freshest-CRL but no delta CRL was found")
                status, detail = _crl_lookup(cert, bundle, signing_time)
            except (RevocationFetchError, CheckError) as exc:
                return Answer(RevocationStatus.UNKNOWN, f"{url}: {exc}", "CRL")
            except X509_DECODE_ERRORS as exc:
                return Answer(RevocationStatus.UNKNOWN, f"{url}: invalid CRL: {exc}", "CRL")
            if status is RevocationStatus.REVOKED:
                return Answer(status, detail, "CRL")
            bounds.extend(
                crl.next_update_utc
                for crl in (bundle.base, bundle.delta)
                if crl is not None and crl.next_update_utc is not None
            )
        return Answer(RevocationStatus.GOOD, "CRL: not revoked", "CRL", min(bounds, default=None))

    def _bundle(self, url: str, issuer: x509.Certificate) -> CrlBundle:
        require_http(url)
        now = self._clock.now()
        if self._cache is not None:
            cached = self._cache.get(url, now)
            if cached is not None:
                try:
                    self._validate_bundle(cached, issuer, now)
                except (CheckError, *X509_DECODE_ERRORS) as exc:
                    _log.warning("cached CRL for %s is unusable (%s); fetching again", url, exc)
                else:
                    return cached
        base_der = self._fetcher.get(url, timeout=self._timeout, max_bytes=CRL_MAX_BYTES)
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
        urls = distribution_point_urls(freshest)
        if not urls:
            return None
        if len(urls) > 1:
            raise CheckError("multiple Freshest-CRL URLs are not supported")
        require_http(urls[0])
        return self._fetcher.get(urls[0], timeout=self._timeout, max_bytes=CRL_MAX_BYTES)

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
            raise CheckError("delta CRL number is not larger than the base CRL number")
        if indicator.value.crl_number > base_number:
            raise CheckError("delta CRL indicator is larger than the base CRL number")


def distribution_point_urls(points: x509.CRLDistributionPoints | x509.FreshestCRL) -> list[str]:
    """The URI full names of CRL distribution points (or Freshest-CRL points), in order."""
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


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound as exc:
        raise CheckError("CRL lacks a CRL number") from exc


def _validate_crl(
    crl: x509.CertificateRevocationList, issuer: x509.Certificate, now: datetime, *, delta: bool
) -> None:
    kind = "delta CRL" if delta else "CRL"
    if crl.issuer.public_bytes() != issuer.subject.public_bytes():
        raise CheckError(f"{kind} issuer does not match the certificate issuer")
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        raise CheckError(f"{kind} signature does not verify with the issuer key")
    next_update = crl.next_update_utc
    if next_update is None or now > next_update:
        raise CheckError(f"{kind} is expired (NextUpdate absent or past)")
    is_delta = False
    for ext in crl.extensions:
        if ext.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            is_delta = True
        if ext.critical and ext.oid not in _TOLERATED_CRL_CRITICAL:
            raise CheckError(
                f"{kind} has an unsupported critical extension {ext.oid.dotted_string}"
            )
    if is_delta != delta:
        raise CheckError(f"{kind} delta CRL indicator presence is wrong")


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
                raise CheckError(f"CRL entry has unsupported critical extension {ext.oid}")
        if signing_time is not None and invalidity is not None and signing_time < invalidity:
            # Not in force when signed: ignore this entry only; later ones (delta) still count.
            continue
        if reason is x509.ReasonFlags.certificate_hold:
            held = True
        elif reason is x509.ReasonFlags.remove_from_crl:
            held = False
        else:
            return RevocationStatus.REVOKED, "certificate is revoked via CRL"
    if held:
        return RevocationStatus.REVOKED, "certificate is on hold via CRL"
    return RevocationStatus.GOOD, "CRL: not revoked"
