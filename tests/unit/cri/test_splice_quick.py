"""A decided call's memory-only allow in the splice transport (``Route.quick``): the held request
goes to the runtime at once, without the worker's verdict; the allow is settled (counted,
audited) exactly once, on the settling thread, once the runtime's answer has gone to the caller
(or the call or its connection ended without one), so settling never holds the answer up; a
quick check that cannot allow (or fails) leaves the call to the verdict; stopping the server
waits for every allow still being settled, the unanswered ones included."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hpack import Encoder

from pullgate.cri.splice.frames import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    encode_frame,
)
from pullgate.cri.splice.routes import PASS_TIMED, Refusal, Route, RouteKind
from pullgate.cri.splice.server import SpliceServer
from tests.unit.cri.splice_wire import grpc_message, spliced

CREATE = "/runtime.v1.RuntimeService/CreateContainer"


class Quick:
    """A quick check that allows (or not) and a verdict that records whether it ran."""

    def __init__(self, allow: bool = True, fail: bool = False) -> None:
        self.allow = allow
        self.fail = fail
        self.checked: list[bytes] = []
        self.verdicts: list[bytes] = []
        self.settled: list[str] = []
        self.release = threading.Event()
        self.release.set()

    def quick(self, message: bytes) -> Callable[[], object] | None:
        self.checked.append(message)
        if self.fail:
            raise RuntimeError("a bug in the quick check")
        return self.settle if self.allow else None

    def settle(self) -> None:
        assert self.release.wait(5)
        self.settled.append(threading.current_thread().name)

    def verdict(self, message: bytes) -> Refusal | None:
        self.verdicts.append(message)
        return None

    def route(self, path: bytes) -> Route:
        if path == CREATE.encode():
            return Route(RouteKind.DECIDE, verdict=self.verdict, quick=self.quick)
        return PASS_TIMED


def _settled(gate: Quick, count: int) -> bool:
    deadline = time.monotonic() + 5
    while len(gate.settled) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(gate.settled) == count


def test_a_quick_allow_forwards_at_once_and_is_settled_once_the_answer_has_gone_out(
    tmp_path: Path,
) -> None:
    gate = Quick()
    gate.release.clear()  # a settle that cannot finish holds nothing up
    with spliced(tmp_path, gate.route) as wire:
        create = wire.headers(1, CREATE)
        held = encode_frame(DATA, 0, 1, grpc_message(b"create")[:3])
        held += encode_frame(DATA, END_STREAM, 1, grpc_message(b"create")[3:])
        wire.caller.send(create + held)
        assert wire.runtime.read_bytes(len(create + held)) == create + held  # verbatim
        answer = wire.runtime_answer(1, b"created")
        assert wire.runtime.nothing_within(0.2)
        assert gate.settled == []  # not while the runtime works on the call
        wire.runtime.send(answer)
        head, body, tail = wire.caller.read(), wire.caller.read(), wire.caller.read()
        assert (head[0], body[0], tail[0]) == (HEADERS, DATA, HEADERS)
        assert bool(tail[1] & END_STREAM)  # the whole answer, the settle still blocked
        assert gate.settled == []
        gate.release.set()
        assert _settled(gate, 1)
    assert gate.settled == ["pullgate-settle"]  # on the settling thread, once
    assert gate.checked == [b"create"]
    assert gate.verdicts == []  # no worker verdict, no second decision


def test_a_quick_allow_whose_call_the_caller_resets_is_settled(tmp_path: Path) -> None:
    gate = Quick()
    with spliced(tmp_path, gate.route) as wire:
        create = wire.headers(1, CREATE)
        held = encode_frame(DATA, END_STREAM, 1, grpc_message(b"create"))
        wire.caller.send(create + held)
        assert wire.runtime.read_bytes(len(create + held)) == create + held
        reset = encode_frame(RST_STREAM, 0, 1, (8).to_bytes(4, "big"))
        wire.caller.send(reset)
        assert wire.runtime.read_bytes(len(reset)) == reset  # forwarded as is
        assert _settled(gate, 1)  # the runtime will not answer a reset call


def test_a_quick_check_that_cannot_allow_leaves_the_call_to_the_verdict(tmp_path: Path) -> None:
    for n, gate in enumerate((Quick(allow=False), Quick(fail=True))):
        where = tmp_path / str(n)
        where.mkdir()
        with spliced(where, gate.route) as wire:
            create = wire.headers(1, CREATE)
            held = encode_frame(DATA, END_STREAM, 1, grpc_message(b"create"))
            wire.caller.send(create + held)
            assert wire.runtime.read_bytes(len(create + held)) == create + held
        assert gate.checked == [b"create"]
        assert gate.verdicts == [b"create"]
        assert gate.settled == []


def test_stop_waits_for_every_allow_being_settled(tmp_path: Path) -> None:
    gate = Quick()
    gate.release.clear()
    runtime = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    runtime.bind(str(tmp_path / "runtime.sock"))
    runtime.listen(8)
    server = SpliceServer(str(tmp_path / "runtime.sock"), gate.route)
    server.start(tmp_path / "gate.sock")
    caller = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    caller.connect(str(tmp_path / "gate.sock"))
    block = Encoder().encode([(":method", "POST"), (":path", CREATE)])
    caller.sendall(
        PREFACE
        + encode_frame(SETTINGS, 0, 0)
        + encode_frame(HEADERS, END_HEADERS, 1, block)
        + encode_frame(DATA, END_STREAM, 1, grpc_message(b"create"))
    )
    deadline = time.monotonic() + 5
    while not gate.checked and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.checked == [b"create"]
    threading.Timer(0.3, gate.release.set).start()
    server.stop(0)
    assert len(gate.settled) == 1  # not dropped: stop waited for it
    caller.close()
    runtime.close()
