"""Turning what went wrong on the wire into typed errors, and URLs into loggable text.

* :func:`map_transport_error`: TLS → ``REGISTRY_TLS``; refused, DNS, reset or an unparsable
  answer → ``REGISTRY_UNREACHABLE``; a timeout, or any failure after the exchange's deadline
  passed (:mod:`pullgate.net.deadline`) → ``TIMEOUT``. The text names the root cause
  only, never a URL (query strings may carry secrets);
* :func:`answered_in_clear`: a TLS handshake that failed because the server's first bytes were
  not a TLS record (it speaks plain HTTP), the one TLS failure containerd falls back to HTTP on;
* :func:`redact_url`: a URL without userinfo or fragment, query values replaced by ``***``
  except the distribution-spec parameters.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from urllib3.exceptions import HTTPError, NameResolutionError, NewConnectionError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from pullgate.errors import Reason
from pullgate.registry.model import Endpoint, RegistryError

_SAFE_QUERY_KEYS = frozenset({"ns", "artifactType", "n", "last", "service", "scope"})
# OpenSSL's reasons for a first record that is not TLS at all ("HTTP/1.1 400 …" has no valid
# record version; other clear text can read as an absurd record length).
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG"})
# Alerts a server sends when it does not accept the client certificate offered (or none).
_CLIENT_CERT_REFUSED = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    }
)


def redact_url(url: str) -> str:
    """``url`` without userinfo, fragment and with unsafe query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        query = urlencode(
            [
                (k, v if k in _SAFE_QUERY_KEYS else "***")
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
    except ValueError:
        return "<unparsable url>"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(nxt, BaseException):
                stack.append(nxt)
        stack.extend(a for a in current.args if isinstance(a, BaseException))


def answered_in_clear(exc: BaseException) -> bool:
    """True when ``exc`` comes from a TLS handshake the server answered in clear text.

    A certificate the client refuses, an alert or a protocol mismatch is not that, so an
    attacker in the path cannot turn one into a downgrade to plain HTTP.
    """
    return any(
        isinstance(cause, ssl.SSLError) and cause.reason in _NOT_TLS_REASONS
        for cause in _causes(exc)
    )


def client_certificate_refused(exc: BaseException) -> bool:
    """True when ``exc`` comes from a server's TLS alert about the client certificate, or may:
    in TLS 1.3 the server checks the certificate after the client's handshake is over, and when
    it closes the connection right after its alert, the client can meet the end of the stream
    (``SSLEOFError``) or a reset before it reads the alert."""
    return any(
        (isinstance(cause, ssl.SSLError) and cause.reason in _CLIENT_CERT_REFUSED)
        or isinstance(cause, ssl.SSLEOFError | ConnectionResetError)
        for cause in _causes(exc)
    )


def _innermost_text(exc: BaseException) -> str:
    """A short description of the root cause, without URLs (which may carry query secrets)."""
    for cause in _causes(exc):
        if isinstance(cause, (ssl.SSLError, ssl.CertificateError)):
            return f"{type(cause).__name__}: {cause}"
    for cause in _causes(exc):
        if isinstance(cause, OSError) and not isinstance(cause, HTTPError):
            return f"{type(cause).__name__}: {cause.strerror or cause}"
    return type(exc).__name__


def map_transport_error(
    exc: BaseException, endpoint: Endpoint, *, timed_out: bool = False
) -> RegistryError:
    """Turn a urllib3/socket/ssl exception into a typed :class:`RegistryError`
    (``timed_out``: the exchange's deadline passed, whatever error that caused)."""
    causes = list(_causes(exc))
    text = _innermost_text(exc)
    if timed_out:
        reason = Reason.TIMEOUT
        text = "no complete answer before the request deadline"
    elif any(isinstance(c, (ssl.SSLError, ssl.CertificateError, Urllib3SSLError)) for c in causes):
        reason = Reason.REGISTRY_TLS
    elif any(isinstance(c, (NameResolutionError, NewConnectionError)) for c in causes):
        reason = Reason.REGISTRY_UNREACHABLE
    elif any(isinstance(c, (Urllib3TimeoutError, TimeoutError)) for c in causes):
        reason = Reason.TIMEOUT
    else:
        reason = Reason.REGISTRY_UNREACHABLE
    return RegistryError(reason, f"endpoint {endpoint.url}: {text}", endpoint=endpoint.url)
