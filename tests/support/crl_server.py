"""A threaded HTTP server on 127.0.0.1 that serves CRLs by path, plus a CRL builder.

``CrlServer`` is a context manager; ``server.routes["/leaf.crl"] = crl_bytes`` publishes a CRL
(replace it to simulate a CA issuing a new one) and ``server.hits("/leaf.crl")`` counts requests.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.support.pki import NOW, Issued


class CrlServer:
    """Serves ``routes`` (path → bytes) over plain HTTP on 127.0.0.1 and an ephemeral port."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server._counts[self.path] += 1
                    body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        """How many GET requests ``path`` received."""
        with self._lock:
            return self._counts[path]

    def start(self) -> CrlServer:
        """Start serving (idempotent use via the context manager is preferred)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the socket (bounded wait)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CrlServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokedEntry:
    """One CRL entry."""

    serial: int
    revoked_at: datetime = NOW - timedelta(days=1)
    reason: x509.ReasonFlags | None = None
    invalidity_date: datetime | None = None
    critical_unknown_extension: bool = False


def build_crl(
    issuer: Issued,
    revoked: Iterable[int | RevokedEntry] = (),
    *,
    next_update: datetime = NOW + timedelta(days=7),
    last_update: datetime = NOW - timedelta(hours=1),
    crl_number: int | None = 1,
    delta_of: int | None = None,
    freshest_urls: tuple[str, ...] = (),
    critical_unknown_extension: bool = False,
    signer: Issued | None = None,
) -> bytes:
    """A DER CRL issued by ``issuer`` (signed by ``signer`` if given, to forge a bad one).

    ``delta_of`` makes it a delta CRL against that base CRL number.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update)
        .next_update(next_update)
    )
    if crl_number is not None:
        builder = builder.add_extension(x509.CRLNumber(crl_number), critical=False)
    if delta_of is not None:
        builder = builder.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
    if freshest_urls:
        builder = builder.add_extension(
            x509.FreshestCRL(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(u) for u in freshest_urls],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    if critical_unknown_extension:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.7"), b"\x05\x00"),
            critical=True,
        )
    for item in revoked:
        entry = item if isinstance(item, RevokedEntry) else RevokedEntry(serial=item)
        revoked_builder = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason is not None:
            revoked_builder = revoked_builder.add_extension(
                x509.CRLReason(entry.reason), critical=False
            )
        if entry.invalidity_date is not None:
            revoked_builder = revoked_builder.add_extension(
                x509.InvalidityDate(entry.invalidity_date.replace(tzinfo=None)), critical=False
            )
        if entry.critical_unknown_extension:
            revoked_builder = revoked_builder.add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.4.1.99999.8"), b"\x05\x00"
                ),
                critical=True,
            )
        builder = builder.add_revoked_certificate(revoked_builder.build())
    signing = signer or issuer
    crl = builder.sign(signing.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


def reissue_crl_edited(crl_der: bytes, signer: Issued, edit: Callable[[bytes], bytes]) -> bytes:
    """``crl_der`` (from :func:`build_crl`) with its TBSCertList DER rewritten by ``edit`` and
    signed again by ``signer`` (SHA-256, as :func:`build_crl` signs): CRLs ``cryptography``'s
    builder refuses to make.

    The signature is valid, so only the edited content can make a check fail.
    """
    original = asn1_crl.CertificateList.load(crl_der)
    tbs_der = edit(original["tbs_cert_list"].dump())
    key = signer.key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(tbs_der, ec.ECDSA(hashes.SHA256()))
    rebuilt = asn1_crl.CertificateList(
        {
            "tbs_cert_list": asn1_crl.TbsCertList.load(tbs_der),
            "signature_algorithm": original["signature_algorithm"],
            "signature": signature,
        }
    )
    return bytes(rebuilt.dump())
