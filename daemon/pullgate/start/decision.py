"""What the container-start gate answers for one container (:mod:`pullgate.start.gate`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pullgate.cri.denial import Denial
from pullgate.decision.model import Decision, DecisionRequest, Front
from pullgate.errors import PullgateError, Reason
from pullgate.start.verdicts import repository_of

__all__ = ["MAX_CANDIDATES", "START_SUFFIX", "StartDecision", "judged", "verify_now"]

START_SUFFIX = "-start"  # a front end's name for its StartContainer answers: "runtime-start"
MAX_CANDIDATES = 4  # repo digests verified for one create, at most


@dataclass(frozen=True, slots=True, kw_only=True)
class StartDecision:
    """The gate's answer for one container."""

    allowed: bool
    reason: Reason
    message: str
    image_id: str
    reference: str  # as the pod asked
    inconclusive: bool = False  # a retry may succeed (registry down, not yet verified)
    critical: bool = False
    break_glass: bool = False
    verified_now: bool = False  # the full check verified it on this call

    @property
    def denial(self) -> Denial:
        """How a denial reads for the kubelet (prefix, reason, message, fix: the reason table)."""
        return Denial(reason=self.reason, message=self.message)

    def audit(self, front: str) -> dict[str, object]:
        """The audit line of this answer (``start.start`` from a StartContainer front end,
        named ``<front>-start``; ``start.create`` otherwise)."""
        return {
            "event": "start.start" if front.endswith(START_SUFFIX) else "start.create",
            "front": front,
            "decision": "allow" if self.allowed else "deny",
            "reason": self.reason.value,
            "message": self.message,
            "image_id": self.image_id,
            "reference": self.reference,
            "critical": self.critical,
            "break_glass": self.break_glass,
            "verified_now": self.verified_now,
        }


def judged(base: StartDecision, candidate: str, decision: Decision) -> StartDecision:
    """The start answer once the engine decided ``candidate`` for ``base``'s image: an allow
    counts only when the verified manifest's config digest is the image ID (a fail-open or
    audit-only allow passes as the statement says)."""
    if not decision.allowed:
        return replace(
            base,
            reason=decision.reason,
            message=decision.message,
            inconclusive=decision.inconclusive,
        )
    if decision.fail_open or decision.audit_denied:  # the statement says let it through
        return replace(base, allowed=True, reason=decision.reason, message=decision.message)
    configs = [c.config_digest for c in decision.content]
    if base.image_id in configs:
        return replace(
            base,
            allowed=True,
            reason=decision.reason,
            message=f"verified {candidate} now",
        )
    if not configs:
        return replace(
            base,
            reason=Reason.REGISTRY_ERROR,
            inconclusive=True,
            message=f"verified {candidate} but could not read its manifest's config digest",
        )
    return replace(
        base,
        reason=Reason.CONTENT_MISMATCH,
        message=f"{candidate} verified for {decision.platform} with config "
        f"{', '.join(configs)}, but the runtime's image is {base.image_id}",
    )


def verify_now(
    decide: Callable[[DecisionRequest], Decision],
    image_id: str,
    reference: str,
    names: Sequence[str],
    front: Front,
) -> StartDecision:
    """Verify the image's names in the requested repository (any repository when it was
    asked for by ID): the requested reference first (what the pod asked for), then the
    runtime's digests, then its tags. A tag is as good as a digest here, because the
    verified manifest's config digest must equal the image ID, and the config pins every
    layer (``rootfs.diff_ids``). The first allow wins; otherwise the first denial stands."""
    repository = repository_of(reference)
    candidates = [
        name
        for name in dict.fromkeys(names)
        if repository_of(name) is not None
        and (repository is None or repository_of(name) == repository)
    ][:MAX_CANDIDATES]
    base = StartDecision(
        allowed=False,
        reason=Reason.NOT_VERIFIED,
        message="",
        image_id=image_id,
        reference=reference,
        verified_now=True,
    )
    if not candidates:
        where = f" in {repository}" if repository else ""
        return replace(
            base,
            message=f"image {image_id} has no digest{where} that could be verified",
        )
    denied: list[StartDecision] = []
    for candidate in candidates:
        try:
            decision = decide(
                DecisionRequest(reference=candidate, caller="start-gate", front=front)
            )
        except PullgateError as exc:
            denied.append(
                replace(base, reason=exc.reason, message=exc.detail, inconclusive=exc.inconclusive)
            )
            continue
        answer = judged(base, candidate, decision)
        if answer.allowed:
            return answer
        denied.append(answer)
    return denied[0]
