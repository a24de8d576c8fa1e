"""TLS client contexts for registry endpoints, as containerd builds them from ``hosts.toml``.

Implements docs/containerd.md §1.4 (``ca``, ``client``,
``skip_verify``) and §1.8 (TLS actually built):

* ``ca`` files are *added* to the system roots (which honour ``SSL_CERT_FILE``/``SSL_CERT_DIR``);
  they never replace them.
* each client certificate is a ``(cert, key)`` pair; ``key`` None means the private key is in the
  certificate's PEM file.
* ``skip_verify`` disables both chain and hostname verification.
* minimum protocol version TLS 1.2 (Go's client default).

A missing, unreadable or garbage file fails the request (not the configuration load), like
containerd, with :attr:`Reason.REGISTRY_TLS` naming the endpoint and the file.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from pullgate.common.lru import Lru, LruStats
from pullgate.errors import Reason
from pullgate.registry.model import ClientCertificate, Endpoint, RegistryError

TlsKey = tuple[tuple[Path, ...], tuple[ClientCertificate, ...], bool]
"""The endpoint fields that determine its TLS context."""

_FileStamp = tuple[int, int] | None


def tls_key(endpoint: Endpoint) -> TlsKey:
    """The part of ``endpoint`` that determines its TLS setup (hashable)."""
    return (endpoint.ca_files, endpoint.client_certificates, endpoint.skip_verify)


def _fail(endpoint: Endpoint, what: str, path: Path, exc: BaseException) -> RegistryError:
    detail = f"endpoint {endpoint.url}: unable to load {what} {str(path)!r}: {exc}"
    return RegistryError(Reason.REGISTRY_TLS, detail, endpoint=endpoint.url)


def _check_readable(endpoint: Endpoint, what: str, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise _fail(endpoint, what, path, exc) from exc


def ssl_context_for(endpoint: Endpoint, client: int = 0) -> ssl.SSLContext:
    """Build a client :class:`ssl.SSLContext` for ``endpoint`` (no caching).

    Args:
        endpoint: The endpoint whose ``ca_files``, ``client_certificates`` and ``skip_verify``
            apply.
        client: Which of the endpoint's client certificates the context offers. A context
            holds one (``load_cert_chain`` replaces the previous one), and Python cannot see
            the CA names a server asks for, which Go uses to pick among several: the transport
            offers them in order instead (:class:`pullgate.registry.transport.Transport`).

    Returns:
        A context with the system roots plus the endpoint's CA files, one of its client
        certificates (if any), and a minimum of TLS 1.2.

    Raises:
        RegistryError: ``REGISTRY_TLS`` when a CA, certificate or key file is missing,
            unreadable or not usable PEM.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for ca_file in endpoint.ca_files:
        _check_readable(endpoint, "CA certificate", ca_file)
        try:
            context.load_verify_locations(cafile=os.fspath(ca_file))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise _fail(endpoint, "CA certificate", ca_file, exc) from exc
    for pair in endpoint.client_certificates[client : client + 1]:
        _check_readable(endpoint, "client certificate", pair.cert)
        if pair.key is not None:
            _check_readable(endpoint, "client key", pair.key)
        try:
            context.load_cert_chain(os.fspath(pair.cert), os.fspath(pair.key) if pair.key else None)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise _fail(endpoint, "client certificate/key pair", pair.cert, exc) from exc
    if endpoint.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _stamp(path: Path) -> _FileStamp:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


_TlsEntry = tuple[tuple[_FileStamp, ...], ssl.SSLContext]


class TlsContextCache:
    """Caches one context per TLS setup; a changed file (mtime/size) rebuilds it.

    containerd reads certificate files on every pull, so a rotated CA or client certificate must
    be picked up without a restart; the file stamps in the cache key give that cheaply.

    Args:
        max_entries: Contexts kept (an LRU; ``[cache] tls_entries``).
    """

    __slots__ = ("_entries",)

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: Lru[tuple[TlsKey, int], _TlsEntry] = Lru(max_entries, name="tls contexts")

    def resize(self, max_entries: int) -> None:
        """Keep at most ``max_entries`` contexts from now on."""
        self._entries.resize(max_entries)

    def stats(self) -> LruStats:
        """Hits, misses, evictions, size and capacity of the cache."""
        return self._entries.stats()

    def get(self, endpoint: Endpoint, choice: int = 0) -> ssl.SSLContext:
        """The (possibly cached) context for ``endpoint`` offering its client certificate
        number ``choice``.

        Raises:
            RegistryError: ``REGISTRY_TLS`` as :func:`ssl_context_for`.
        """
        key = (tls_key(endpoint), choice)
        paths = [*endpoint.ca_files]
        for client in endpoint.client_certificates:
            paths.append(client.cert)
            if client.key is not None:
                paths.append(client.key)
        stamps = tuple(_stamp(p) for p in paths)
        cached = self._entries.get(key)
        if cached is not None and cached[0] == stamps:
            return cached[1]
        context = ssl_context_for(endpoint, choice)
        self._entries.put(key, (stamps, context))
        return context
