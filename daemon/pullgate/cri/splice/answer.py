"""Calls the splice transport answers itself, by running the gate's grpcio handler for them.

A gated method whose handler must make the runtime call itself (``PullImage``: decide, pull over
the gate's own channel, pin) cannot be decided by holding its request: the splice resets the
runtime's stream, runs the handler on a worker with a :class:`CallContext` built from the
caller's field block, and writes the handler's answer to the caller (:func:`answer_blocks`).
The context implements what the gate's handlers use of :class:`grpc.ServicerContext`.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import MappingProxyType
from typing import Any, NoReturn

import grpc

from pullgate.cri.splice.fields import Field, encode_grpc_message, literal_block

__all__ = ["Aborted", "CallContext", "answer_blocks", "metadata_of", "run_handler", "timeout_of"]

log = logging.getLogger(__name__)

_UNITS = MappingProxyType({b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9})
_NO_DEADLINE = float(2**63)  # what grpc's server reports without one
_RESERVED = frozenset({b"content-type", b"te", b"grpc-timeout", b"grpc-status", b"grpc-message"})


class Aborted(Exception):
    """A handler ended the call with a status (``context.abort``)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def timeout_of(value: bytes) -> float | None:
    """Seconds of a ``grpc-timeout`` value (1-8 digits and a unit), None when malformed."""
    unit = _UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def metadata_of(fields: Iterable[Field]) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's metadata as grpc's server gives it: no pseudo-headers, ``-bin`` values
    base64-decoded (skipped when they do not decode)."""
    out: list[tuple[str, str | bytes]] = []
    for name, value in fields:
        if name.startswith(b":") or name in _RESERVED:
            continue
        key = name.decode("ascii", "replace")
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            except ValueError:
                continue
        else:
            out.append((key, value.decode("latin-1")))
    return tuple(out)


def _fields(metadata: Iterable[tuple[str, str | bytes]]) -> list[Field]:
    out: list[Field] = []
    for key, value in metadata:
        name = key.lower().encode("ascii", "replace")
        if name in _RESERVED or name.startswith(b":"):
            continue
        if isinstance(value, bytes):
            out.append((name, base64.b64encode(value).rstrip(b"=")))
        else:
            out.append((name, value.encode("latin-1", "replace")))
    return out


def answer_blocks(
    response: bytes | None,
    code: int,
    message: str,
    initial: Sequence[tuple[str, str | bytes]],
    trailing: Sequence[tuple[str, str | bytes]],
) -> tuple[bytes | None, bytes]:
    """The answer's field blocks: headers (None for a trailers-only answer, when there is no
    response message) and trailers; both leave the caller's HPACK table alone."""
    status = [(b"grpc-status", str(code).encode())]
    if message:
        status.append((b"grpc-message", encode_grpc_message(message)))
    start = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    if response is None:
        return None, literal_block([*start, *_fields(initial), *status, *_fields(trailing)])
    return literal_block([*start, *_fields(initial)]), literal_block([*status, *_fields(trailing)])


class CallContext(grpc.ServicerContext):
    """One answered call's server context (what the gate's handlers use of it)."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self._metadata = metadata_of(fields)
        timeout = next((timeout_of(v) for n, v in fields if n == b"grpc-timeout"), None)
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._lock = threading.Lock()
        self._active = True
        self._callbacks: list[Callable[[], None]] = []
        self.initial: tuple[tuple[str, str | bytes], ...] = ()
        self.trailing: tuple[tuple[str, str | bytes], ...] = ()
        self.status: grpc.StatusCode | None = None
        self.message = ""

    def end(self) -> None:
        """The call is over (answered, or the caller reset it): run the callbacks once."""
        with self._lock:
            if not self._active:
                return
            self._active = False
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("runtime gate: a call's end callback failed")

    def is_active(self) -> bool:
        with self._lock:
            return self._active

    def time_remaining(self) -> float:
        if self._deadline is None:
            return _NO_DEADLINE
        return max(self._deadline - time.monotonic(), 0.0)

    def cancel(self) -> bool:
        self.end()
        return True

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if not self._active:
                return False
            self._callbacks.append(callback)
            return True

    def invocation_metadata(self) -> Any:
        return self._metadata

    def peer(self) -> str:
        return "unix:"

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, bytes]:
        return {}

    def send_initial_metadata(self, initial_metadata: Any) -> None:
        self.initial = tuple(initial_metadata)

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self.trailing = tuple(trailing_metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        raise Aborted(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.status = code

    def set_details(self, details: str) -> None:
        self.message = details

    def code(self) -> grpc.StatusCode:
        return self.status or grpc.StatusCode.OK

    def details(self) -> str:
        return self.message

    def initial_metadata(self) -> Any:
        return self.initial

    def trailing_metadata(self) -> Any:
        return self.trailing


def run_handler(
    handler: Callable[[bytes, grpc.ServicerContext], bytes], message: bytes, context: CallContext
) -> tuple[bytes | None, int, str]:
    """Run ``handler``; its response (None when it failed), gRPC status code and message."""
    try:
        response = handler(message, context)
    except Aborted as exc:
        return None, int(exc.code.value[0]), exc.details
    except Exception:
        log.exception("runtime gate: handler failed")
        return None, int(grpc.StatusCode.INTERNAL.value[0]), "pullgate could not answer this call"
    status = context.status
    if status is not None and status is not grpc.StatusCode.OK:
        return None, int(status.value[0]), context.message
    return response, 0, ""
