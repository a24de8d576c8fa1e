"""``pullgate.v1`` protobuf messages ⇄ domain objects (docs/architecture.md §4).

Parse at the boundary (docs/architecture.md §3.1): every field of a
``VerifyRequest`` is checked here and any problem becomes :class:`~pullgate.errors.MalformedInput`
(reason ``MALFORMED``), so nothing further in carries unchecked client input. Registry credentials
follow the CRI ``AuthConfig``: ``auth`` is base64 ``user:password`` and is used only when
``username``/``password`` are empty. Credentials never appear in a ``repr`` or a log line.

A warm ``Verify`` costs tens of microseconds of Python on the event loop, so the two pure
conversions on its path are memoised (an :class:`~pullgate.common.lru.Lru` each, one per
server): :class:`RequestConverter` keeps the :class:`DecisionRequest` of recent credential-free
requests, keyed by the raw fields it is a pure function of, and :class:`ResponseEncoder` keeps
the serialized ``VerifyResponse`` of recent cache hits, keyed by every field
:func:`decision_to_proto` reads, so a memoised answer is byte for byte the one the slow path
builds.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pullgate.common.lru import Lru, LruStats
from pullgate.decision.model import BINDIR_CALLER, Decision, DecisionRequest, Front, SubjectDecision
from pullgate.errors import MalformedInput
from pullgate.registry.body import BudgetStats
from pullgate.registry.health import EndpointState
from pullgate.registry.model import Credentials
from pullgate.registry.reference import parse_reference
from pullgate.v1 import verifier_pb2

# OCI image-spec digest grammar: algorithm ":" encoded.
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
# os/arch[/variant] as containerd's platforms.Parse accepts them after normalisation.
_PLATFORM_PART = r"[A-Za-z0-9_.-]+"
_PLATFORM_RE = re.compile(rf"^{_PLATFORM_PART}/{_PLATFORM_PART}(?:/{_PLATFORM_PART})?$")
_MAX_FIELD = 4096  # bytes; generous for references, digests, platforms and tokens
_MAX_CALLER = 64
_REQUEST_MEMO = 1024  # default [cache] request_entries
_RESPONSE_MEMO = 256  # default [cache] response_entries


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadView:
    """A reload result as the API reports it."""

    ok: bool
    error: str = ""
    finished_unix_ms: int = 0
    generation: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheView:
    """Decision-cache counters as the API reports them."""

    entries: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    singleflight_joins: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusView:
    """Everything ``Status`` answers, gathered from the trust state and the decider."""

    generation: int
    hashes: Mapping[str, str] = field(default_factory=dict)
    last_reload: ReloadView | None = None
    degraded: bool = False
    degraded_reason: str = ""
    cache: CacheView = field(default_factory=CacheView)
    uptime_seconds: float = 0.0
    problems: tuple[str, ...] = ()
    version: str = ""
    reloads_ok: int = 0
    reloads_failed: int = 0
    certs_d_problems: int = 0  # broken certs.d entries (hosts.toml …) among ``problems``
    endpoints: tuple[EndpointState, ...] = ()  # registry endpoints remembered as failing
    inflight: BudgetStats | None = None  # registry body bytes in flight (metrics only)


def _bounded(name: str, value: str) -> str:
    if len(value.encode()) > _MAX_FIELD:
        raise MalformedInput(f"{name} is longer than {_MAX_FIELD} bytes")
    return value


def credentials_from_proto(message: verifier_pb2.RegistryCredentials) -> Credentials | None:
    """CRI-style registry credentials → :class:`Credentials` (None when nothing is set).

    Raises:
        MalformedInput: ``auth`` is not base64 of ``user:password``, or a field is too long.
    """
    for name in ("username", "password", "auth", "server_address"):
        _bounded(f"credentials.{name}", getattr(message, name))
    _bounded("credentials.identity_token", message.identity_token)
    _bounded("credentials.registry_token", message.registry_token)
    username, password = message.username, message.password
    if message.auth and not username and not password:
        try:
            decoded = base64.b64decode(message.auth, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise MalformedInput("credentials.auth is not base64 of 'user:password'") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise MalformedInput("credentials.auth is not base64 of 'user:password'")
    creds = Credentials(
        username=username,
        password=password,
        identity_token=message.identity_token,
        registry_token=message.registry_token,
        server_address=message.server_address,
    )
    if not (username or password or creds.identity_token or creds.registry_token):
        return None
    return creds


def verify_request_from_proto(message: verifier_pb2.VerifyRequest) -> DecisionRequest:
    """Check a ``VerifyRequest`` and turn it into a :class:`DecisionRequest`.

    Raises:
        MalformedInput: empty or unparsable reference, bad digest, platform or credentials.
    """
    reference = _bounded("reference", message.reference.strip())
    parse_reference(reference)  # raises MalformedInput for garbage; the decider re-parses
    digest = _bounded("digest", message.digest)
    if digest and not _DIGEST_RE.match(digest):
        raise MalformedInput("digest must look like 'sha256:<hex>'")
    platform = _bounded("platform", message.platform)
    if platform and not _PLATFORM_RE.match(platform):
        raise MalformedInput("platform must be 'os/arch[/variant]'")
    credentials = (
        credentials_from_proto(message.credentials) if message.HasField("credentials") else None
    )
    return DecisionRequest(
        reference=reference,
        digest=digest or None,
        platform=platform or None,
        credentials=credentials,
        caller=message.caller[:_MAX_CALLER],
        front=Front.SHIM if message.caller == BINDIR_CALLER else Front.GRPC,
    )


def _subject_to_proto(subject: SubjectDecision) -> verifier_pb2.SubjectResult:
    out = verifier_pb2.SubjectResult(
        role=subject.role,
        digest=subject.digest,
        verified=subject.verified,
        reason=subject.reason.value,
        message=subject.message,
        platform=subject.platform or "",
    )
    if subject.signature_digest is not None:
        out.signer_subject = subject.signer_subject or ""
        out.signer_fingerprint_sha256 = subject.signer_fingerprint or ""
        out.signature_digest = subject.signature_digest
    return out


def decision_to_proto(decision: Decision) -> verifier_pb2.VerifyResponse:
    """A :class:`Decision` → ``VerifyResponse`` (reason as its stable name)."""
    return verifier_pb2.VerifyResponse(
        allowed=decision.allowed,
        reason=decision.reason.value,
        message=decision.message,
        digest=decision.digest,
        inconclusive=decision.inconclusive,
        statement=decision.statement or "",
        requirement=decision.requirement.value if decision.requirement else "",
        mode=decision.mode.value,
        subjects=[_subject_to_proto(s) for s in decision.subjects],
        cache_hit=decision.cache_hit,
        platform=decision.platform or "",
        reference=decision.reference,
    )


class RequestConverter:
    """:func:`verify_request_from_proto` with a memo for requests that carry no credentials.

    The conversion is a pure function of ``reference``, ``digest``, ``platform`` and ``caller``
    when ``credentials`` is absent, and its result is immutable, so a repeated request (a warm
    image pulled again) skips re-checking and re-normalising the reference. Requests with
    credentials are converted every time (secrets are never kept here). A request that does
    not convert raises every time (failures are not memoised).

    Args:
        max_entries: Requests remembered (``[cache] request_entries``; least recently used
            dropped first).
    """

    def __init__(self, max_entries: int = _REQUEST_MEMO) -> None:
        self._memo: Lru[tuple[str, str, str, str], DecisionRequest] = Lru(
            max_entries, name="converted requests"
        )

    def __call__(self, message: verifier_pb2.VerifyRequest) -> DecisionRequest:
        """The :class:`DecisionRequest` of ``message``.

        Raises:
            MalformedInput: as :func:`verify_request_from_proto`.
        """
        if message.HasField("credentials"):
            return verify_request_from_proto(message)
        key = (message.reference, message.digest, message.platform, message.caller)
        known = self._memo.get(key)
        if known is not None:
            return known
        converted = verify_request_from_proto(message)
        self._memo.put(key, converted)
        return converted

    def __len__(self) -> int:
        return len(self._memo)

    def stats(self) -> LruStats:
        """Hits, misses, evictions, size and capacity of the memo."""
        return self._memo.stats()


def _response_key(decision: Decision) -> tuple[object, ...]:
    """Every :class:`Decision` field :func:`decision_to_proto` reads (keep the two in step;
    ``tests/unit/server/test_convert.py`` varies each response field to prove it)."""
    return (
        decision.allowed,
        decision.reason,
        decision.message,
        decision.digest,
        decision.inconclusive,
        decision.statement,
        decision.requirement,
        decision.mode,
        decision.subjects,
        decision.cache_hit,
        decision.platform,
        decision.reference,
    )


class ResponseEncoder:
    """A :class:`Decision` → serialized ``VerifyResponse``, memoising cache hits.

    A cache hit's response repeats for every pull of a warm image (the decision comes from the
    same cached entry, with the same reference), so its bytes are kept, keyed by every field
    the response is built from: the memoised bytes always equal
    ``decision_to_proto(decision).SerializeToString()``. Fresh decisions are encoded each time
    (they rarely repeat: the next identical request is a cache hit).

    Args:
        max_entries: Responses remembered (``[cache] response_entries``; least recently used
            dropped first).
    """

    def __init__(self, max_entries: int = _RESPONSE_MEMO) -> None:
        self._memo: Lru[tuple[object, ...], bytes] = Lru(max_entries, name="encoded responses")

    def __call__(self, decision: Decision) -> bytes:
        """The wire form of ``decision_to_proto(decision)``."""
        if not decision.cache_hit:
            return decision_to_proto(decision).SerializeToString()
        key = _response_key(decision)
        known = self._memo.get(key)
        if known is not None:
            return known
        encoded = decision_to_proto(decision).SerializeToString()
        self._memo.put(key, encoded)
        return encoded

    def __len__(self) -> int:
        return len(self._memo)

    def stats(self) -> LruStats:
        """Hits, misses, evictions, size and capacity of the memo."""
        return self._memo.stats()


def _reload_to_proto(view: ReloadView) -> verifier_pb2.ReloadResult:
    return verifier_pb2.ReloadResult(
        ok=view.ok,
        error=view.error,
        finished_unix_ms=view.finished_unix_ms,
        generation=view.generation,
    )


def reload_to_proto(view: ReloadView) -> verifier_pb2.ReloadResponse:
    """A reload result → ``ReloadResponse``."""
    return verifier_pb2.ReloadResponse(result=_reload_to_proto(view))


def status_to_proto(view: StatusView) -> verifier_pb2.StatusResponse:
    """A :class:`StatusView` → ``StatusResponse``."""
    out = verifier_pb2.StatusResponse(
        generation=view.generation,
        hashes=dict(view.hashes),
        degraded=view.degraded,
        degraded_reason=view.degraded_reason,
        cache=verifier_pb2.CacheStats(
            entries=view.cache.entries,
            hits=view.cache.hits,
            misses=view.cache.misses,
            evictions=view.cache.evictions,
            singleflight_joins=view.cache.singleflight_joins,
        ),
        uptime_seconds=view.uptime_seconds,
        problems=list(view.problems),
        version=view.version,
        endpoints=[
            verifier_pb2.EndpointHealth(
                endpoint=state.endpoint,
                healthy=state.healthy,
                consecutive_failures=state.consecutive_failures,
                failures_total=state.failures_total,
                last_error=state.last_error,
                down_for_seconds=state.down_for,
            )
            for state in view.endpoints
        ],
    )
    if view.last_reload is not None:
        out.last_reload.CopyFrom(_reload_to_proto(view.last_reload))
    return out


def denial_to_proto(
    reference: str, reason_name: str, message: str, *, inconclusive: bool = False
) -> verifier_pb2.VerifyResponse:
    """A deny answer for a request that never reached a decision (malformed, internal error)."""
    return verifier_pb2.VerifyResponse(
        allowed=False,
        reason=reason_name,
        message=message,
        reference=reference[:_MAX_FIELD],
        inconclusive=inconclusive,
    )
