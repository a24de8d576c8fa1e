"""One pull's verdict for the CRI proxy: the decision layer's answer, or the denial to send.

Every way a pull can be refused before the runtime is told (a typed domain error, a bug in the
decision layer, a deny) becomes a :class:`~pullgate.cri.denial.Denial`, and then, when a
``waiver`` is configured (the break-glass file, :meth:`pullgate.start.gate.StartGate.waive_pull`),
may still become a ``BREAK_GLASS`` allow: a :class:`~pullgate.decision.model.Decision` with no
digest, so that nothing is pinned to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pullgate.cri.denial import Denial
from pullgate.cri.request import PullRequest
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.errors import PullgateError, Reason

__all__ = ["Waiver", "known_verdict", "pull_verdict"]

log = logging.getLogger(__name__)

Waiver = Callable[[str, Reason, str, Front], bool]
"""(reference, reason, message, front end) -> True when break-glass turns that denial into an
allow (the waiver logs, counts and audits it)."""


def pull_verdict(
    decide: Callable[[DecisionRequest], Decision],
    pull: PullRequest,
    caller: str,
    waiver: Waiver | None = None,
    front: Front = Front.CRI,
) -> Decision | Denial:
    """The allow to act on, or the denial to answer, for ``pull`` (never raises)."""
    verdict = known_verdict(decide, pull, caller, waiver, front)
    if verdict is None:  # decide always answers; fail closed all the same
        return Denial(reason=Reason.INTERNAL, message="pullgate could not decide")
    return verdict


def known_verdict(
    decide: Callable[[DecisionRequest], Decision | None],
    pull: PullRequest,
    caller: str,
    waiver: Waiver | None = None,
    front: Front = Front.CRI,
) -> Decision | Denial | None:
    """:func:`pull_verdict` for a ``decide`` that may not know the answer yet (None: it does
    not, e.g. a cache-only lookup; then nothing was recorded or waived). Never raises."""
    request = DecisionRequest(
        reference=str(pull.reference),
        digest=pull.reference.digest,
        credentials=pull.credentials,
        caller=caller,
        front=front,
    )
    try:
        decision = decide(request)
    except PullgateError as exc:
        denial = Denial.from_error(exc)
    except Exception as exc:  # fail closed on any decision-layer bug
        log.exception("decision layer failed for %s", pull.reference)
        denial = Denial(
            reason=Reason.INTERNAL,
            message=f"pullgate could not decide: {type(exc).__name__}",
        )
    else:
        if decision is None or decision.allowed:
            return decision
        denial = Denial.from_decision(decision)
    if waiver is not None and waiver(str(pull.reference), denial.reason, denial.message, front):
        return Decision(
            allowed=True,
            reason=Reason.BREAK_GLASS,
            message=f"break-glass over {denial.reason.value}: {denial.message}",
            reference=str(pull.reference),
            digest="",  # nothing verified: nothing to pin
        )
    return denial
