"""Denial messages the kubelet turns into pod reasons."""

from __future__ import annotations

import pytest

from pullgate.cri.denial import MAX_MESSAGE_CHARS, Denial, DenialKind, fix_hint
from pullgate.decision.model import Decision
from pullgate.errors import (
    ConfigError,
    MalformedInput,
    PullgateError,
    Reason,
    SignatureNotFound,
    VerificationFailed,
    VerificationInconclusive,
)
from pullgate.registry.endpoint_errors import NotFoundEverywhere
from pullgate.registry.hosts import HostsDirectoryError
from pullgate.registry.model import RegistryError


def _decision(reason: Reason, *, inconclusive: bool = False, message: str = "m") -> Decision:
    return Decision(
        allowed=False,
        reason=reason,
        message=message,
        reference="r",
        digest="",
        inconclusive=inconclusive,
    )


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_its_own_nonempty_hint(reason: Reason) -> None:
    assert fix_hint(reason).strip()


def test_hints_differ_between_deny_reasons() -> None:
    deny = [r for r in Reason if r not in (Reason.VERIFIED, Reason.SKIPPED_BY_POLICY)]
    assert len({fix_hint(r) for r in deny}) == len(deny)


def test_definitive_denial_text_layout() -> None:
    denial = Denial.from_decision(_decision(Reason.NO_SIGNATURE, message="no signature found"))
    assert denial.kind is DenialKind.SIGNATURE
    assert denial.text == (
        "SignatureValidationFailed: NO_SIGNATURE: no signature found"
        f" (fix: {fix_hint(Reason.NO_SIGNATURE)})"
    )


def test_inconclusive_denial_is_registry_unavailable() -> None:
    denial = Denial.from_decision(_decision(Reason.REGISTRY_UNREACHABLE, inconclusive=True))
    assert denial.kind is DenialKind.REGISTRY
    assert denial.text.startswith("RegistryUnavailable: REGISTRY_UNREACHABLE: ")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (VerificationInconclusive(Reason.TIMEOUT, "slow"), DenialKind.REGISTRY),
        (RegistryError(Reason.REGISTRY_TLS, "x509"), DenialKind.REGISTRY),
        (VerificationFailed(Reason.REVOKED, "revoked"), DenialKind.SIGNATURE),
        (SignatureNotFound("none"), DenialKind.SIGNATURE),
        (MalformedInput("bad ref"), DenialKind.SIGNATURE),
        (ConfigError("broken policy"), DenialKind.SIGNATURE),
        (HostsDirectoryError("cannot read certs.d"), DenialKind.SIGNATURE),
        (NotFoundEverywhere("absent everywhere"), DenialKind.SIGNATURE),
    ],
)
def test_errors_map_to_kind_and_keep_their_reason(error: PullgateError, kind: DenialKind) -> None:
    denial = Denial.from_error(error)
    assert (denial.kind, denial.reason) == (kind, error.reason)
    assert denial.text.startswith(f"{kind.value}: {error.reason.value}: ")


def test_text_is_one_line_and_bounded() -> None:
    denial = Denial(reason=Reason.UNTRUSTED, message="a\nb\t" * 5000)
    text = denial.text
    assert "\n" not in text
    assert "\t" not in text
    assert len(text) == MAX_MESSAGE_CHARS
    assert text.startswith("SignatureValidationFailed: UNTRUSTED: a b a b")
