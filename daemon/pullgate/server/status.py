"""The one table mapping a :class:`~pullgate.errors.Reason` to a gRPC status code.

STYLE.md §5: this module is the only place errors become gRPC codes. ``Verify`` answers every
decision, including denies for malformed requests, with a ``VerifyResponse`` (``allowed`` is
what integrators enforce); the table is used where an RPC must *abort* instead: an internal
error in ``Status``/``Reload``, or a ``Verify`` that could not produce any decision at all.

The code follows the failed/inconclusive split (notation-go ``VerificationFailedError`` vs
``VerificationInconclusiveError``): definitive failures are ``FAILED_PRECONDITION`` (retrying
will not help), runtime trouble is ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED`` (retryable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import grpc

from pullgate.errors import PullgateError, Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class GrpcStatus:
    """The gRPC status an aborted RPC carries: code plus details (``REASON: detail``)."""

    code: grpc.StatusCode
    details: str


_FAILED = grpc.StatusCode.FAILED_PRECONDITION

REASON_CODES: Mapping[Reason, grpc.StatusCode] = MappingProxyType(
    {
        Reason.VERIFIED: grpc.StatusCode.OK,
        Reason.SKIPPED_BY_POLICY: grpc.StatusCode.OK,
        Reason.AUDIT_ONLY: grpc.StatusCode.OK,
        Reason.NO_SIGNATURE: _FAILED,
        Reason.INTEGRITY: _FAILED,
        Reason.UNTRUSTED: _FAILED,
        Reason.IDENTITY_MISMATCH: _FAILED,
        Reason.EXPIRED: _FAILED,
        Reason.TIMESTAMP: _FAILED,
        Reason.REVOKED: _FAILED,
        Reason.DESCRIPTOR_MISMATCH: _FAILED,
        Reason.USER_METADATA: _FAILED,
        Reason.PLUGIN_REQUIRED: _FAILED,
        Reason.NO_POLICY: _FAILED,
        Reason.PLATFORM_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        Reason.TOO_MANY_SIGNATURES: _FAILED,
        Reason.REVOCATION_UNKNOWN: grpc.StatusCode.UNAVAILABLE,
        Reason.REGISTRY_UNREACHABLE: grpc.StatusCode.UNAVAILABLE,
        Reason.REGISTRY_TLS: grpc.StatusCode.UNAVAILABLE,
        Reason.REGISTRY_ERROR: grpc.StatusCode.UNAVAILABLE,
        Reason.REGISTRY_AUTH: grpc.StatusCode.PERMISSION_DENIED,
        Reason.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
        Reason.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
        Reason.AMBIGUOUS_DOCUMENT: _FAILED,
        Reason.CONFIG: grpc.StatusCode.FAILED_PRECONDITION,
        Reason.INTERNAL: grpc.StatusCode.INTERNAL,
        Reason.CONTENT_MISMATCH: _FAILED,
        Reason.NOT_VERIFIED: _FAILED,
        Reason.IMAGE_UNKNOWN: grpc.StatusCode.NOT_FOUND,
        Reason.BREAK_GLASS: grpc.StatusCode.OK,
    }
)


def grpc_status(reason: Reason, detail: str) -> GrpcStatus:
    """The status an RPC aborts with for ``reason`` (details start with the reason name)."""
    code = REASON_CODES.get(reason, grpc.StatusCode.INTERNAL)
    if code is grpc.StatusCode.OK:  # a success reason cannot abort an RPC
        code = grpc.StatusCode.INTERNAL
    return GrpcStatus(code=code, details=f"{reason.value}: {detail}")


def status_for_error(error: BaseException) -> GrpcStatus:
    """The status for any exception: domain errors by reason, anything else INTERNAL."""
    if isinstance(error, PullgateError):
        return grpc_status(error.reason, error.detail)
    return grpc_status(Reason.INTERNAL, type(error).__name__)
