"""Plain-HTTP transport for OCSP and CRL (docs/notation.md §12, limits §1.3).

:class:`HttpFetcher` is the network seam of revocation checking; :class:`Urllib3Fetcher` is the
production implementation: one pooled connection manager, no retries, no redirects, a
timeout for connecting and for each read, the whole exchange over by twice that timeout (a
responder dripping one byte per read timeout cannot hold a verification thread:
:mod:`pullgate.net.deadline`), and a byte limit enforced while reading. Every failure (network, HTTP
status, size, scheme) is a :class:`RevocationFetchError`, which is *inconclusive*, never a
verdict.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Protocol

import urllib3

from pullgate.common.textnum import ascii_int
from pullgate.errors import Reason, VerificationInconclusive
from pullgate.net.deadline import Exchange, Watchdog, guard_pools

__all__ = ["HttpFetcher", "RevocationFetchError", "Urllib3Fetcher", "require_http"]


class RevocationFetchError(VerificationInconclusive):
    """An OCSP/CRL download failed (network, HTTP status, size, scheme)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.REVOCATION_UNKNOWN, detail)


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


def require_http(url: str) -> None:
    """Refuse anything but ``http://`` (§12: revocation URLs are plain HTTP).

    Raises:
        RevocationFetchError: the URL has another scheme.
    """
    if urllib.parse.urlsplit(url).scheme.lower() != "http":
        raise RevocationFetchError(f"only http:// revocation URLs are supported: {url!r}")


class Urllib3Fetcher:
    """:class:`HttpFetcher` on one pooled ``urllib3.PoolManager`` (no retries, no redirects)."""

    def __init__(self, pool: urllib3.PoolManager, *, watchdog: Watchdog) -> None:
        """Create the fetcher.

        Args:
            pool: Connection pool to use (every request turns retries and redirects off).
            watchdog: Enforces each fetch's deadline (the owner's, shared with its registry
                transports).
        """
        self._watchdog = watchdog
        self._pool = guard_pools(pool)

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
        require_http(url)
        with Exchange(self._watchdog, time.perf_counter() + 2 * timeout) as exchange:
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
            data = _read_capped(response, method, url, max_bytes)
            if exchange.fired:  # a shut-down socket can look like a complete body
                raise RevocationFetchError(f"{method} {url}: no complete answer in time")
            return data


def _read_capped(
    response: urllib3.BaseHTTPResponse, method: str, url: str, max_bytes: int
) -> bytes:
    """The body of a 200 ``response`` of at most ``max_bytes``; the connection is reused only
    after a complete read."""
    complete = False
    try:
        if response.status != 200:
            raise RevocationFetchError(f"{method} {url}: HTTP status {response.status}")
        declared = ascii_int(response.headers.get("Content-Length"))
        if declared is not None and declared > max_bytes:
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
