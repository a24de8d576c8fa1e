"""Pooled HTTP(S) for registry endpoints, with containerd's transport behaviour and hard bounds.

Implements docs/containerd.md §1.7 (per-request retries, redirects)
and §1.8 (transport built per endpoint TLS setup, dial timeout, "HTTPS first, then HTTP"):

* one :class:`urllib3.PoolManager` per distinct TLS setup (``ca``/``client``/``skip_verify``);
  plain-HTTP and default-TLS endpoints share theirs;
* connect timeout = the endpoint's ``dial_timeout`` or ``limits.connect_timeout``; the read timeout
  bounds every socket read (containerd ≥ 2.3 has a 30 s response-header timeout); and every
  exchange (handshake, headers, body, redirects) ends by ``limits.request_timeout`` or the
  caller's :attr:`Transport.deadline`, whichever is first (:mod:`pullgate.net.deadline`:
  a server dripping one byte per read timeout cannot hold a thread), then ``TIMEOUT``;
* at an endpoint with others after it (:meth:`Transport.attempt`) the connect and read timeouts
  are cut to ``limits.fallback_timeout`` and each exchange to an equal share of the task's
  remaining time, so a hung mirror leaves the next endpoints time; transport failures and
  answers feed the endpoint memory (:mod:`pullgate.registry.health`);
* bodies: :func:`pullgate.registry.body.read_body` (capped, under the in-flight byte budget);
* 429/503 are retried at most ``limits.max_retries`` times
  (:func:`pullgate.registry.http_types.retry_delay`); redirects are followed (max 10, then
  ``REGISTRY_ERROR``) without sending credentials, ``hosts.toml`` headers or a body to another
  origin (:mod:`pullgate.registry.redirect`);
* transport failures become typed errors (:mod:`pullgate.registry.http_errors`): TLS →
  ``REGISTRY_TLS``, refused/DNS/reset/unparsable answer → ``REGISTRY_UNREACHABLE``, timeouts
  and anything after the deadline → ``TIMEOUT``. No proxies from the environment.

Request headers are never logged; URLs are logged with query values redacted except for the
distribution-spec parameters (``ns``, ``artifactType``, ``n``, ``last``).
"""

from __future__ import annotations

import logging
import ssl
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError, InsecureRequestWarning, MaxRetryError

import pullgate
from pullgate.common.clock import Clock
from pullgate.errors import PullgateError, Reason
from pullgate.net.deadline import Exchange, Watchdog, guard_pools
from pullgate.registry.body import DEFAULT_INFLIGHT_BYTES, ERROR_BODY_CAP, ByteBudget, read_body
from pullgate.registry.health import EndpointHealth
from pullgate.registry.http_errors import (
    answered_in_clear,
    client_certificate_refused,
    map_transport_error,
    redact_url,
)
from pullgate.registry.http_types import (
    HttpStatusError,
    RequestLogHook,
    RequestRecord,
    Response,
    ResponseTooLarge,
    parse_retry_after,
    retry_delay,
)
from pullgate.registry.model import Endpoint, RegistryError, RegistryLimits
from pullgate.registry.redirect import Hop, next_hop
from pullgate.registry.tls import TlsContextCache, TlsKey, tls_key

# The http_types names are re-exported: callers import them from here.
__all__ = [
    "DEFAULT_INFLIGHT_BYTES",
    "ERROR_BODY_CAP",
    "RETRY_STATUSES",
    "USER_AGENT",
    "HttpStatusError",
    "RequestLogHook",
    "RequestRecord",
    "Response",
    "ResponseTooLarge",
    "Transport",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

USER_AGENT = f"pullgate/{pullgate.__version__}"
RETRY_STATUSES = frozenset({429, 503})
_MAX_REDIRECTS = 10


@dataclass(slots=True)
class _Pool:
    context: ssl.SSLContext | None
    manager: urllib3.PoolManager


@dataclass(slots=True, kw_only=True)
class _Request:
    endpoint: Endpoint
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    cap: int


@dataclass(slots=True)
class Transport:
    """HTTP client shared by every endpoint of a :class:`~pullgate.registry.client.RegistryClient`.

    Args:
        limits: Timeouts, retry bounds.
        request_log: Optional hook called once per HTTP exchange (tests, benchmarks).
        clock: Used to interpret an HTTP-date ``Retry-After``.
        sleep: How to wait between retries (tests inject a recorder).
        tls_contexts: Where TLS contexts are cached. Contexts depend only on ``hosts.toml``
            files, never on a caller's credentials, so an owner may share one cache between
            transports (a build costs tens of milliseconds).
        deadline: When the caller's whole task must be over (``time.perf_counter()`` seconds;
            None: only ``limits.request_timeout`` per exchange). The decision layer sets it
            while it lends the client out, so no request outlives the decision's budget.
        watchdog: Enforces the deadlines (the owner's, shared between its transports).
        budget: Bounds the body bytes held while reading (the daemon shares one between every
            transport).
        health: Remembers endpoints that failed at transport level (the daemon shares one);
            see :mod:`pullgate.registry.health`.
    """

    limits: RegistryLimits
    clock: Clock
    tls_contexts: TlsContextCache
    watchdog: Watchdog
    budget: ByteBudget
    health: EndpointHealth
    request_log: RequestLogHook | None = None
    sleep: Callable[[float], None] = time.sleep
    request_count: int = 0
    deadline: float | None = None
    fallbacks: int = 0  # endpoints after the one being asked (see attempt())
    _pools: dict[tuple[TlsKey, int] | None, _Pool] = field(default_factory=dict)
    _plain_fallback: set[str] = field(default_factory=set)
    # Which client certificate to offer, per TLS setup with several (the last one accepted).
    _client_choice: dict[TlsKey, int] = field(default_factory=dict)

    def close(self) -> None:
        """Close every pooled connection."""
        for pool in self._pools.values():
            pool.manager.clear()
        self._pools.clear()

    def _manager(self, endpoint: Endpoint, scheme: str) -> urllib3.PoolManager:
        if scheme != "https":
            key: tuple[TlsKey, int] | None = None
            context: ssl.SSLContext | None = None
        else:
            choice = self._client_choice.get(tls_key(endpoint), 0)
            key = (tls_key(endpoint), choice)
            context = self.tls_contexts.get(endpoint, choice)
        pool = self._pools.get(key)
        if pool is not None and pool.context is context:
            return pool.manager
        if pool is not None:
            pool.manager.clear()
        kwargs: dict[str, object] = {}
        if context is not None:
            kwargs["ssl_context"] = context
            if endpoint.skip_verify:
                kwargs["cert_reqs"] = "CERT_NONE"
                kwargs["assert_hostname"] = False
        manager = guard_pools(urllib3.PoolManager(num_pools=16, maxsize=10, **kwargs))  # type: ignore[arg-type]
        self._pools[key] = _Pool(context, manager)
        return manager

    def request(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        cap: int,
    ) -> Response:
        """Send one request to ``endpoint`` (with bounded 429/503 retries) and read the body.

        Args:
            endpoint: Supplies TLS setup, extra headers and dial timeout.
            method: HTTP method.
            url: Absolute URL (normally from ``hosts.request_url``).
            headers: Request headers; they override the endpoint's ``header`` entries.
            body: Request body (token POST), or None.
            cap: Maximum body bytes accepted for a 2xx response.

        Returns:
            The response of the last attempt; any HTTP status is returned, not raised.

        Raises:
            RegistryError: Transport failure (``REGISTRY_TLS``, ``REGISTRY_UNREACHABLE``,
                ``TIMEOUT``), or ``REGISTRY_ERROR`` for too many or unusable redirects.
            ResponseTooLarge: A 2xx body over ``cap``.
        """
        req = _Request(
            endpoint=endpoint, method=method, url=url, headers=headers or {}, body=body, cap=cap
        )
        attempt = 0
        while True:
            response = self._send_with_fallback(req)
            if response.status not in RETRY_STATUSES or attempt >= self.limits.max_retries:
                return response
            delay = retry_delay(response, attempt, self.limits, self.clock, self.deadline)
            if delay is None:
                return response
            attempt += 1
            self.sleep(delay)

    def reached_over_http(self, endpoint: Endpoint) -> bool:
        """True when ``endpoint`` is spoken to in plain HTTP: an ``http`` endpoint, or an
        ``https_then_http`` one whose TLS attempt failed (see :meth:`_send_with_fallback`)."""
        if endpoint.scheme == "http":
            return True
        return endpoint.https_then_http and endpoint.host in self._plain_fallback

    def _send_with_fallback(self, req: _Request) -> Response:
        """containerd's "try HTTPS first, fall back to HTTP" for ``https_then_http`` endpoints:
        their URLs are ``https``; when the server answers the TLS handshake in clear text, the
        same URL is retried in plain HTTP, and the host is spoken to in plain HTTP from then on.
        Any other TLS failure (a refused certificate above all) stays ``REGISTRY_TLS``."""
        parts = urlsplit(req.url)
        if not req.endpoint.https_then_http or parts.scheme != "https":
            return self._offering_client_certificates(req, req.url)
        http_url = urlunsplit(("http", *parts[1:]))
        if parts.netloc in self._plain_fallback:
            return self._send(req, http_url)
        try:
            return self._offering_client_certificates(req, req.url)
        except RegistryError as exc:
            if exc.reason is not Reason.REGISTRY_TLS or not answered_in_clear(exc):
                raise  # a refused certificate is never a reason to drop TLS
            log.info("endpoint %s: answered in plain HTTP, falling back to it", req.endpoint.url)
            self._plain_fallback.add(parts.netloc)
            return self._send(req, http_url)

    def _offering_client_certificates(self, req: _Request, url: str) -> Response:
        """:meth:`_send`; when the endpoint has several client certificates and the server
        refuses the one offered (a TLS alert), the next ones in turn, and the one it accepts
        is offered first from then on. Go picks among them by the CA names the server asks
        for, which Python's ssl module does not show."""
        candidates = len(req.endpoint.client_certificates)
        if candidates < 2 or urlsplit(url).scheme != "https":
            return self._send(req, url)
        key = tls_key(req.endpoint)
        for _ in range(candidates - 1):
            try:
                return self._send(req, url)
            except RegistryError as exc:
                if exc.reason is not Reason.REGISTRY_TLS or not client_certificate_refused(exc):
                    raise
                following = (self._client_choice.get(key, 0) + 1) % candidates
                log.info(
                    "endpoint %s refused client certificate %d; offering the next",
                    req.endpoint.url,
                    following,
                )
                self._client_choice[key] = following
        return self._send(req, url)

    def _record(
        self, req: _Request, url: str, status: int | None, size: int, err: Reason | None
    ) -> None:
        self.request_count += 1
        if self.request_log is not None:
            self.request_log(
                RequestRecord(
                    method=req.method, url=redact_url(url), status=status, size=size, error=err
                )
            )

    def _exchange_deadline(self) -> float:
        """When the next exchange must be over (``time.perf_counter()`` seconds): within
        ``limits.request_timeout``, and with endpoints left to fall back on, within this
        endpoint's share of what the task has left (each gets an equal part)."""
        now = time.perf_counter()
        deadline = now + self.limits.request_timeout
        if self.deadline is None:
            return deadline
        if self.fallbacks > 0:
            deadline = min(deadline, now + (self.deadline - now) / (self.fallbacks + 1))
        return min(deadline, self.deadline)

    @contextmanager
    def attempt(self, fallbacks: int) -> Iterator[None]:
        """Requests inside the block go to an endpoint with ``fallbacks`` endpoints after it
        in the operation's order: they get shorter timeouts (:meth:`_exchange_deadline`,
        ``limits.fallback_timeout``), so a hung endpoint leaves the next ones time."""
        previous, self.fallbacks = self.fallbacks, fallbacks
        try:
            yield
        finally:
            self.fallbacks = previous

    def _send(self, req: _Request, url: str) -> Response:
        """One exchange within one deadline: the request and the redirects it is answered with."""
        hop = Hop(url=url, method=req.method, body=req.body, headers=self._headers(req))
        with Exchange(self.watchdog, self._exchange_deadline()) as exchange:
            for _ in range(_MAX_REDIRECTS + 1):
                response, location = self._send_hop(req, hop, exchange)
                if location is None:
                    return response
                following = next_hop(hop, response.status, location, req.endpoint)
                if following is None:  # a body would go to another origin: not followed
                    return response
                hop = following
        err = RegistryError(
            Reason.REGISTRY_ERROR,
            f"endpoint {req.endpoint.url}: more than {_MAX_REDIRECTS} redirects",
            endpoint=req.endpoint.url,
        )
        self._record(req, hop.url, None, 0, err.reason)
        raise err

    def _headers(self, req: _Request) -> urllib3.HTTPHeaderDict:
        headers = urllib3.HTTPHeaderDict({"User-Agent": USER_AGENT})
        for name, values in req.endpoint.headers.items():
            for value in values:
                headers.add(name, value)
        for name, value in req.headers.items():
            headers[name] = value
        return headers

    def _send_hop(self, req: _Request, hop: Hop, exchange: Exchange) -> tuple[Response, str | None]:
        """One HTTP request and its (capped) body; the redirect location, if any."""
        endpoint = req.endpoint
        if endpoint.dial_timeout is not None and endpoint.dial_timeout < 0:
            # Go's ParseDuration takes "-1s"; containerd's dialer then fails every connection
            # to this host at once, and the pull moves on to the next one.
            err = RegistryError(
                Reason.REGISTRY_UNREACHABLE,
                f"endpoint {endpoint.url}: negative dial_timeout, so every connection fails "
                "(as in containerd)",
                endpoint=endpoint.url,
            )
            self._record(req, hop.url, None, 0, err.reason)
            raise err
        connect, read = self.limits.connect_timeout, self.limits.read_timeout
        if self.fallbacks > 0:
            connect = min(connect, self.limits.fallback_timeout)
            read = min(read, self.limits.fallback_timeout)
        timeout = urllib3.Timeout(connect=endpoint.dial_timeout or connect, read=read)
        retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=0)
        size = 0
        try:
            if exchange.fired:
                raise TimeoutError("request deadline passed")
            manager = self._manager(endpoint, urlsplit(hop.url).scheme)
            quiet = warnings.catch_warnings() if endpoint.skip_verify else nullcontext()
            with quiet:
                if endpoint.skip_verify:  # hosts.toml asked for it; urllib3 would warn per call
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                raw = manager.request(
                    hop.method,
                    hop.url,
                    headers=hop.headers,
                    body=hop.body,
                    preload_content=False,
                    timeout=timeout,
                    retries=retries,
                    redirect=False,
                )
            try:
                location = raw.get_redirect_location() or None
                body = read_body(  # a non-2xx body: at most ERROR_BODY_CAP
                    raw,
                    head=req.method == "HEAD",
                    cap=req.cap,
                    budget=self.budget,
                    deadline=exchange.deadline,
                    endpoint=endpoint.url,
                )
            finally:
                raw.release_conn()
            size = len(body)
            if exchange.fired:  # a shut-down socket can look like a complete body
                raise TimeoutError("request deadline passed")
        except PullgateError as exc:
            size = getattr(exc, "bytes_read", size)
            self._record(req, hop.url, None, size, exc.reason)
            raise
        except (HTTPError, OSError, ValueError, MaxRetryError) as exc:
            err = map_transport_error(exc, endpoint, timed_out=exchange.fired)
            self._record(req, hop.url, None, size, err.reason)
            self.health.failed(endpoint, err.reason)
            raise err from exc
        self._record(req, hop.url, raw.status, size, None)
        self.health.answered(endpoint)
        response = Response(status=raw.status, headers=raw.headers, body=body, url=hop.url)
        return response, location
