"""How a denied ``PullImage`` reads in ``kubectl describe pod``.

The kubelet (>= 1.28) turns a gRPC status with code ``Unknown`` whose message *starts with*
``SignatureValidationFailed`` or ``RegistryUnavailable`` into the container waiting reason of the
same name, and strips nothing else; any other code keeps the ``rpc error: code = … desc = …``
prefix and ends up as ``ErrImagePull``. So every denial is code ``UNKNOWN`` with the text::

    SignatureValidationFailed: <REASON>: <message> (fix: <hint>)
    RegistryUnavailable: <REASON>: <message> (fix: <hint>)

Which prefix a reason gets, and its fix hint, come from the reason table
(:data:`pullgate.errors.REASONS`): ``RegistryUnavailable`` for inconclusive reasons (retryable:
network, timeouts, unknown revocation status), ``SignatureValidationFailed`` for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pullgate.decision.model import Decision
from pullgate.errors import (
    CRI_DEFINITIVE_PREFIX,
    CRI_INCONCLUSIVE_PREFIX,
    PullgateError,
    Reason,
    reason_row,
)

MAX_MESSAGE_CHARS = 3000  # the kubelet copies the text into events and pod status


class DenialKind(StrEnum):
    """The kubelet-recognised prefix of a denial message (the reason table's CRI prefix)."""

    SIGNATURE = CRI_DEFINITIVE_PREFIX
    REGISTRY = CRI_INCONCLUSIVE_PREFIX


def fix_hint(reason: Reason) -> str:
    """The operator-facing fix hint for ``reason`` (from the reason table)."""
    return reason_row(reason).fix


@dataclass(frozen=True, slots=True, kw_only=True)
class Denial:
    """A refused pull as the proxy reports it to the kubelet; its kind follows the reason."""

    reason: Reason
    message: str

    @property
    def kind(self) -> DenialKind:
        """The prefix the reason table gives ``reason``."""
        return DenialKind(reason_row(self.reason).cri_prefix)

    @property
    def text(self) -> str:
        """The gRPC status message (begins with ``kind`` and ``": "``)."""
        body = " ".join(self.message.split())  # one line, whatever the source produced
        text = f"{self.kind.value}: {self.reason.value}: {body} (fix: {fix_hint(self.reason)})"
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 3] + "..."
        return text

    @classmethod
    def from_decision(cls, decision: Decision) -> Denial:
        """The denial for a decision that does not allow the pull."""
        return cls(reason=decision.reason, message=decision.message)

    @classmethod
    def from_error(cls, err: PullgateError) -> Denial:
        """The denial for a domain error raised while deciding."""
        return cls(reason=err.reason, message=err.detail)
