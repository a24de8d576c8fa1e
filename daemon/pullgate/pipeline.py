"""One image through the pipeline: reference → hosts → registry → signatures → verification.

Shared by the CLI and (later) the daemon. Registry trouble and policy problems become a denied
:class:`VerificationOutcome` with a typed reason; nothing here raises for a verdict.

The reference used for trust-policy statement selection is ``<registry>/<repository>@<digest>``
of the *normalised* reference (``nginx`` → ``docker.io/library/nginx@sha256:…``), because that is
what containerd pulls; notation matches the reference as typed. See the README decision log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pullgate.descriptor import Descriptor
from pullgate.errors import PullgateError, Reason, VerificationFailed
from pullgate.registry.client import RegistryClient
from pullgate.registry.model import ImageReference
from pullgate.trust import TrustConfig
from pullgate.verification.outcome import VerificationOutcome
from pullgate.verification.verifier import Verifier


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """A reference pinned to what the registry serves."""

    reference: ImageReference
    target: Descriptor

    @property
    def policy_reference(self) -> str:
        """``registry/repository@digest`` used for statement selection."""
        return f"{self.reference.policy_locator}@{self.target.digest}"


def denied(reference: str, digest: str, err: PullgateError) -> VerificationOutcome:
    """An outcome for an error raised before or outside signature evaluation."""
    return VerificationOutcome(
        reference=reference,
        digest=digest,
        statement=None,
        level=None,
        allowed=False,
        reason=err.reason,
        message=str(err),
        inconclusive=err.inconclusive,
    )


def resolve(client: RegistryClient, ref: ImageReference) -> Resolved:
    """Resolve a tag or digest reference to the registry's descriptor.

    Raises:
        PullgateError: registry trouble, or a digest the registry does not serve.
    """
    target = client.resolve(ref)
    if ref.digest is not None and target.digest != ref.digest:
        raise VerificationFailed(
            Reason.MALFORMED,
            f"registry resolved {ref} to {target.digest}, not the requested digest",
        )
    return Resolved(reference=ref.with_digest(target.digest), target=target)


def verify_resolved(
    *,
    trust: TrustConfig,
    client: RegistryClient,
    verifier: Verifier,
    resolved: Resolved,
    user_metadata: Mapping[str, str] | None = None,
) -> VerificationOutcome:
    """Select the statement and verify the signatures of one resolved manifest or index."""
    policy_ref = resolved.policy_reference
    try:
        statement = trust.oci_policy.select(policy_ref)
    except PullgateError as exc:
        return denied(policy_ref, resolved.target.digest, exc)
    return verifier.verify_artifact(
        reference=policy_ref,
        target=resolved.target,
        statement=statement,
        source=client.signature_source(resolved.reference),
        user_metadata=user_metadata,
    )


def verify_image(
    *,
    trust: TrustConfig,
    client: RegistryClient,
    verifier: Verifier,
    reference: ImageReference,
    user_metadata: Mapping[str, str] | None = None,
) -> VerificationOutcome:
    """Resolve then verify; every failure is an outcome."""
    try:
        resolved = resolve(client, reference)
    except PullgateError as exc:
        return denied(str(reference), reference.digest or "", exc)
    return verify_resolved(
        trust=trust,
        client=client,
        verifier=verifier,
        resolved=resolved,
        user_metadata=user_metadata,
    )
