"""What the decision layer is asked and what it answers (shared by every front end).

A :class:`SubjectDecision` carries what the front ends report about the signature behind it as
plain fields (``signature_digest``, ``signer_subject``, ``signer_fingerprint``,
``signing_time``); ``outcome`` keeps the full per-check record on a freshly computed decision
only: the decision cache stores the plain fields and drops ``outcome`` and ``timings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pullgate.config import Mode, Requirement
from pullgate.errors import Reason
from pullgate.registry.model import Credentials
from pullgate.verification.outcome import VerificationOutcome

BINDIR_CALLER = "containerd-verifier"  # the caller pullgate-containerd-verifier sends


class Front(StrEnum):
    """The front end a decision was asked through; every audit record names it."""

    GRPC = "grpc"
    SHIM = "shim"  # the bindir verifier, through the gRPC API (caller BINDIR_CALLER)
    CRI = "cri"
    RUNTIME_GATE = "runtime-gate"
    NRI = "nri"
    CLI = "cli"

    @classmethod
    def named(cls, name: str) -> Front:
        """The front end a start check's name means (``nri-reload`` and the like are NRI's,
        ``runtime-start`` and other names the runtime gate's)."""
        try:
            return cls(name)
        except ValueError:
            return cls.NRI if name.startswith(cls.NRI.value) else cls.RUNTIME_GATE


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRequest:
    """One pull to decide. ``platform`` None means "the platform this node runs"."""

    reference: str
    digest: str | None = None
    platform: str | None = None
    credentials: Credentials | None = None
    caller: str = ""
    front: Front | None = None  # who asked (audit only; never part of the answer)
    require: Requirement | None = None  # CLI override of the statement's requirement
    # Signed user metadata every verified signature must carry (``pullgate verify -m K=V``).
    user_metadata: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectDecision:
    """The verdict for one subject: the index, the platform manifest, or a plain manifest."""

    role: str  # "index" | "platform" | "manifest"
    digest: str
    verified: bool
    reason: Reason
    message: str
    platform: str | None = None
    outcome: VerificationOutcome | None = None  # full record; None on cached copies
    # The signature that verified or, when none did, the first one examined (None: none seen).
    signature_digest: str | None = None
    signer_subject: str | None = None
    signer_fingerprint: str | None = None  # SHA-256 of the signing certificate, hex
    signing_time: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    """A manifest an allow covers and its config digest: the image ID a runtime shows for it."""

    manifest_digest: str
    config_digest: str
    platform: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The answer. ``allowed`` is what the front end enforces."""

    allowed: bool
    reason: Reason
    message: str
    reference: str
    digest: str  # the top-level digest (index or manifest)
    platform: str | None = None
    statement: str | None = None
    level: str | None = None
    requirement: Requirement | None = None
    mode: Mode = Mode.ENFORCE
    inconclusive: bool = False
    fail_open: bool = False  # allowed only because on_inconclusive = "allow"
    audit_denied: bool = False  # mode = "audit": allowed, but would have been denied
    subjects: tuple[SubjectDecision, ...] = ()
    cache_hit: bool = False
    timings: Mapping[str, float] = field(default_factory=dict)  # phase -> seconds
    generation: int = 0  # the configuration snapshot that decided
    resolve_cached: bool = False  # the reference's digest came from the resolve memo
    # What an allow covers: the platform (or plain) manifest and its config digest. Empty on
    # denies, fail-open allows and when the manifest could not be read (the allow then binds
    # no content, and a start gate verifies again).
    content: tuple[Content, ...] = ()
