"""A decided stream's state in the splice transport, and the checks on the request it holds
back (:mod:`pullgate.cri.splice.conn`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum

from pullgate.cri.splice.answer import CallContext
from pullgate.cri.splice.fields import Field
from pullgate.cri.splice.routes import Refusal, Route

__all__ = [
    "INTERNAL",
    "MAX_HELD_BYTES",
    "MAX_MESSAGE_BYTES",
    "PREFIX",
    "RESOURCE_EXHAUSTED",
    "UNIMPLEMENTED",
    "Held",
    "State",
    "exceeds_window",
    "message_problem",
]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the gate's gRPC message limit
MAX_HELD_BYTES = 2 * MAX_MESSAGE_BYTES  # held DATA of one connection, all streams
PREFIX = struct.Struct(">BI")  # gRPC message prefix: compressed flag, length

# gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
INTERNAL = 13
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12


class State(Enum):
    """Where a decided stream is."""

    PENDING = 1  # request DATA being held
    DECIDING = 2  # message complete, verdict running
    ANSWERED = 3  # pullgate answered the caller
    CANCELLED = 4  # the caller reset the stream


@dataclass(slots=True)
class Held:
    """A decided stream: its route and the request bytes held back."""

    route: Route
    state: State = State.PENDING
    frames: list[bytes] = field(default_factory=list)
    flow: int = 0  # flow-controlled bytes held (DATA payloads, padding included)
    message: bytearray = field(default_factory=bytearray)
    upstream_closed: bool = False
    fields: list[Field] = field(default_factory=list)  # the request's (answered calls)
    context: CallContext | None = None  # an answered call's, once its request is complete
    counted: int = 0  # bytes of this stream in the connection's held total
    answering: bool = False  # pullgate answers the call itself (the runtime's stream is reset)

    @property
    def dropping(self) -> bool:
        """The runtime's frames of this stream are not for the caller (pullgate answers it)."""
        return self.state is State.ANSWERED or self.answering


def exceeds_window(message: bytearray, window: int) -> bool:
    """Whether the request message that ``message`` starts is larger than ``window``."""
    return len(message) >= PREFIX.size and PREFIX.size + PREFIX.unpack_from(message)[1] > window


def message_problem(
    message: bytearray, *, done: bool, held_total: int, window: int | None
) -> Refusal | None:
    """Why a held request cannot be decided (None: it can, or it is not complete yet); a
    ``window`` it must fit in (None: pullgate consumes it, no window applies)."""
    if held_total > MAX_HELD_BYTES:
        return Refusal(RESOURCE_EXHAUSTED, "too many request bytes held on one connection")
    if len(message) < PREFIX.size:
        return Refusal(INTERNAL, "the request carries no message") if done else None
    compressed, length = PREFIX.unpack_from(message)
    if compressed:
        return Refusal(UNIMPLEMENTED, "compressed requests are not decided by the gate")
    size = PREFIX.size + length
    if length > MAX_MESSAGE_BYTES:
        return Refusal(RESOURCE_EXHAUSTED, f"request message of {length} bytes is too large")
    if window is not None and size > window:
        return Refusal(
            RESOURCE_EXHAUSTED,
            f"request message of {length} bytes exceeds the runtime's stream window "
            f"({window} bytes): the gate cannot read it before forwarding it "
            '(set [runtime] transport = "grpc")',
        )
    if len(message) > size:
        return Refusal(INTERNAL, "more than one request message in a unary call")
    if done and len(message) < size:
        return Refusal(INTERNAL, "the request message is truncated")
    return None
