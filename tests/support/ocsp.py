"""The real ``openssl ocsp`` responder, started and stopped by tests, on 127.0.0.1 only.

``OpenSslOcspResponder`` writes an OpenSSL CA database (``index.txt``) listing certificates as
valid or revoked — any serial not listed is answered ``unknown``. Every OCSP request is answered
by the real ``openssl ocsp -index … -rsigner … -rkey … -CA … -nmin 5`` in its file mode
(``-reqin``/``-respout``): OpenSSL 3.0's own listener (``-port``) binds every interface and cannot
be limited to loopback, so a small HTTP front bound to 127.0.0.1 carries the bytes to and from
OpenSSL. Use :func:`free_port` to pick the port first, so the certificates under test can carry
the responder URL.
"""

from __future__ import annotations

import base64
import http.client
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.pki import CertSpec, Issued, KeySpec, issue

_START_TIMEOUT = 10.0
_OCSP_REQUEST_HEADERS = {"Content-Type": "application/ocsp-request"}


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks; a tiny reuse race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ocsp_responder_cert(ca: Issued, name: str = "pullgate test OCSP responder") -> Issued:
    """A delegated responder certificate (EKU OCSPSigning) issued by ``ca``."""
    spec = CertSpec(
        common_name=name,
        key=KeySpec.rsa(2048, slot=7),
        eku=(ExtendedKeyUsageOID.OCSP_SIGNING,),
        key_usage=frozenset({"digital_signature"}),
    )
    return issue(spec, ca)


def _asn1_time(when: datetime) -> str:
    when = when.astimezone(UTC)
    if when.year < 2050:
        return when.strftime("%y%m%d%H%M%SZ")
    return when.strftime("%Y%m%d%H%M%SZ")


def _oneline(name: x509.Name) -> str:
    short = {
        NameOID.COUNTRY_NAME: "C",
        NameOID.STATE_OR_PROVINCE_NAME: "ST",
        NameOID.ORGANIZATION_NAME: "O",
        NameOID.COMMON_NAME: "CN",
    }
    return "".join(f"/{short.get(a.oid, a.oid.dotted_string)}={a.value!s}" for a in name)


def index_line(cert: x509.Certificate, *, revoked_at: datetime | None = None) -> str:
    """One ``index.txt`` line: ``V`` (valid) or ``R`` (revoked at ``revoked_at``)."""
    serial = format(cert.serial_number, "X")
    if len(serial) % 2:
        serial = "0" + serial
    status = "R" if revoked_at is not None else "V"
    revocation = _asn1_time(revoked_at) if revoked_at is not None else ""
    expiry = _asn1_time(cert.not_valid_after_utc)
    return "\t".join([status, expiry, revocation, serial, "unknown", _oneline(cert.subject)])


class OpenSslOcspResponder:
    """Answers OCSP requests for certificates issued by ``ca`` with the real ``openssl ocsp``."""

    def __init__(
        self,
        *,
        ca: Issued,
        responder: Issued,
        workdir: Path,
        port: int,
        good: Iterable[x509.Certificate] = (),
        revoked: Iterable[x509.Certificate] = (),
    ) -> None:
        self.port = port
        self._workdir = workdir
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.requests = 0
        workdir.mkdir(parents=True, exist_ok=True)
        lines = [index_line(c) for c in good]
        revoked_at = datetime.now(UTC) - timedelta(hours=1)
        lines += [index_line(c, revoked_at=revoked_at) for c in revoked]
        (workdir / "index.txt").write_text("".join(line + "\n" for line in lines))
        (workdir / "index.txt.attr").write_text("unique_subject = no\n")
        (workdir / "ca.pem").write_bytes(ca.pem)
        (workdir / "responder.pem").write_bytes(responder.pem)
        (workdir / "responder.key").write_bytes(responder.key_pem())
        self._probe_request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(responder.cert, ca.cert, hashes.SHA256())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )

    @property
    def url(self) -> str:
        """The responder URL the certificates should carry."""
        return f"http://127.0.0.1:{self.port}"

    def respond(self, request_der: bytes) -> bytes:
        """Run ``openssl ocsp`` in responder mode on one DER request; return the DER response."""
        w = self._workdir
        with self._lock, tempfile.TemporaryDirectory(dir=w) as tmp:
            req, resp = Path(tmp) / "req.der", Path(tmp) / "resp.der"
            req.write_bytes(request_der)
            proc = subprocess.run(
                [
                    "openssl",
                    "ocsp",
                    "-index",
                    str(w / "index.txt"),
                    "-CA",
                    str(w / "ca.pem"),
                    "-rsigner",
                    str(w / "responder.pem"),
                    "-rkey",
                    str(w / "responder.key"),
                    "-nmin",
                    "5",
                    "-reqin",
                    str(req),
                    "-respout",
                    str(resp),
                ],
                capture_output=True,
                timeout=20,
                check=False,
            )
            self.requests += 1
            if proc.returncode != 0 or not resp.exists():
                raise RuntimeError(f"openssl ocsp failed: {proc.stderr.decode(errors='replace')}")
            return resp.read_bytes()

    def start(self) -> OpenSslOcspResponder:
        """Start the loopback HTTP front and wait (bounded) until a real request succeeds."""
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bytes) -> None:
                try:
                    out = responder.respond(body)
                except (RuntimeError, OSError, subprocess.TimeoutExpired):
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(min(length, 65536)))

            def do_GET(self) -> None:
                encoded = urllib.parse.unquote(self.path.lstrip("/"))
                try:
                    body = base64.b64decode(encoded, validate=True)
                except ValueError:
                    self.send_error(400)
                    return
                self._answer(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._probe():
                self.requests = 0
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("OCSP responder did not answer in time")

    def _probe(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("POST", "/", body=self._probe_request, headers=_OCSP_REQUEST_HEADERS)
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the HTTP front (bounded)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenSslOcspResponder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
