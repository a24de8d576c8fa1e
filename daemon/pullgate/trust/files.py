"""A notation configuration directory, loaded: trust policy documents plus the trust store.

``trust_dir`` holds ``trustpolicy.oci.json`` (or ``trustpolicy.json``), optionally
``trustpolicy.blob.json``, and ``truststore/x509/{ca,signingAuthority,tsa}/<name>/``, exactly as
notation reads them, so ``/etc/notation`` or ``~/.config/notation`` work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pullgate.errors import ConfigError
from pullgate.registry.reference import selectable_scope
from pullgate.verification.policy import (
    BlobTrustPolicy,
    OciTrustPolicy,
    load_blob_policy,
    load_oci_policy,
)
from pullgate.verification.truststore import TrustStore
from pullgate.verification.x509.identity import WILDCARD, go_quote


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustConfig:
    """The trust material of one notation configuration directory."""

    trust_dir: Path
    oci_policy: OciTrustPolicy
    store: TrustStore


def load_trust_config(trust_dir: Path, *, allow_symlinks: bool = False) -> TrustConfig:
    """Load and validate the OCI trust policy; stores are loaded lazily, per statement.

    Raises:
        ConfigError: the directory or its policy document is unusable.
    """
    _require_dir(trust_dir)
    return TrustConfig(
        trust_dir=trust_dir,
        oci_policy=load_oci_policy(trust_dir, allow_symlinks=allow_symlinks),
        store=TrustStore(trust_dir, allow_symlinks=allow_symlinks),
    )


def dead_scope_warnings(policy: OciTrustPolicy) -> list[str]:
    """A warning for every registry scope no image reference can select, naming the spelling
    to write instead (see :func:`pullgate.registry.reference.selectable_scope`)."""
    warnings: list[str] = []
    for statement in policy.statements:
        for scope in statement.registry_scopes:
            if scope == WILDCARD:
                continue
            fixed = selectable_scope(scope)
            if fixed != scope:
                warnings.append(
                    f"{policy.source}: statement {go_quote(statement.name)}: registry scope "
                    f"{go_quote(scope)} is never selected (references to that repository are "
                    f"matched as {go_quote(fixed)}); write {go_quote(fixed)} instead"
                )
    return warnings


def load_blob_trust(
    trust_dir: Path, *, allow_symlinks: bool = False
) -> tuple[BlobTrustPolicy, TrustStore]:
    """The blob policy and the store (``notation blob verify`` inputs).

    Raises:
        ConfigError: the directory or its blob policy document is unusable.
    """
    _require_dir(trust_dir)
    return (
        load_blob_policy(trust_dir, allow_symlinks=allow_symlinks),
        TrustStore(trust_dir, allow_symlinks=allow_symlinks),
    )


def _require_dir(trust_dir: Path) -> None:
    if not trust_dir.is_dir():
        raise ConfigError(f"trust directory {trust_dir} does not exist or is not a directory")
