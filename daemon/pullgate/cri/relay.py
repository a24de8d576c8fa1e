"""Relaying one gRPC call between the kubelet and the runtime unchanged.

What the CRI proxy passes through for every call it forwards, as docs/containerd.md §3
requires: the caller's metadata (minus what gRPC manages itself) and remaining deadline on the
way in; the runtime's status code, details and initial and trailing metadata on the way out;
and the caller's cancellation, which cancels the runtime's call too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, NoReturn, Protocol

import grpc

__all__ = [
    "MetadataPairs",
    "abort",
    "answer_metadata",
    "cancel_with",
    "error_text",
    "forwardable",
    "identity",
    "pass_back",
    "remaining",
]

MetadataPairs = tuple[tuple[str, str | bytes], ...]

# A remaining time above this is "no deadline" (grpc's sync server reports ~9.2e18 seconds).
_NO_DEADLINE = 10.0**9

# Metadata keys gRPC manages itself; forwarding them would be rejected or wrong.
_RESERVED_METADATA = frozenset(
    {
        "content-type",
        "te",
        "host",
        "user-agent",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
        "grpc-status",
        "grpc-message",
    }
)


def identity(data: bytes) -> bytes:
    """The (de)serializer of a message carried as opaque bytes."""
    return data


def forwardable(metadata: Iterable[Any] | None) -> MetadataPairs:
    """The metadata pairs that may be sent on: pseudo-headers and gRPC's own keys dropped."""
    out: list[tuple[str, str | bytes]] = []
    for key, value in metadata or ():
        name = str(key).lower()
        if name.startswith(":") or name in _RESERVED_METADATA:
            continue
        out.append((name, value))
    return tuple(out)


def remaining(context: grpc.ServicerContext) -> float | None:
    """The caller's remaining deadline in seconds, or None when it set none (the kubelet's
    ``PullImage`` sets none)."""
    left = context.time_remaining()
    return None if left > _NO_DEADLINE else float(left)


def _status(err: BaseException) -> tuple[grpc.StatusCode, str, MetadataPairs] | None:
    """Code, details and trailing metadata of a failed call (None: not an RPC status).

    Every error of a blocking call is also a ``grpc.Call``; the stubs cannot say so.
    """
    code, details = getattr(err, "code", None), getattr(err, "details", None)
    trailing = getattr(err, "trailing_metadata", None)
    if not (callable(code) and callable(details) and callable(trailing)):
        return None
    status = code()
    return (
        status if isinstance(status, grpc.StatusCode) else grpc.StatusCode.UNKNOWN,
        str(details() or ""),
        forwardable(trailing()),
    )


def error_text(exc: BaseException) -> str:
    """An upstream failure for a message: the status code and details of an RPC error."""
    status = _status(exc)
    return str(exc) if status is None else f"{status[0].name}: {status[1]}"


class _Cancellable(Protocol):
    def cancel(self) -> bool: ...


def cancel_with(context: grpc.ServicerContext, call: _Cancellable) -> None:
    """Cancel the upstream ``call`` when the caller's call ends first (or has already ended)."""

    def cancel() -> None:
        call.cancel()

    if not context.add_callback(cancel):  # the caller is already gone
        cancel()


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with ``code``; grpc's ``abort`` raises, this tells the type checker so."""
    context.abort(code, details)
    raise AssertionError("grpc.ServicerContext.abort returned")  # pragma: no cover


def answer_metadata(call: grpc.Call, context: grpc.ServicerContext) -> None:
    """Pass the runtime's initial and trailing metadata back to the caller (who may be gone)."""
    initial = forwardable(call.initial_metadata())
    try:
        if initial:
            context.send_initial_metadata(initial)
    except (grpc.RpcError, ValueError):  # the caller is gone: there is no one to answer
        return
    context.set_trailing_metadata(forwardable(call.trailing_metadata()))


def pass_back(err: grpc.RpcError, context: grpc.ServicerContext) -> NoReturn:
    """End the call with the runtime's own status, details and metadata."""
    initial = getattr(err, "initial_metadata", None)
    if callable(initial):
        pairs = forwardable(initial())
        if pairs:
            with contextlib.suppress(grpc.RpcError, ValueError):  # the caller may be gone
                context.send_initial_metadata(pairs)
    status = _status(err)
    if status is None:
        abort(context, grpc.StatusCode.UNKNOWN, f"runtime call failed: {err}")
    code, details, trailing = status
    context.set_trailing_metadata(trailing)
    abort(context, code, details)
