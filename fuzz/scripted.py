"""An in-process registry for fuzzing: the real client over a transport that answers from a
script instead of a socket.

Everything above the socket is pullgate's own code (authentication, retries, endpoint order,
caps on 2xx bodies, digest checks), so a target exercises what a hostile registry would. What is
left out: TLS, redirects (their parser has its own target) and the streaming of bodies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.support.parts import build_client, build_watchdog

from fuzz.wire import Reply
from pullgate.common.clock import SystemClock
from pullgate.common.descriptor import Descriptor
from pullgate.registry.body import own_budget
from pullgate.registry.client import RegistryClient
from pullgate.registry.health import EndpointHealth
from pullgate.registry.model import Endpoint, HostsConfig, ImageReference, RegistryLimits
from pullgate.registry.tls import TlsContextCache
from pullgate.registry.transport import (
    ERROR_BODY_CAP,
    Response,
    ResponseTooLarge,
    Transport,
    _Request,
)

REGISTRY = "registry.fuzz.test"
REPOSITORY = "app"
# Small caps keep a run fast; they are checked exactly as the real ones are.
LIMITS = RegistryLimits(
    max_manifest_bytes=64 * 1024, max_envelope_bytes=256 * 1024, max_referrers_pages=4
)
NOT_FOUND = Reply(
    status=404,
    headers=(("Content-Type", "application/json"),),
    body=b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}',
)

Route = Callable[[str, str, Mapping[str, str]], Reply]


@dataclass(frozen=True, slots=True)
class Sent:
    """One request the client made: method, URL, headers and body."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


class ScriptedTransport(Transport):
    """A :class:`~pullgate.registry.transport.Transport` whose exchanges are answered by
    ``route(method, url, headers)``; 2xx bodies over the cap raise as on the wire."""

    def __init__(self, route: Route, *, limits: RegistryLimits = LIMITS) -> None:
        super().__init__(
            limits,
            SystemClock(),
            TlsContextCache(),
            build_watchdog(),
            own_budget(),
            EndpointHealth(),
            sleep=self._no_sleep,
        )
        self.route = route
        self.sent: list[Sent] = []
        self.sleeps: list[float] = []

    def _no_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def _send(self, req: _Request, url: str) -> Response:
        headers = {**{k: v[-1] for k, v in req.endpoint.headers.items() if v}, **req.headers}
        self.sent.append(Sent(req.method, url, headers, req.body))
        answer = self.route(req.method, url, headers)
        body = b"" if req.method == "HEAD" else answer.body
        strict = 200 <= answer.status < 300
        limit = req.cap if strict else min(req.cap, ERROR_BODY_CAP)
        if len(body) > limit:
            if strict:
                raise ResponseTooLarge(f"{url}: body exceeds {limit} bytes")
            body = body[:limit]
        self._record(req, url, answer.status, len(body), None)
        return Response(status=answer.status, headers=answer.header_dict(), body=body, url=url)


def endpoint(scheme: str = "https", **changes: object) -> Endpoint:
    """The one endpoint of :data:`REGISTRY` (``/v2`` root)."""
    fields: dict[str, object] = {
        "url": f"{scheme}://{REGISTRY}/v2",
        "scheme": scheme,
        "host": REGISTRY,
        "path": "/v2",
        "is_server": True,
        **changes,
    }
    return Endpoint(**fields)  # type: ignore[arg-type]


def client(
    route: Route, *, where: Endpoint | None = None, **kwargs: object
) -> tuple[RegistryClient, ScriptedTransport]:
    """A real :class:`RegistryClient` for :data:`REGISTRY` over a scripted transport."""
    transport = ScriptedTransport(route)
    ep = where or endpoint()

    def hosts(registry: str) -> HostsConfig:
        return HostsConfig(registry=registry, directory=None, source="none", endpoints=(ep,))

    made = build_client(hosts, limits=LIMITS, transport=transport, **kwargs)  # type: ignore[arg-type]
    return made, transport


def reference(tag: str | None = "v1", digest: str | None = None) -> ImageReference:
    """``registry.fuzz.test/app`` with ``tag`` and/or ``digest``."""
    return ImageReference(registry=REGISTRY, repository=REPOSITORY, tag=tag, digest=digest)


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def by_digest(replies: list[Reply]) -> dict[str, Reply]:
    """Content addressing: each reply's body under its digest (the first one wins)."""
    out: dict[str, Reply] = {}
    for answer in replies:
        out.setdefault(sha256(answer.body), answer)
    return out


def path_parts(url: str) -> list[str]:
    """The path of ``url`` split on ``/`` (empty segments dropped)."""
    return [p for p in urlsplit(url).path.split("/") if p]


def descriptor_of(answer: Reply, media_type: str) -> Descriptor:
    """The descriptor naming ``answer``'s body (``media_type`` when it has no Content-Type)."""
    declared = (answer.header("Content-Type") or "").split(";", 1)[0].strip()
    return Descriptor(
        media_type=declared or media_type, digest=sha256(answer.body), size=len(answer.body)
    )
