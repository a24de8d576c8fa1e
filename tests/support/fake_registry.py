"""An in-process, threaded OCI registry on 127.0.0.1 with switchable misbehaviours.

Serves manifests and blobs from memory, the referrers API (OCI distribution spec 1.1) and the
referrers tag schema, over HTTP or HTTPS (optionally requiring a client certificate). The
:class:`Behaviour` object switches misbehaviours on and off while the server runs::

    with FakeRegistry() as reg:
        target = reg.put_image("app", tag="v1")
        reg.add_signature("app", target, b"envelope")
        reg.behaviour.referrers_html = True
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.common.descriptor import Descriptor
from pullgate.registry.model import ClientCertificate, Endpoint, HostsConfig
from tests.support.pki import NOW, CertSpec, Issued, KeySpec, ca_spec, issue

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
NOTARY = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
TOKEN = "s3cr3t-registry-token-value"


def image_manifest(config: Descriptor, layer: Descriptor) -> dict[str, Any]:
    """A minimal OCI image manifest document: ``config`` and one ``layer``."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json()],
    }


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    """A localhost port with (at this instant) nothing listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Behaviour:
    """Misbehaviours, switchable at any time (tests mutate this object)."""

    referrers_page_size: int | None = None
    ignore_artifact_filter: bool = False
    referrers_html: bool = False
    referrers_404: bool = False
    tag_schema: bool = True  # publish the sha256-<hex> referrers tag index
    wrong_digest: set[str] = field(default_factory=set)  # serve tampered bytes for these
    oversize: set[str] = field(default_factory=set)  # serve this many extra bytes for these
    oversize_bytes: int = 5 * 1024 * 1024
    oversize_content_length: bool = True
    head_without_digest: bool = False
    throttle: list[int] = field(default_factory=list)  # statuses to answer first (429/503)
    retry_after: str | None = None
    auth: str = "none"  # "none" | "bearer" | "basic"
    username: str = ""
    password: str = ""
    identity_token: str = ""
    drip: set[str] = field(default_factory=set)  # paths containing one: 200, then 1 byte/0.05 s


@dataclass(frozen=True)
class LoggedRequest:
    """One request as seen by the fake registry (secret headers removed)."""

    method: str
    path: str
    headers: dict[str, str]
    authorized: bool


@dataclass
class _Repo:
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerTls:
    """TLS material for the fake registry and its clients (PEM files on disk)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_combined: Path
    require_client_cert: bool = False

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if self.require_client_cert:
            ctx.load_verify_locations(self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def make_tls(
    directory: Path, *, name: str = "fake registry", require_client_cert: bool = False
) -> ServerTls:
    """A CA, a server certificate for IP 127.0.0.1 and a client certificate, written as PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = issue(ca_spec(f"{name} CA", KeySpec.ec(256, slot=40)))
    server = _server_cert(ca, KeySpec.ec(256, slot=41))
    client = issue(
        CertSpec(
            common_name=f"{name} client",
            key=KeySpec.ec(256, slot=42),
            eku=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        ),
        ca,
    )
    files = {
        "ca.pem": ca.pem,
        "server.pem": server.pem,
        "server.key": server.key_pem(),
        "client.pem": client.pem,
        "client.key": client.key_pem(),
        "client-combined.pem": client.pem + client.key_pem(),
    }
    for file_name, data in files.items():
        (directory / file_name).write_bytes(data)
    return ServerTls(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        client_combined=directory / "client-combined.pem",
        require_client_cert=require_client_cert,
    )


def _server_cert(ca: Issued, key_spec: KeySpec) -> Issued:
    key = key_spec.generate()
    spec = CertSpec(common_name="127.0.0.1", key=key_spec, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    cert = (
        x509.CertificateBuilder()
        .subject_name(spec.subject())
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=400))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key, spec)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Failed handshakes and dropped connections are expected in these tests."""


class FakeRegistry:
    """The registry; use as a context manager (binds an ephemeral port on 127.0.0.1)."""

    def __init__(self, *, tls: ServerTls | None = None) -> None:
        self.tls = tls
        self.behaviour = Behaviour()
        self.repos: dict[str, _Repo] = {}
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._drips = threading.Condition(self._lock)
        self.dripping = 0  # responses being dripped right now
        self.drips_stopped = threading.Event()
        handler = type("Handler", (_Handler,), {"registry": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.server_context().wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.drips_stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # ------------------------------------------------------------------ addressing

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def endpoint(self, **changes: Any) -> Endpoint:
        """An :class:`Endpoint` for this registry (``/v2`` root); ``changes`` override fields."""
        fields: dict[str, Any] = {
            "url": f"{self.url}/v2",
            "scheme": self.scheme,
            "host": self.host,
            "path": "/v2",
        }
        if self.tls is not None:
            fields["ca_files"] = (self.tls.ca,)
            if self.tls.require_client_cert:
                fields["client_certificates"] = (
                    ClientCertificate(cert=self.tls.client_cert, key=self.tls.client_key),
                )
        fields.update(changes)
        return Endpoint(**fields)

    # ------------------------------------------------------------------ content

    def _repo(self, name: str) -> _Repo:
        return self.repos.setdefault(name, _Repo())

    def put_blob(
        self, repo: str, data: bytes, media_type: str = "application/octet-stream"
    ) -> Descriptor:
        digest = sha256(data)
        self._repo(repo).blobs[digest] = data
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def put_manifest(
        self, repo: str, doc: dict[str, Any] | bytes, media_type: str, tag: str | None = None
    ) -> Descriptor:
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        digest = sha256(data)
        r = self._repo(repo)
        r.manifests[digest] = (media_type, data)
        if tag:
            r.tags[tag] = digest
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def put_image(self, repo: str, tag: str | None = "v1", payload: bytes = b"layer") -> Descriptor:
        """A minimal image manifest (one layer), optionally tagged."""
        config = self.put_blob(repo, b"{}", EMPTY_CONFIG)
        layer = self.put_blob(repo, payload, "application/vnd.oci.image.layer.v1.tar")
        return self.put_manifest(repo, image_manifest(config, layer), OCI_MANIFEST, tag)

    def add_referrer(
        self,
        repo: str,
        target: Descriptor,
        layers: list[tuple[bytes, str]],
        artifact_type: str = NOTARY,
    ) -> Descriptor:
        """A manifest whose subject is ``target``; updates the referrers tag index."""
        config = self.put_blob(repo, b"{}", EMPTY_CONFIG)
        layer_descs = [self.put_blob(repo, data, mt).to_json() for data, mt in layers]
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config.to_json(),
            "layers": layer_descs,
            "subject": Descriptor(
                media_type=target.media_type, digest=target.digest, size=target.size
            ).to_json(),
        }
        desc = self.put_manifest(repo, doc, OCI_MANIFEST)
        self._update_tag_index(repo, target)
        return desc

    def add_signature(
        self, repo: str, target: Descriptor, envelope: bytes, media_type: str = JWS
    ) -> Descriptor:
        return self.add_referrer(repo, target, [(envelope, media_type)])

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]:
        out = []
        for mdigest, (media_type, data) in self._repo(repo).manifests.items():
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if not isinstance(subject, dict) or subject.get("digest") != digest:
                continue
            entry = {"mediaType": media_type, "digest": mdigest, "size": len(data)}
            artifact = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
            if artifact:
                entry["artifactType"] = artifact
            out.append(entry)
        return out

    def _update_tag_index(self, repo: str, target: Descriptor) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": self.referrers(repo, target.digest),
        }
        tag = target.digest.replace(":", "-")
        data = json.dumps(index).encode()
        digest = sha256(data)
        r = self._repo(repo)
        r.manifests[digest] = (OCI_INDEX, data)
        r.tags[tag] = digest

    def wait_drips(self, done: Callable[[int], bool], timeout: float) -> bool:
        """True once ``done(responses being dripped)`` holds (False after ``timeout``)."""
        with self._drips:
            return self._drips.wait_for(lambda: done(self.dripping), timeout)

    def requests(self, kind: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            entries = list(self.log)
        return [e for e in entries if kind is None or f"/{kind}/" in e.path]


class _Handler(BaseHTTPRequestHandler):
    registry: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(5)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.request.close()
                raise
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ------------------------------------------------------------------ helpers

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        *,
        content_length: bool = True,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (ConnectionError, ssl.SSLError):
                self.close_connection = True

    def _error(self, status: int, code: str) -> None:
        self._send(status, json.dumps({"errors": [{"code": code, "message": code}]}).encode())

    def _authorized(self) -> bool:
        b = self.registry.behaviour
        header = self.headers.get("Authorization", "")
        if b.auth == "bearer":
            return header == f"Bearer {TOKEN}"
        if b.auth == "basic":
            raw = base64.b64encode(f"{b.username}:{b.password}".encode()).decode()
            return header == f"Basic {raw}"
        return True

    def _dispatch(self, method: str) -> None:
        reg = self.registry
        b = reg.behaviour
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        authorized = self._authorized()
        with reg._lock:
            reg.log.append(
                LoggedRequest(
                    method=method,
                    path=self.path,
                    headers={
                        k: ", ".join(self.headers.get_all(k, []))
                        for k in self.headers
                        if k.lower() not in SECRET_HEADERS
                    },
                    authorized=authorized,
                )
            )
            throttled = b.throttle.pop(0) if b.throttle else None
        if parts.path == "/token":
            self._token(method, parts.query, body)
            return
        if throttled is not None:
            headers = {"Retry-After": b.retry_after} if b.retry_after else {}
            self._send(throttled, b"{}", headers=headers)
            return
        if not authorized:
            self._challenge()
            return
        if any(marker in self.path for marker in b.drip):
            self._drip()
            return
        segments = parts.path.split("/")
        if len(segments) < 5 or segments[1] != "v2":
            self._error(404, "NOT_FOUND")
            return
        kind, ref = segments[-2], segments[-1]
        repo = "/".join(segments[2:-2])
        query = parse_qs(parts.query)
        if kind == "referrers":
            self._referrers(repo, ref, query)
        elif kind == "manifests":
            self._manifest(repo, ref)
        elif kind == "blobs":
            self._blob(repo, ref)
        else:
            self._error(404, "NOT_FOUND")

    def _drip(self) -> None:
        """Headers, then one byte every 0.05 s until the client is gone (or drips stop)."""
        reg = self.registry
        with reg._drips:
            reg.dripping += 1
            reg._drips.notify_all()
        try:
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            while not reg.drips_stopped.wait(0.05):
                self.wfile.write(b" ")
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            self.close_connection = True
            with reg._drips:
                reg.dripping -= 1
                reg._drips.notify_all()

    def _challenge(self) -> None:
        b = self.registry.behaviour
        if b.auth == "bearer":
            value = (
                f'Bearer realm="{self.registry.url}/token",service="fake-registry",'
                f'scope="repository:app:pull"'
            )
        else:
            value = 'Basic realm="fake-registry"'
        self._send(401, b"{}", headers={"WWW-Authenticate": value})

    def _token(self, method: str, query: str, body: bytes) -> None:
        b = self.registry.behaviour
        ok = not (b.username or b.identity_token)
        if method == "POST":
            form = parse_qs(body.decode())
            ok = bool(b.identity_token) and form.get("refresh_token") == [b.identity_token]
        elif b.username:
            raw = base64.b64encode(f"{b.username}:{b.password}".encode()).decode()
            ok = self.headers.get("Authorization", "") == f"Basic {raw}"
        if not ok:
            self._error(401, "UNAUTHORIZED")
            return
        key = "access_token" if method == "POST" else "token"
        self._send(200, json.dumps({key: TOKEN, "expires_in": 300}).encode())

    def _content(self, digest: str, data: bytes) -> tuple[bytes, bool]:
        b = self.registry.behaviour
        if digest in b.wrong_digest:
            data = data[:-1] + bytes([data[-1] ^ 1]) if data else b"x"
        if digest in b.oversize:
            return data + b" " * b.oversize_bytes, b.oversize_content_length
        return data, True

    def _manifest(self, repo: str, ref: str) -> None:
        b = self.registry.behaviour
        r = self.registry.repos.get(repo)
        if r is None:
            self._error(404, "NAME_UNKNOWN")
            return
        if not b.tag_schema and ref.startswith("sha256-"):
            self._error(404, "MANIFEST_UNKNOWN")
            return
        digest = r.tags.get(ref, ref)
        if digest not in r.manifests:
            self._error(404, "MANIFEST_UNKNOWN")
            return
        media_type, data = r.manifests[digest]
        data, with_length = self._content(digest, data)
        headers = {} if b.head_without_digest else {"Docker-Content-Digest": digest}
        self._send(200, data, media_type, headers, content_length=with_length)

    def _blob(self, repo: str, digest: str) -> None:
        r = self.registry.repos.get(repo)
        if r is None or digest not in r.blobs:
            self._error(404, "BLOB_UNKNOWN")
            return
        data, with_length = self._content(digest, r.blobs[digest])
        self._send(
            200,
            data,
            "application/octet-stream",
            {"Docker-Content-Digest": digest},
            content_length=with_length,
        )

    def _referrers(self, repo: str, digest: str, query: dict[str, list[str]]) -> None:
        b = self.registry.behaviour
        if b.referrers_404:
            self._error(404, "NOT_FOUND")
            return
        if b.referrers_html:
            self._send(200, b"<html><body>Welcome</body></html>", "text/html")
            return
        if repo not in self.registry.repos:
            self._error(404, "NAME_UNKNOWN")
            return
        entries = self.registry.referrers(repo, digest)
        headers: dict[str, str] = {}
        wanted = query.get("artifactType", [None])[0]
        if wanted and not b.ignore_artifact_filter:
            entries = [e for e in entries if e.get("artifactType") == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        if b.referrers_page_size:
            page = int(query.get("page", ["0"])[0])
            size = b.referrers_page_size
            chunk = entries[page * size : (page + 1) * size]
            if (page + 1) * size < len(entries):
                params = {k: v[0] for k, v in query.items()}
                params["page"] = str(page + 1)
                link = f"/v2/{repo}/referrers/{digest}?{urlencode(params)}"
                headers["Link"] = f'<{link}>; rel="next"'
            entries = chunk
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        self._send(200, json.dumps(index).encode(), OCI_INDEX, headers)


def write_docker_config(path: Path, auths: dict[str, dict[str, str]]) -> Path:
    """Write a docker ``config.json`` with ``auths`` entries."""
    path.write_text(json.dumps({"auths": auths}))
    return path


def hosts_for(
    *endpoints: Endpoint, registry: str = "registry.test"
) -> Callable[[str], HostsConfig]:
    """A ``hosts`` callable for :class:`RegistryClient` returning ``endpoints`` in order."""
    config = HostsConfig(
        registry=registry, directory=None, source="none", endpoints=tuple(endpoints)
    )

    def hosts(name: str) -> HostsConfig:
        assert name == registry, name
        return config

    return hosts


def refused_endpoint() -> Endpoint:
    """An HTTP endpoint on a localhost port where nothing listens."""
    host = f"127.0.0.1:{free_port()}"
    return Endpoint(url=f"http://{host}/v2", scheme="http", host=host, path="/v2")
