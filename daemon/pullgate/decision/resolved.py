"""A reference pinned to what its store serves: the first step of every decision."""

from __future__ import annotations

from dataclasses import dataclass

from pullgate.common.descriptor import Descriptor
from pullgate.errors import Reason, VerificationFailed
from pullgate.registry.model import ImageReference
from pullgate.registry.store import Store

__all__ = ["Resolved", "resolve"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """A reference pinned to what the store serves."""

    reference: ImageReference
    target: Descriptor

    @property
    def policy_reference(self) -> str:
        """``registry/repository@digest`` used for statement selection."""
        return self.reference.policy_reference(self.target.digest)


def resolve(store: Store, ref: ImageReference) -> Resolved:
    """Resolve a tag or digest reference to the store's descriptor.

    Raises:
        PullgateError: store trouble, or a digest the store does not serve.
    """
    target = store.resolve(ref)
    if ref.digest is not None and target.digest != ref.digest:
        raise VerificationFailed(
            Reason.MALFORMED,
            f"registry resolved {ref} to {target.digest}, not the requested digest",
        )
    return Resolved(reference=ref.with_digest(target.digest), target=target)
