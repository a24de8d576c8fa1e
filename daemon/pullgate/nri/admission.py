"""``CreateContainer`` decided from local state, and the audit of existing containers.

The image a container runs is ``Container.image.config_digest`` (the image ID); the reference
the pod asked for is the ``io.kubernetes.cri.image-name`` annotation. ``Image.name`` is not
used: containerd fills it with the first reference it stores for those bytes, so an unsigned
repository sharing content with a signed one would show the signed name. A container without
the annotation (not created through CRI) is judged by image ID alone, as the start gate judges
a pod that names its image by ID.

:meth:`NriGate.admit` asks :meth:`pullgate.start.gate.StartGate.check_local` (memory only). When
no current allow covers the image it answers at once with a refusal and, in a worker thread,
runs the gate's full check (verify ``repository@Image.digest`` through the engine, require the
verified config digest to equal the image ID):

* the first refusal is ``VERIFICATION_STARTED`` (inconclusive): the kubelet retries, and the
  retry finds the allow the verification recorded;
* a verification that denies is remembered (:class:`Outcomes`, keyed by image ID, reference
  and trust snapshot, for ``recheck_after`` seconds), so retries are refused with its reason
  (``NO_SIGNATURE``, ``UNTRUSTED`` …) instead of starting it again.

:meth:`NriGate.audit` re-checks every known container (after ``Synchronize`` and after each trust
reload): the same background check, one finding per container, the
``pullgate_nri_unverified_containers`` gauge, and — only when ``[nri] evict`` is on — an eviction
request for each container whose image is now definitively denied, at most
``evict_per_minute`` per minute, each audited.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from pullgate.common.lru import Lru, LruStats
from pullgate.errors import MalformedInput, Reason
from pullgate.nri.plugin import Admission
from pullgate.nri.wire import api_pb2
from pullgate.registry.reference import parse_reference
from pullgate.start.decision import START_SUFFIX
from pullgate.start.gate import StartDecision

__all__ = ["IMAGE_NAME_ANNOTATION", "NriGate", "Outcomes", "StartChecks"]

log = logging.getLogger(__name__)

IMAGE_NAME_ANNOTATION = "io.kubernetes.cri.image-name"
_MAX_INFLIGHT = 256


class StartChecks(Protocol):
    """The start gate as NRI uses it (:class:`pullgate.start.gate.StartGate`)."""

    def check_local(
        self, image_id: str, reference: str, *, front: str = ..., answer: bool = ...
    ) -> StartDecision:
        """Memory-only decision (``answer`` False: not yet counted and audited)."""
        ...

    def check(
        self,
        image_id: str,
        reference: str,
        repo_digests: Sequence[str],
        *,
        front: str = ...,
        answer: bool = ...,
    ) -> StartDecision:
        """Full decision, verifying now when needed (``answer`` as for :meth:`check_local`)."""
        ...

    def answer(self, decision: StartDecision, front: str) -> StartDecision:
        """Count and audit the answer given (once per answer)."""
        ...


@dataclass(frozen=True, slots=True)
class _Key:
    image_id: str
    reference: str
    snapshot: str


class Outcomes:
    """Recent background-check denials (an LRU of ``max_entries``, ``[cache]
    nri_denial_entries``; only under the snapshot that made them)."""

    def __init__(
        self, ttl: float, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._items: Lru[_Key, tuple[float, StartDecision]] = Lru(
            max_entries, name="nri background denials"
        )

    def stats(self) -> LruStats:
        """Hits, misses, evictions, size and capacity of the denial memory."""
        return self._items.stats()

    def put(self, key: _Key, decision: StartDecision) -> None:
        self._items.put(key, (self._clock(), decision))

    def get(self, key: _Key) -> StartDecision | None:
        found = self._items.peek(key)
        if found is None:
            return None
        if self._clock() - found[0] > self._ttl:
            self._items.pop(key)
            return None
        return found[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Known:
    container_id: str
    image_id: str
    reference: str
    digest: str
    name: str


class NriGate:
    """The :class:`pullgate.nri.plugin.Gatekeeper` of the daemon (see the module docstring).

    Args:
        gate: the start gate.
        snapshot: digest of the trust snapshot in force (None before the first).
        observe: called with (allowed, reason, seconds) for every create answered.
        evict: asks the runtime to stop ``(container id, reason)`` pairs (None: never evicts).
        evict_per_minute: eviction budget.
        recheck_after: seconds a background denial is reused before verifying again.
        max_denials: background denials remembered (``[cache] nri_denial_entries``, read at
            start).
    """

    def __init__(
        self,
        gate: StartChecks,
        snapshot: Callable[[], str | None],
        *,
        observe: Callable[[bool, str, float], None] | None = None,
        unverified: Callable[[str, int], None] | None = None,
        evict: Callable[[list[tuple[str, str]]], None] | None = None,
        evict_per_minute: int = 6,
        recheck_after: float = 30.0,
        max_denials: int = 4096,
        workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gate = gate
        self._snapshot = snapshot
        self._observe = observe
        self._unverified = unverified
        self._evict = evict
        self._evict_per_minute = evict_per_minute
        self._clock = clock
        self.outcomes = Outcomes(recheck_after, clock, max_denials)
        self._lock = threading.Lock()
        self._inflight: set[_Key] = set()
        self._known: dict[str, _Known] = {}
        self._syncing: dict[str, _Known] | None = None  # Synchronize parts received so far
        self._evicted: list[float] = []
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="pullgate-nri")
        self.request_timeout = 2.0  # seconds, from Configure

    def close(self) -> None:
        """Stop background checks."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ Gatekeeper

    def configured(self, request: api_pb2.ConfigureRequest) -> None:
        if request.request_timeout > 0:
            self.request_timeout = request.request_timeout / 1000
        with self._lock:
            self._syncing = None  # a new connection: its Synchronize starts afresh

    def admit(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        return self._admit(pod, container, "create")

    def admit_start(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        """A start is decided like a create, on the image the container holds: an allow that
        lapsed after the create (reload, revocation, break-glass expired) stops it here."""
        return self._admit(pod, container, "start")

    def _admit(self, pod: api_pb2.PodSandbox, container: api_pb2.Container, what: str) -> Admission:
        started = time.perf_counter()
        known = _known(container)
        decision = self._decide(known, "nri" if what == "create" else f"nri{START_SUFFIX}")
        if self._observe is not None and what == "create":  # the creates metric
            self._observe(decision.allowed, decision.reason.value, time.perf_counter() - started)
        if decision.allowed:
            with self._lock:
                self._known[known.container_id] = known
            return Admission(allowed=True)
        log.info(
            "NRI: %s of %s/%s refused: %s",
            what,
            pod.namespace,
            container.name,
            decision.denial.text,
        )
        return Admission(allowed=False, message=decision.denial.text)

    def synchronized(self, containers: Sequence[api_pb2.Container], *, complete: bool) -> None:
        """The runtime's full list replaces what was known: containers that ended while the
        plugin was away, or creates that failed after they were allowed, are forgotten (they
        would be audited and use up the eviction budget)."""
        with self._lock:
            syncing = self._syncing if self._syncing is not None else {}
            for container in containers:
                syncing[container.id] = _known(container)
            if complete:
                self._known, self._syncing = syncing, None
            else:
                self._syncing = syncing
        if complete:
            self.audit("synchronize")

    def created(self, container: api_pb2.Container) -> None:
        with self._lock:
            self._known[container.id] = _known(container)

    def removed(self, container: api_pb2.Container) -> None:
        with self._lock:
            self._known.pop(container.id, None)

    # ------------------------------------------------------------------ decisions

    def _decide(self, known: _Known, front: str) -> StartDecision:
        """The answer for ``known``, counted and audited once, with the reason answered."""
        return self._gate.answer(self._decision(known, front), front)

    def _decision(self, known: _Known, front: str) -> StartDecision:
        if not known.image_id:
            return _refusal(known, Reason.MALFORMED, "the runtime did not say which image")
        gate = self._gate
        decision = gate.check_local(known.image_id, known.reference, front=front, answer=False)
        if decision.allowed or decision.reason is not Reason.NOT_VERIFIED:
            return decision
        snapshot = self._snapshot()
        if snapshot is None:
            return decision
        key = _Key(known.image_id, known.reference, snapshot)
        remembered = self.outcomes.get(key)
        if remembered is not None:
            return remembered
        self._check_in_background(key, known, "create")
        return replace(
            decision,
            reason=Reason.VERIFICATION_STARTED,
            inconclusive=True,
            message=f"{decision.message}; verification has started, a retry will find its result",
        )

    def _check_in_background(self, key: _Key, known: _Known, why: str) -> bool:
        with self._lock:
            if key in self._inflight or len(self._inflight) >= _MAX_INFLIGHT:
                return False
            self._inflight.add(key)
        try:
            self._executor.submit(self._check, key, known, why)
        except RuntimeError:  # shut down
            with self._lock:
                self._inflight.discard(key)
            return False
        return True

    def _check(self, key: _Key, known: _Known, why: str) -> None:
        try:
            digests = [d for d in (_pinned(known),) if d]
            # Not an answer: the create or start that finds this outcome answers (and records) it.
            decision = self._gate.check(
                known.image_id, known.reference, digests, front=f"nri-{why}", answer=False
            )
            if not decision.allowed and not decision.inconclusive:
                self.outcomes.put(key, decision)
                self._withdrawn(key, decision)
        except Exception:
            log.exception("NRI background check of %s failed", known.reference)
        finally:
            with self._lock:
                self._inflight.discard(key)

    # ------------------------------------------------------------------ audit

    def audit(self, why: str) -> int:
        """Re-check every known container now (in the background where needed); the number
        without a current allow. Evicts definitively denied ones when eviction is on."""
        with self._lock:
            known = list(self._known.values())
        unverified = 0
        evictions: list[tuple[str, str]] = []
        for item in known:
            decision = self._decide(item, f"nri-{why}")
            if decision.allowed:
                continue
            unverified += 1
            log.warning(
                "NRI audit (%s): container %s (%s, image %s) has no current allow: %s",
                why,
                item.container_id,
                item.reference,
                item.image_id,
                decision.reason.value,
            )
            if not decision.inconclusive:
                evictions.append((item.container_id, decision.denial.text))
        log.info(
            "NRI audit (%s): %d container(s), %d without a current allow",
            why,
            len(known),
            unverified,
        )
        if self._unverified is not None:
            self._unverified(why, unverified)
        self._request_evictions(evictions)
        return unverified

    def _withdrawn(self, key: _Key, decision: StartDecision) -> None:
        """Evict the known containers of an image a background check denied definitively."""
        with self._lock:
            running = [
                k.container_id
                for k in self._known.values()
                if (k.image_id, k.reference) == (key.image_id, key.reference)
            ]
        self._request_evictions([(c, decision.denial.text) for c in running])

    def _request_evictions(self, evictions: list[tuple[str, str]]) -> None:
        if self._evict is None or not evictions:
            return
        now = self._clock()
        with self._lock:
            self._evicted = [t for t in self._evicted if now - t < 60.0]
            budget = max(self._evict_per_minute - len(self._evicted), 0)
            chosen = evictions[:budget]
            self._evicted.extend(now for _ in chosen)
        for container_id, reason in chosen:
            log.warning("NRI: evicting container %s: %s", container_id, reason)
        if len(chosen) < len(evictions):
            log.warning("NRI: %d eviction(s) deferred (rate limit)", len(evictions) - len(chosen))
        if chosen:
            self._evict(chosen)


def _known(container: api_pb2.Container) -> _Known:
    image = container.image
    return _Known(
        container_id=container.id,
        image_id=image.config_digest,
        reference=container.annotations.get(IMAGE_NAME_ANNOTATION, "") or image.config_digest,
        digest=image.digest,
        name=container.name,
    )


def _pinned(known: _Known) -> str | None:
    """``repository@digest`` for the requested reference and the runtime's image digest."""
    if not known.digest or known.reference == known.image_id:
        return None
    try:
        return str(parse_reference(known.reference).with_digest(known.digest))
    except MalformedInput:
        return None


def _refusal(known: _Known, reason: Reason, message: str) -> StartDecision:
    return StartDecision(
        allowed=False,
        reason=reason,
        message=message,
        image_id=known.image_id,
        reference=known.reference,
    )
