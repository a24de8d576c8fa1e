"""What the container-start gate answers for one container (:mod:`pullgate.start.gate`)."""

from __future__ import annotations

from dataclasses import dataclass

from pullgate.cri.denial import Denial
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
