"""Where errors become gRPC status codes (the code of each reason is in the reason table,
:data:`pullgate.errors.REASONS`). ``Verify`` answers every
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

from pullgate.errors import REASONS, PullgateError, Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class GrpcStatus:
    """The gRPC status an aborted RPC carries: code plus details (``REASON: detail``)."""

    code: grpc.StatusCode
    details: str


REASON_CODES: Mapping[Reason, grpc.StatusCode] = MappingProxyType(
    {reason: grpc.StatusCode[row.grpc_code] for reason, row in REASONS.items()}
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
