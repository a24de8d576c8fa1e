"""The container-start gate's core, shared by every start-time front end (CRI RuntimeService
proxy, NRI plugin): admit a container only when a current allow covers its image's content.

A container is asked for with an image ID (the config digest of the image the runtime stored)
and the reference the pod wrote. The gate answers, in this order:

1. **Critical images** (``[cri] critical_images``, :mod:`pullgate.oci.critical`) matched against
   the requested reference: allowed without verification, ``SKIPPED_BY_POLICY``, logged at
   WARNING and audited, as at pull time.
2. **A current allow** in the :class:`~pullgate.start.verdicts.VerdictStore` for that image ID
   in the requested repository (any repository when the pod names the image by ID): allowed
   with the allow's reason. This is :meth:`StartGate.check_local`: memory only, never I/O, the
   answer NRI must give within containerd's plugin timeout.
3. Otherwise, :meth:`StartGate.check` (RuntimeService gate) verifies *now*, through the same
   decision engine and cache as pulls, the requested reference, then the image's repo digests
   and tags in the requested repository as the runtime reports them (``ImageStatus``), and
   requires the verified manifest's config digest to equal the image ID. A different config
   digest is a definitive deny, ``CONTENT_MISMATCH``: the runtime stored other content than the one
   verified (another platform, a re-tagged import, an index that resolves differently).
   :meth:`check_local` instead denies ``NOT_VERIFIED``, and the front end may start
   :meth:`StartGate.verify_in_background` so a retry finds the allow.
4. **Break-glass** (:mod:`pullgate.start.break_glass`): a denial becomes a ``BREAK_GLASS`` allow
   while a valid file covers the reference; logged at WARNING every time and audited.

Every answer is a :class:`StartDecision`; denials render like the image proxy's
(:class:`pullgate.cri.denial.Denial`): ``SignatureValidationFailed: <REASON>: … (fix: …)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from pullgate.common.descriptor import is_digest
from pullgate.common.lru import Lru
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.errors import MalformedInput, Reason, is_inconclusive
from pullgate.oci.critical import CriticalImages
from pullgate.registry.reference import parse_reference
from pullgate.start.break_glass import BreakGlass
from pullgate.start.decision import MAX_CANDIDATES, StartDecision, verify_now
from pullgate.start.verdicts import CoveredImage, Lookup, VerdictStore, repository_of

__all__ = ["MAX_CANDIDATES", "StartDecision", "StartGate"]

log = logging.getLogger(__name__)

Settle = Callable[[], StartDecision]  # counts and audits an answer taken from memory
_MAX_BACKGROUND = 256  # distinct verifications queued or running at once
_REPOSITORIES = 1024  # references whose repository is remembered


class StartGate:
    """Decides container starts (see the module docstring). Thread-safe.

    Args:
        store: Allows recorded by the decision layer.
        snapshot: The digest of the trust snapshot in force (None before the first one).
        decide: The decision engine (synchronous; the daemon's, with its cache and audit).
        critical: Critical-image allowlist entries.
        break_glass: The break-glass file, when configured.
        audit: Receives one audit dict per answer.
        max_age: Seconds a recorded allow stays current (None: until the next reload); the
            daemon's is the decision cache's ``max_ttl``.
    """

    def __init__(
        self,
        *,
        store: VerdictStore,
        snapshot: Callable[[], str | None],
        decide: Callable[[DecisionRequest], Decision],
        critical: Sequence[str] = (),
        break_glass: BreakGlass | None = None,
        audit: Callable[[dict[str, object]], None] | None = None,
        background_workers: int = 4,
        max_age: Callable[[], float | None] | None = None,
    ) -> None:
        self.store = store
        self._snapshot = snapshot
        self._max_age = max_age
        self._decide = decide
        self.critical = CriticalImages.parse(critical)
        self.break_glass = break_glass
        self._audit = audit
        self._lock = threading.Lock()
        self._background: set[tuple[str, str]] = set()
        self._executor = ThreadPoolExecutor(background_workers, thread_name_prefix="pullgate-bg")
        self.counts: dict[tuple[str, str], int] = {}
        self._repositories: Lru[str, str] = Lru(_REPOSITORIES, name="start repositories")

    def close(self) -> None:
        """Stop background verification."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def counts_snapshot(self) -> dict[tuple[str, str], int]:
        """Answers so far by (result, reason)."""
        with self._lock:
            return dict(self.counts)

    # ------------------------------------------------------------------ the two checks

    def check_local(
        self, image_id: str, reference: str, *, front: str = "nri", answer: bool = True
    ) -> StartDecision:
        """Decide from memory only (critical images, the store, break-glass); never I/O.
        ``answer`` False: not yet counted and audited (the caller gives :meth:`answer` the
        decision it finally answers)."""
        decision = self._waive(self._local(image_id, reference))
        return self._finish(decision, front) if answer else decision

    def check(
        self,
        image_id: str,
        reference: str,
        repo_digests: Sequence[str] = (),
        repo_tags: Sequence[str] = (),
        *,
        front: str = Front.RUNTIME_GATE.value,
        enforce: bool = True,
        answer: bool = True,
        names: Callable[[], tuple[Sequence[str], Sequence[str]]] | None = None,
    ) -> StartDecision:
        """Decide, verifying now when no current allow covers the image (may use the network,
        bounded by the engine's decision budget). ``repo_digests`` and ``repo_tags`` are the
        runtime's names for the image (``repository@digest``, ``repository:tag``); ``names``,
        when given, supplies them only if they are needed (a current allow needs none).
        ``enforce`` False (the node audit): no break-glass, not counted, not audited;
        ``answer`` False: break-glass applied, not yet counted and audited (see :meth:`answer`)."""
        decision = self._local(image_id, reference)
        if not decision.allowed and decision.reason is Reason.NOT_VERIFIED:
            if names is not None:
                repo_digests, repo_tags = names()
            candidates = [reference, *repo_digests, *repo_tags]
            decision = verify_now(self._decide, image_id, reference, candidates, Front.named(front))
        if not enforce:
            return decision
        decision = self._waive(decision)
        return self._finish(decision, front) if answer else decision

    def answer(self, decision: StartDecision, front: str) -> StartDecision:
        """``decision`` as a front end answers it: break-glass applied, counted and audited
        once (for a decision taken with ``answer=False``, or built by the front end)."""
        return self._finish(self._waive(decision), front)

    def deny_unknown(self, image: str, reference: str, detail: str, *, front: str) -> StartDecision:
        """The answer for a container whose image the runtime does not know (or the lookup
        failed): a denial, subject to break-glass like any other."""
        message = f"the runtime has no image {image!r}: {detail}"
        return self.refuse(image, reference, Reason.IMAGE_UNKNOWN, message, front=front)

    def refuse(
        self,
        image_id: str,
        reference: str,
        reason: Reason,
        message: str,
        *,
        front: str,
    ) -> StartDecision:
        """A definitive denial a front end found itself (e.g. ``CONTENT_MISMATCH`` when the
        container holds other content than its create was decided on), subject to break-glass
        like any other."""
        decision = StartDecision(
            allowed=False,
            reason=reason,
            message=message,
            image_id=image_id,
            reference=reference,
            inconclusive=is_inconclusive(reason),
        )
        return self._finish(self._waive(decision), front)

    def waive_pull(
        self, reference: str, reason: Reason, message: str, front: Front = Front.CRI
    ) -> bool:
        """Break-glass for a denied pull: True (logged at WARNING, counted, audited) when a
        valid break-glass file covers ``reference``."""
        if self.break_glass is None:
            return False
        grant = self.break_glass.grant(reference)
        if grant is None:
            return False
        log.warning(
            "BREAK-GLASS: pull of %s allowed although denied with %s: %s (file %s, expires %s%s)",
            reference,
            reason.value,
            message,
            self.break_glass.path,
            grant.expires.isoformat(),
            f", note: {grant.note}" if grant.note else "",
        )
        with self._lock:
            key = ("allow", Reason.BREAK_GLASS.value)
            self.counts[key] = self.counts.get(key, 0) + 1
        if self._audit is not None:
            self._audit(
                {
                    "event": "cri.pull",
                    "front": front.value,
                    "decision": "allow",
                    "reason": Reason.BREAK_GLASS.value,
                    "denied_with": reason.value,
                    "message": message,
                    "reference": reference,
                    "break_glass": True,
                }
            )
        return True

    def verify_in_background(
        self, reference: str, digest: str, *, front: Front = Front.RUNTIME_GATE
    ) -> bool:
        """Start verifying ``reference`` pinned to ``digest`` (index, manifest or repo digest),
        so that a later create finds a current allow. False when it is already running, the
        queue is full or the reference names no repository."""
        try:
            ref = parse_reference(reference).with_digest(digest)
        except MalformedInput:
            return False
        key = (ref.locator, digest)
        with self._lock:
            if key in self._background or len(self._background) >= _MAX_BACKGROUND:
                return False
            self._background.add(key)

        def run() -> None:
            try:
                self._decide(DecisionRequest(reference=str(ref), caller="start-gate", front=front))
            except Exception:
                log.exception("background verification of %s failed", ref)
            finally:
                with self._lock:
                    self._background.discard(key)

        try:
            self._executor.submit(run)
        except RuntimeError:  # shut down
            with self._lock:
                self._background.discard(key)
            return False
        return True

    # ------------------------------------------------------------------ steps

    def current_allow(self, image_id: str, reference: str, *, front: str) -> Settle | None:
        """A current record's allow of ``image_id`` for ``reference``, from memory only (one
        store lookup, nothing logged): what counts and audits it, once, as :meth:`check`
        would (call it after acting on the allow). None when :meth:`check` must decide (a
        critical entry matches, no trust configuration, no current allow)."""
        if self._critical_entry(reference) is not None:
            return None
        looked = self._lookup(image_id, reference)
        if looked is None or looked[0].current is None:
            return None
        return partial(self._finish_allow, image_id, reference, looked[0].current, front)

    def _finish_allow(
        self, image_id: str, reference: str, covered: CoveredImage, front: str
    ) -> StartDecision:
        return self._finish(_allowed_as(image_id, reference, covered), front)

    def _lookup(self, image_id: str, reference: str) -> tuple[Lookup, str, float | None] | None:
        """The verdict store's records of ``image_id`` for ``reference`` under the trust
        configuration in force, with that configuration's digest and the age limit applied
        (None: no trust configuration is loaded)."""
        snapshot = self._snapshot()
        if snapshot is None:
            return None
        max_age = self._max_age() if self._max_age is not None else None
        found = self.store.lookup(image_id, self._repository(reference), snapshot, max_age)
        return found, snapshot, max_age

    def _repository(self, reference: str) -> str | None:
        """:func:`repository_of`, remembered for the references seen last."""
        known = self._repositories.get(reference)
        if known is None:
            known = repository_of(reference) or ""
            self._repositories.put(reference, known)
        return known or None

    def _local(self, image_id: str, reference: str) -> StartDecision:
        entry = self._critical_entry(reference)
        if entry is not None:
            log.warning(
                "start of %s (%s) allowed WITHOUT verification: critical image entry %r",
                reference,
                image_id,
                entry,
            )
            return StartDecision(
                allowed=True,
                reason=Reason.SKIPPED_BY_POLICY,
                message=f"critical image entry {entry!r}",
                image_id=image_id,
                reference=reference,
                critical=True,
            )
        return self._stored(image_id, reference)

    def _stored(self, image_id: str, reference: str) -> StartDecision:
        """What the verdict store says (critical entries aside): a current allow, or a
        ``NOT_VERIFIED`` (``CONFIG`` without a trust configuration) denial to verify."""
        looked = self._lookup(image_id, reference)
        if looked is None:
            return StartDecision(
                allowed=False,
                reason=Reason.CONFIG,
                message="no valid trust configuration is loaded",
                image_id=image_id,
                reference=reference,
                inconclusive=is_inconclusive(Reason.CONFIG),
            )
        found, snapshot, max_age = looked
        if found.current is not None:
            return _allowed_as(image_id, reference, found.current)
        repository = self._repository(reference)
        where = f" in {repository}" if repository else ""
        message = f"no allow under the current trust configuration covers image {image_id}{where}"
        if found.previous is not None and found.previous.snapshot == snapshot:
            message += f" (its allow is older than {max_age:g} s: verifying again)"
        elif found.previous is not None:
            message += " (it was allowed under an earlier trust configuration)"
        return StartDecision(
            allowed=False,
            reason=Reason.NOT_VERIFIED,
            message=message,
            image_id=image_id,
            reference=reference,
            inconclusive=True,
        )

    def _critical_entry(self, reference: str) -> str | None:
        critical = self.critical
        if not (critical.digests or critical.references or critical.patterns):
            return None  # no entries: nothing to parse
        if is_digest(reference):  # asked for by image ID: only a digest entry can match
            return reference if reference in self.critical.digests else None
        try:
            return self.critical.match(parse_reference(reference))
        except MalformedInput:
            return None

    def _waive(self, decision: StartDecision) -> StartDecision:
        if decision.allowed or self.break_glass is None:
            return decision
        grant = self.break_glass.grant(decision.reference)
        if grant is None:
            return decision
        log.warning(
            "BREAK-GLASS: start of %s (%s) allowed although denied with %s: %s "
            "(file %s, expires %s%s)",
            decision.reference,
            decision.image_id,
            decision.reason.value,
            decision.message,
            self.break_glass.path,
            grant.expires.isoformat(),
            f", note: {grant.note}" if grant.note else "",
        )
        return replace(
            decision,
            allowed=True,
            reason=Reason.BREAK_GLASS,
            break_glass=True,
            message=f"break-glass (expires {grant.expires.isoformat()}) over "
            f"{decision.reason.value}: {decision.message}",
        )

    def _finish(self, decision: StartDecision, front: str) -> StartDecision:
        key = ("allow" if decision.allowed else "deny", decision.reason.value)
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
        if self._audit is not None:
            self._audit(decision.audit(front))
        return decision


def _allowed_as(image_id: str, reference: str, covered: CoveredImage) -> StartDecision:
    """The allow a current record gives."""
    return StartDecision(
        allowed=True,
        reason=covered.reason,
        message=f"allowed as {covered.repository}@{covered.top_digest} "
        f"(statement {covered.statement})",
        image_id=image_id,
        reference=reference,
    )
