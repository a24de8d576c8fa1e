"""What the container-start gate answers for one container (:mod:`pullgate.start.gate`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pullgate.cri.denial import Denial
from pullgate.decision.model import Decision
from pullgate.errors import Reason

__all__ = ["START_SUFFIX", "StartDecision"]

START_SUFFIX = "-start"  # a front end's name for its StartContainer answers: "runtime-start"


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
