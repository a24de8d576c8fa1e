"""Pulls that overlap their verification, with the container-start gate on (docs/decisions.md,
"Overlapped pulls answer before the verdict").

The image proxy starts a pull's decision here, forwards the pull to the runtime, and then asks
:meth:`OverlappedPulls.detach`:

* the verdict is in (a fast deny or allow): a deny removes what the runtime pulled and is
  answered; an allow of a tag is answered at once and its pin (:func:`pullgate.cri.pin.check_pin`:
  the tag in the runtime names the verified content) is checked in the background, as for a late
  allow below;
* it is not: the runtime's answer goes back at once and the job finishes in the background.
  The image cannot start meanwhile: the start gate admits a container only when an allow covers
  its image's content, and a create that comes first verifies (joining this decision's single
  flight). When the verdict comes, a deny -- or, for a tag, a pin that does not hold
  (:func:`pullgate.cri.pin.check_pin`) -- removes what the runtime pulled, is logged at
  WARNING, audited once (``"event": "cri.overlap_denied"``, next to the engine's own decision
  record) and counted (:meth:`OverlapObserver.overlap_denied`).

Only while the gate is in use (a call through it within :data:`GATE_IN_USE`) is a pull answered
before its verdict or its pin; otherwise it waits for both, as without overlap. Bounded:
:data:`OVERLAP_THREADS` decisions and pins at once, at most :data:`MAX_DETACHED` answered pulls
waiting for their verdict or pin (beyond that a pull waits for both, as without overlap).
:meth:`OverlappedPulls.close` waits for the decisions and pins in progress until a deadline,
then concludes every job and pin left with a ``NOT_VERIFIED`` denial: an answered pull's image
is removed and recorded as above, a waiting pull is denied. A shutdown never leaves an image
that was answered before its verdict or pin behind silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from pullgate.cri.denial import Denial
from pullgate.cri.pin import RuntimeImages, check_pin, pinned_by_request, pulled_image
from pullgate.cri.request import PullRequest
from pullgate.decision.model import Decision
from pullgate.errors import Reason

__all__ = ["MAX_DETACHED", "OVERLAP_THREADS", "OverlapObserver", "OverlappedPulls", "Verdict"]

log = logging.getLogger(__name__)

OVERLAP_THREADS = 64
"""Decisions of overlapped pulls running at once."""
MAX_DETACHED = 256
"""Pulls answered before their verdict, at once; beyond that a pull waits for its verdict."""
GATE_IN_USE = 30.0
"""Seconds after the container-start gate's last pass-through call during which it counts as in
use: the kubelet asks its runtime endpoint for the runtime's ``Status`` every 5 s and lists
pods and containers every second (generic PLEG). A kubelet that does not use the gate
(``containerRuntimeEndpoint`` at the runtime) would let an image answered before its verdict
start; without calls through the gate, pulls wait for their verdict."""

Verdict = Decision | Denial
"""An allow to act on, or the denial to answer (:func:`pullgate.cri.verdict.pull_verdict`)."""


class OverlapObserver(Protocol):
    """Counts what overlapped pulls do after their answer (the daemon's metrics)."""

    def overlap_denied(self, reason: str) -> None:
        """A pull answered before its verdict was then denied: its image was removed."""
        ...

    def overlap_pending(self, delta: int) -> None:
        """Pulls answered and still waiting for their verdict changed by ``delta``."""
        ...


class _Job:
    """One pull's decision; the first verdict concluded wins."""

    __slots__ = ("_done", "_lock", "future", "pull", "response", "verdict")

    def __init__(self, pull: PullRequest) -> None:
        self.pull = pull
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.verdict: Verdict | None = None
        self.response: bytes | None = None  # set when answered before the verdict
        self.future: Future[None] | None = None

    def conclude(self, verdict: Verdict) -> tuple[bool, bytes | None]:
        """Record ``verdict`` unless one is in: (whether it was recorded, the runtime's answer
        when the pull was answered before it)."""
        with self._lock:
            if self.verdict is not None:
                return False, None
            self.verdict = verdict
            response = self.response
        self._done.set()
        return True, response

    def detach(self, response: bytes) -> Verdict | None:
        """The verdict if it is in; else None, and the job finishes without its caller."""
        with self._lock:
            if self.verdict is None:
                self.response = response
            return self.verdict

    def wait(self) -> Verdict:
        self._done.wait()
        verdict = self.verdict
        if verdict is None:  # set before _done; fail closed all the same
            return Denial(reason=Reason.INTERNAL, message="no verdict")
        return verdict


class _Pin:
    """An allow of a tag, in before the runtime's pull ended, whose pin is checked after the
    answer; settled once, by the check or by :meth:`OverlappedPulls.close`."""

    __slots__ = ("digest", "future", "pull", "response")

    def __init__(self, pull: PullRequest, digest: str, response: bytes) -> None:
        self.pull = pull
        self.digest = digest
        self.response = response
        self.future: Future[None] | None = None


class OverlappedPulls:
    """Decisions of overlapped pulls and what follows them (see the module docstring).

    Args:
        decide: a pull's verdict (never raises; called on this object's threads).
        images: the runtime's images, to check pins and remove.
        audit: receives one record per pull denied after its answer.
        observer: counts them (None: not counted).
        caller: the caller named in audit records.
        early: whether a pull may be answered before its verdict now (None: always); the
            daemon's is whether the container-start gate is in use (:data:`GATE_IN_USE`).
    """

    def __init__(
        self,
        decide: Callable[[PullRequest], Verdict],
        images: RuntimeImages,
        audit: Callable[[dict[str, Any]], None],
        observer: OverlapObserver | None = None,
        *,
        caller: str = "cri",
        threads: int = OVERLAP_THREADS,
        max_detached: int = MAX_DETACHED,
        early: Callable[[], bool] | None = None,
    ) -> None:
        self._early = early
        self._decide = decide
        self._images = images
        self._audit = audit
        self._observer = observer
        self._caller = caller
        self._max_detached = max_detached
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="pullgate-ovl")
        self._cond = threading.Condition()
        self._jobs: set[_Job] = set()  # not concluded yet
        self._pins: set[_Pin] = set()  # answered, their pin not settled yet
        self._detached = 0
        self._closed = False

    @property
    def detached(self) -> int:
        """Pulls answered and still waiting for their verdict or pin."""
        with self._cond:
            return self._detached

    def begin(self, pull: PullRequest) -> _Job | None:
        """A job for ``pull``, to :meth:`run` once its pull is under way; None when closed
        (decide it before pulling instead)."""
        job = _Job(pull)
        with self._cond:
            if self._closed:
                return None
            self._jobs.add(job)
        return job

    def run(self, job: _Job) -> None:
        """Start deciding ``job`` (once; :meth:`detach`, :meth:`failed` and :meth:`close` make
        sure it was started)."""
        with self._cond:
            if job.future is not None or job not in self._jobs:
                return
            try:
                job.future = self._executor.submit(self._run, job)
            except RuntimeError:  # closed: close() concludes it
                return

    def detach(self, job: _Job, response: bytes) -> Verdict | None:
        """The verdict, for the caller to act on, if it is a deny or an allow needing no pin (or
        when too many pulls wait already, or ``early`` says no: then this waits for it and the
        caller pins); None when the pull is answered now with ``response`` and the job -- the
        decision, or the pin of an allow already in -- finishes in the background."""
        self.run(job)
        if self._early is not None and not self._early():
            return job.wait()
        with self._cond:
            room = self._detached < self._max_detached
            if room:
                self._detached += 1
        if not room:
            return job.wait()
        self._pending(1)
        verdict = job.detach(response)
        if verdict is None:
            return None
        if not isinstance(verdict, Denial) and self._pin_later(job.pull, verdict, response):
            return None
        self._release()
        return verdict

    def _pin_later(self, pull: PullRequest, verdict: Decision, response: bytes) -> bool:
        """Check the pin of an allow in before the pull's end after the answer (holding the
        caller's slot); False when there is none to check or this is closed."""
        if not verdict.digest or pinned_by_request(pull, verdict.digest):
            return False
        pin = _Pin(pull, verdict.digest, response)
        with self._cond:
            if self._closed:
                return False
            self._pins.add(pin)
            pin.future = self._executor.submit(self._check, pin)
        return True

    def _check(self, pin: _Pin) -> None:
        try:
            denial = check_pin(self._images, pin.pull, pin.digest, pin.response)
        except Exception as exc:  # fail closed: never leave it unchecked
            log.exception("checking the pin of %s failed", pin.pull.reference)
            self._images.remove(pulled_image(pin.response) or str(pin.pull.reference))
            denial = Denial(reason=Reason.INTERNAL, message=f"the pin check failed: {exc!r}")
        self._settle(pin, denial)

    def _settle(self, pin: _Pin, denial: Denial | None) -> None:
        """Record ``denial`` (None: the pin held) unless the pin was settled already."""
        with self._cond:
            if pin not in self._pins:
                return
            self._pins.discard(pin)
            self._cond.notify_all()
        try:
            if denial is not None:
                self._record(
                    pin.pull, denial, pulled_image(pin.response) or str(pin.pull.reference)
                )
        finally:
            self._release()

    def failed(self, job: _Job, clean_up: Callable[[PullRequest, str], None]) -> None:
        """After the runtime's pull failed or was cancelled (the runtime may have stored the
        image all the same): wait for the verdict; a denial removes the reference, an allow of a
        tag has ``clean_up`` check what the tag names."""
        self.run(job)
        verdict = job.wait()
        if isinstance(verdict, Denial):
            self._images.remove(str(job.pull.reference))
        elif verdict.digest and not pinned_by_request(job.pull, verdict.digest):
            clean_up(job.pull, verdict.digest)

    def close(self, deadline: float) -> None:
        """Take no more jobs; wait until ``deadline`` (``time.monotonic()``) for decisions and
        pins in progress, then conclude every job and pin left with a ``NOT_VERIFIED`` denial
        (blocking)."""
        with self._cond:
            self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)  # queued work never runs
        with self._cond:
            while True:
                # a job or pin not started by now never will be: the executor is shut down
                futures = [j.future for j in self._jobs] + [p.future for p in self._pins]
                running = [f for f in futures if f is not None and not f.cancelled()]
                left = deadline - time.monotonic()
                if not running or left <= 0:
                    break
                self._cond.wait(left)
            jobs = list(self._jobs)
            pins = list(self._pins)
        for pin in pins:
            log.warning(
                "stopping before the pin of the pull of %s was checked: removing its image",
                pin.pull.reference,
            )
            self._images.remove(pulled_image(pin.response) or str(pin.pull.reference))
            unchecked = Denial(
                reason=Reason.NOT_VERIFIED,
                message=f"pullgate stopped before it checked what {pin.pull.reference} names",
            )
            self._settle(pin, unchecked)
        for job in jobs:
            log.warning(
                "stopping before the decision on the pull of %s was made: denying it",
                job.pull.reference,
            )
            stopped = Denial(
                reason=Reason.NOT_VERIFIED,
                message=f"pullgate stopped before it decided the pull of {job.pull.reference}",
            )
            self._conclude(job, stopped)

    def _run(self, job: _Job) -> None:
        self._conclude(job, self._decide(job.pull))

    def _conclude(self, job: _Job, verdict: Verdict) -> None:
        recorded, response = job.conclude(verdict)
        if not recorded:
            return
        with self._cond:
            self._jobs.discard(job)
            self._cond.notify_all()
        if response is None:
            return
        try:
            self._finish(job.pull, verdict, response)
        except Exception:  # a background finish must never kill the worker silently
            log.exception("finishing the overlapped pull of %s failed", job.pull.reference)
        finally:
            self._release()

    def _finish(self, pull: PullRequest, verdict: Verdict, response: bytes) -> None:
        """Act on the verdict of a pull answered before it."""
        image = pulled_image(response) or str(pull.reference)
        if isinstance(verdict, Denial):
            denial: Denial | None = verdict
            self._images.remove(image)  # a failure is logged at CRITICAL
        elif verdict.digest and not pinned_by_request(pull, verdict.digest):
            denial = check_pin(self._images, pull, verdict.digest, response)  # removes on a deny
        else:
            denial = None
        if denial is not None:
            self._record(pull, denial, image)

    def _record(self, pull: PullRequest, denial: Denial, image: str) -> None:
        """Log, audit and count a pull denied after its answer (its image removed)."""
        log.warning(
            "CRI pull of %r was answered before its verdict and then denied: %s; removed %s",
            pull.image,
            denial.text,
            image,
        )
        self._audit(
            {
                "event": "cri.overlap_denied",
                "decision": "deny",
                "reason": denial.reason.value,
                "message": denial.message,
                "reference": str(pull.reference),
                "image": image,
                "pod": pull.pod,
                "caller": self._caller,
            }
        )
        if self._observer is not None:
            self._observer.overlap_denied(denial.reason.value)

    def _pending(self, delta: int) -> None:
        if self._observer is not None:
            self._observer.overlap_pending(delta)

    def _release(self) -> None:
        with self._cond:
            self._detached -= 1
        self._pending(-1)
