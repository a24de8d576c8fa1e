"""Following an HTTP redirect without carrying secrets to another origin.

containerd follows up to 10 redirects with Go's ``http.Client`` (docs/containerd.md §1.7). Go
drops ``Authorization``, ``Cookie`` and ``WWW-Authenticate`` when the target is on
another domain, but forwards every other header, so a ``hosts.toml`` ``header`` value (often a
static credential such as an API key) reaches a blob store or CDN the registry redirects to.
pullgate is stricter, because the registry chose that origin and not the node's administrator:

* same origin (scheme, host and port): every header is kept;
* another origin (a scheme change counts): only ``User-Agent`` and ``Accept`` are sent;
* a request body (the OAuth token ``POST``, which carries the refresh token) is never sent to
  another origin: such a 307/308 is not followed, and the caller sees the 3xx;
* 301/302/303 turn a method other than GET/HEAD into a body-less GET, as Go does;
* a ``Location`` that is not an http(s) URL is ``REGISTRY_ERROR``.

The TLS setup of the endpoint (``ca``, ``client``, ``skip_verify``) also applies to the redirect
target, as with containerd's one transport per endpoint: a target that asks for a client
certificate is offered the endpoint's (a certificate, never its key).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from urllib.parse import urljoin

import urllib3
from urllib3.util import parse_url

from pullgate.errors import Reason
from pullgate.registry.model import Endpoint, RegistryError

_KEPT_ACROSS_ORIGINS = ("User-Agent", "Accept")
_DEFAULT_PORTS = MappingProxyType({"http": 80, "https": 443})


@dataclass(frozen=True, slots=True, kw_only=True)
class Hop:
    """One request of an exchange: the first one, or a redirect's."""

    url: str
    method: str
    body: bytes | None
    headers: urllib3.HTTPHeaderDict


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) as urllib3 will connect to them, the scheme's default port filled
    in, the host lower-cased.

    urllib3's own URL parser decides where the request goes, so it must decide the origin too:
    ``urllib.parse`` reads ``http://evil\\@registry/`` as host ``registry`` while urllib3
    connects to ``evil``.

    Raises:
        ValueError: the URL does not parse (urllib3's ``LocationParseError``).
    """
    parts = parse_url(url)
    scheme = (parts.scheme or "").lower()
    return scheme, (parts.host or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def same_origin(first: str, second: str) -> bool:
    """True when both URLs parse and name the same :func:`origin` (an unparsable URL is no
    one's origin)."""
    try:
        return origin(first) == origin(second)
    except ValueError:
        return False


def next_hop(hop: Hop, status: int, location: str, endpoint: Endpoint) -> Hop | None:
    """The request answering ``hop``'s ``status`` redirect to ``location``, or None when it
    must not be followed (a body would go to another origin).

    Args:
        hop: The request that was redirected.
        status: Its 3xx status.
        location: The ``Location`` header (relative URLs are resolved against ``hop.url``).
        endpoint: Whose request this is (its ``header`` names are never sent cross-origin).

    Raises:
        RegistryError: ``REGISTRY_ERROR`` for a ``Location`` that is not an http(s) URL.
    """
    try:
        url = urljoin(hop.url, location)
        target = origin(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket or a port out of range
        target = ("", "", None)
    if target[0] not in _DEFAULT_PORTS or not target[1]:
        raise RegistryError(
            Reason.REGISTRY_ERROR,
            f"endpoint {endpoint.url}: HTTP {status} redirect to an unusable location",
            endpoint=endpoint.url,
        )
    method, body, headers = hop.method, hop.body, hop.headers.copy()
    if status in (301, 302, 303) and method not in ("GET", "HEAD"):
        method, body = "GET", None
        headers.discard("Content-Type")
        headers.discard("Content-Length")
    if target != origin(hop.url):
        if body is not None:
            return None
        configured = {name.lower() for name in endpoint.headers}  # hosts.toml's: never kept
        kept = urllib3.HTTPHeaderDict()
        for name in _KEPT_ACROSS_ORIGINS:
            if name.lower() not in configured:
                for value in headers.getlist(name):
                    kept.add(name, value)
        headers = kept
    return replace(hop, url=url, method=method, body=body, headers=headers)
