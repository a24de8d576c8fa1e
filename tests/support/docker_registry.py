"""The real Debian ``docker-registry`` (distribution 2.8.2) behind mutual TLS, for tests.

:class:`DockerRegistry` writes a distribution configuration (filesystem storage in a private
directory, ``http.addr`` on ``127.0.0.1`` only, a server certificate for ``IP:127.0.0.1`` and
``DNS:localhost`` issued by a test CA, ``http.tls.clientcas`` so that a client certificate is
*required*, optional bcrypt ``htpasswd`` auth), starts ``docker-registry serve CONFIG``, waits a
bounded time until a TLS connection with a valid client certificate gets an answer to
``GET /v2/``, and stops the process on exit (terminate, bounded wait, kill).

distribution 2.8 has no OCI Referrers API, so signatures live behind the referrers *tag schema*
(see ``tests/support/push.py`` and docs/notation.md §1.2).

The registry's own access log (Apache combined format on its stdout, written by distribution's
``CombinedLoggingHandler``) is captured to a file; :meth:`DockerRegistry.access_log` parses it so
that tests can count the requests a verification really made.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.pki import Chain
from tests.support.registry_tls import RegistryPki as RegistryPki  # re-exported

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
HTPASSWD_BINARY = Path("/usr/bin/htpasswd")

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3
_SYNC_PREFIX = "/v2/_pullgate_sync/"

# 127.0.0.1 - user [23/Nov/2026:15:42:39 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "ua"
_ACCESS_RE = re.compile(
    r"^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) (?P<proto>[^"]+)" (?P<status>\d{3}) (?P<size>\d+|-)'
)


class RegistryStartError(RuntimeError):
    """The registry process could not be started or never became ready."""


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks; a tiny reuse race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_available() -> bool:
    """True when the real distribution binary is installed."""
    return REGISTRY_BINARY.is_file()


# --------------------------------------------------------------------------------------------
# Access log


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLogEntry:
    """One request as distribution's access log recorded it."""

    method: str
    uri: str  # path plus query, as sent
    status: int
    user: str  # "-" when unauthenticated

    @property
    def path(self) -> str:
        """The URI without its query string."""
        return self.uri.split("?", 1)[0]


def parse_access_log(text: str) -> list[AccessLogEntry]:
    """Parse Apache combined-format lines; anything else in the stream is ignored."""
    out: list[AccessLogEntry] = []
    for line in text.splitlines():
        match = _ACCESS_RE.match(line)
        if match is None:
            continue
        out.append(
            AccessLogEntry(
                method=match["method"],
                uri=match["uri"],
                status=int(match["status"]),
                user=match["user"],
            )
        )
    return out


def listening_hosts(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a TCP socket LISTENing on ``port`` (from ``/proc/net``)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port or len(addr_hex) != width:
                continue
            raw = bytes.fromhex(addr_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(words)))
    return found


# --------------------------------------------------------------------------------------------
# The registry process


def _htpasswd_file(path: Path, users: Mapping[str, str]) -> None:
    lines = []
    for user, password in users.items():
        result = subprocess.run(
            [str(HTPASSWD_BINARY), "-Bbn", user, password],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        lines.append(result.stdout.strip())
    path.write_text("\n".join(lines) + "\n")


def _yaml_str(value: str) -> str:
    # JSON string syntax is valid YAML and escapes anything awkward in paths.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class DockerRegistry:
    """A real ``docker-registry serve`` process on 127.0.0.1 with mTLS. Use as a context manager.

    Args:
        workdir: private directory for the configuration, storage and logs (created).
        pki: TLS material; several registries may share one (default: a fresh one in workdir).
        users: ``{user: password}`` for bcrypt htpasswd auth; None disables auth.
        log_level: distribution's application log level.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        pki: RegistryPki | None = None,
        users: Mapping[str, str] | None = None,
        log_level: str = "info",
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki or RegistryPki.create(workdir / "tls")
        self.users = dict(users) if users else None
        self.log_level = log_level
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._sync_count = 0

    # -- public attributes ------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (the registry host as it appears in image references)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{self.host}"

    @property
    def ca_pem(self) -> Path:
        """CA file that validates the server certificate."""
        return self.pki.ca_pem

    @property
    def client_pem(self) -> Path:
        """Client certificate accepted by this registry."""
        return self.pki.client_pem

    @property
    def client_key(self) -> Path:
        """Key of :attr:`client_pem`."""
        return self.pki.client_key

    @property
    def client_chain(self) -> Chain:
        """Client leaf -> client CA."""
        return self.pki.client_chain

    @property
    def config_path(self) -> Path:
        """The generated distribution configuration."""
        return self.workdir / "config.yml"

    @property
    def access_log_path(self) -> Path:
        """The registry's stdout (its access log)."""
        return self.workdir / "access.log"

    @property
    def app_log_path(self) -> Path:
        """The registry's stderr (its application log)."""
        return self.workdir / "registry.log"

    @property
    def pid(self) -> int | None:
        """The registry process id while running."""
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> DockerRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self) -> None:
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            f"  level: {self.log_level}",
            "  formatter: text",
            "  accesslog:",
            "    disabled: false",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {_yaml_str(str(storage))}",
            "  delete:",
            "    enabled: true",
            "  redirect:",
            "    disable: true",
            "  cache:",
            "    blobdescriptor: inmemory",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {_yaml_str(uuid.uuid4().hex)}",
            "  tls:",
            f"    certificate: {_yaml_str(str(self.pki.server_pem))}",
            f"    key: {_yaml_str(str(self.pki.server_key))}",
            "    clientcas:",
            f"      - {_yaml_str(str(self.pki.client_ca_pem))}",
            "    minimumtls: tls1.2",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
            "health:",
            "  storagedriver:",
            "    enabled: false",
        ]
        if self.users is not None:
            htpasswd = self.workdir / "htpasswd"
            _htpasswd_file(htpasswd, self.users)
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: pullgate-test",
                f"    path: {_yaml_str(str(htpasswd))}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the registry and wait until it answers over mTLS (bounded)."""
        if not registry_available():
            raise RegistryStartError(f"{REGISTRY_BINARY} is not installed")
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            self.port = free_port()
            self._write_config()
            with (
                self.access_log_path.open("ab") as out,
                self.app_log_path.open("ab") as err,
            ):
                # A clean environment: distribution reads REGISTRY_* variables as overrides.
                self._proc = subprocess.Popen(
                    [str(REGISTRY_BINARY), "serve", str(self.config_path)],
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env={"PATH": "/usr/bin:/bin", "HOME": str(self.workdir)},
                    cwd=self.workdir,
                )
            ready, last_error = self._wait_ready()
            if ready:
                return
            self.stop()
        raise RegistryStartError(
            f"docker-registry did not become ready: {last_error}\n"
            + self.app_log_path.read_text(errors="replace")[-4000:]
        )

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + _START_TIMEOUT
        error = "not started"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False, f"exited with status {self._proc.returncode}"
            try:
                status = self._get("/v2/")
            except OSError as exc:
                error = repr(exc)
                time.sleep(0.05)
                continue
            if status in (200, 401):
                return True, ""
            error = f"GET /v2/ answered {status}"
            time.sleep(0.05)
        return False, error

    def stop(self) -> None:
        """Terminate the registry (bounded wait, then kill). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT)

    # -- helpers ----------------------------------------------------------------------------

    def _get(self, path: str, *, client_cert: bool = True) -> int:
        """``GET path`` over a fresh mTLS connection; returns the status code."""
        ctx = self.pki.ssl_context(client_cert=client_cert)
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n"
            if self.users:
                user, password = next(iter(self.users.items()))
                token = base64.b64encode(f"{user}:{password}".encode()).decode()
                request += f"Authorization: Basic {token}\r\n"
            tls.sendall((request + "\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                head += chunk
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError(f"malformed HTTP status line {head[:80]!r}")
        return int(parts[1])

    def probe(self, *, client_cert: bool) -> int:
        """``GET /v2/`` on a fresh connection, with or without the client certificate.

        Raises:
            ssl.SSLError / OSError: the TLS handshake (or the connection) failed.
        """
        return self._get("/v2/", client_cert=client_cert)

    def access_log(self, *, sync: bool = True) -> list[AccessLogEntry]:
        """Every request the registry logged, oldest first.

        distribution writes a request's log line right after the handler returns, which can be
        a moment after the client saw the response. With ``sync`` a marker request is sent and
        the log is read (bounded) until the marker shows up. Marker requests are left out;
        readiness probes (``GET /v2/``) are not, so count with :meth:`log_mark` /
        :meth:`requests_since` to see only what happened after a point.
        """
        marker = ""
        if sync and self._proc is not None:
            self._sync_count += 1
            marker = f"{_SYNC_PREFIX}{self._sync_count}"
            self._get(marker)
        deadline = time.monotonic() + 5.0
        while True:
            entries = parse_access_log(self.access_log_path.read_text(errors="replace"))
            if not marker or any(e.path == marker for e in entries):
                break
            if time.monotonic() > deadline:
                raise RegistryStartError("registry access log did not record the sync request")
            time.sleep(0.02)
        return [e for e in entries if not e.path.startswith(_SYNC_PREFIX)]

    def log_mark(self) -> int:
        """The number of logged requests so far; pass to :meth:`requests_since`."""
        return len(self.access_log())

    def requests_since(self, mark: int) -> list[AccessLogEntry]:
        """Requests logged after :meth:`log_mark` returned ``mark``."""
        return self.access_log()[mark:]

    def request_counts(self, mark: int = 0) -> Counter[tuple[str, str]]:
        """``{(method, path): count}`` of requests logged after ``mark``."""
        return Counter((e.method, e.path) for e in self.requests_since(mark))


class RegistryFactory:
    """Starts registries for one test and stops them all on :meth:`close` (pytest fixture use).

    Example::

        @pytest.fixture
        def registries(tmp_path):
            with RegistryFactory(tmp_path) as factory:
                yield factory
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pki: RegistryPki | None = None
        self._running: list[DockerRegistry] = []

    @property
    def pki(self) -> RegistryPki:
        """TLS material shared by every registry of this factory (created on first use)."""
        if self._pki is None:
            self._pki = RegistryPki.create(self.root / "tls")
        return self._pki

    def start(
        self, *, users: Mapping[str, str] | None = None, log_level: str = "info"
    ) -> DockerRegistry:
        """Start one more registry sharing :attr:`pki`."""
        registry = DockerRegistry(
            self.root / f"registry{len(self._running)}",
            pki=self.pki,
            users=users,
            log_level=log_level,
        )
        registry.start()
        self._running.append(registry)
        return registry

    def __iter__(self) -> Iterator[DockerRegistry]:
        return iter(list(self._running))

    def close(self) -> None:
        """Stop every registry started here."""
        while self._running:
            self._running.pop().stop()

    def __enter__(self) -> RegistryFactory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
