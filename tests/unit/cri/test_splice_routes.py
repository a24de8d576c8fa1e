"""The runtime gate's routing table on the splice transport, and its listener's bounds: paths are
normalised as the runtime routes them before anything is decided, so no spelling of a decided
method passes through undecided; a caller past the connection bound is closed at once."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import grpc
import pytest
from hpack import Encoder

from pullgate.cri.methods import CREATE_CONTAINER, CRI_SERVICE, PULL_IMAGE, RUNTIME_SERVICE
from pullgate.cri.splice.frames import DATA, END_STREAM, HEADERS, PREFACE, encode_frame
from pullgate.cri.splice.gate import PERMISSION_DENIED, gate_routes
from pullgate.cri.splice.routes import PASS_TIMED, Refusal, Route, RouteKind
from pullgate.cri.splice.server import SpliceServer, upstream_path


def _verdict(message: bytes) -> Refusal | None:
    return None


def _pull(request: bytes, context: grpc.ServicerContext) -> bytes:
    return b""


def _route(raw: bytes) -> tuple[RouteKind, bool, int | None]:
    route = gate_routes(
        services=(RUNTIME_SERVICE, CRI_SERVICE),
        gated={CREATE_CONTAINER: _pull, PULL_IMAGE: _pull},
        verdicts={CREATE_CONTAINER: _verdict},
        refusal_text=lambda shown, why: f"refused {shown}: {why}",
    )(raw)
    return route.kind, route.timed, route.refusal.code if route.refusal else None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/runtime.v1.RuntimeService/CreateContainer", (RouteKind.DECIDE, False, None)),
        (b"runtime.v1.RuntimeService/CreateContainer", (RouteKind.DECIDE, False, None)),
        (b"/runtime.v1.ImageService/PullImage", (RouteKind.ANSWER, False, None)),
        (b"runtime.v1.ImageService/PullImage", (RouteKind.ANSWER, False, None)),
        (b"/runtime.v1.RuntimeService/ListContainers", (RouteKind.PASS, True, None)),
        (b"/runtime.v1.ImageService/ImageFsInfo", (RouteKind.PASS, True, None)),
        (b"/runtime.v1.RuntimeService/GetContainerEvents", (RouteKind.PASS, False, None)),
        (b"/runtime.v1.RuntimeService/SomeFutureMethod", (RouteKind.PASS, True, None)),
        (b"/containerd.services.tasks.v1.Tasks/Exec", (RouteKind.REFUSE, False, PERMISSION_DENIED)),
        (b"/runtime.v1alpha2.RuntimeService/CreateContainer", (RouteKind.REFUSE, False, 7)),
        (b"//runtime.v1.RuntimeService/CreateContainer", (RouteKind.REFUSE, False, 7)),
        (b"/runtime.v1.RuntimeService/CreateContainer/", (RouteKind.REFUSE, False, 7)),
        (b"", (RouteKind.REFUSE, False, 7)),
        (b"\xff", (RouteKind.REFUSE, False, 7)),
    ],
)
def test_paths_are_routed_as_the_runtime_reads_them(
    path: bytes, expected: tuple[RouteKind, bool, int | None]
) -> None:
    assert _route(path) == expected


@pytest.mark.parametrize(
    ("given", "path"),
    [("unix:///run/c.sock", "/run/c.sock"), ("unix:/run/c.sock", "/run/c.sock"), ("/x", "/x")],
)
def test_upstream_paths(given: str, path: str) -> None:
    assert upstream_path(given) == path


def test_callers_past_the_bound_are_closed(tmp_path: Path) -> None:
    runtime = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    runtime.bind(str(tmp_path / "runtime.sock"))
    runtime.listen(8)
    server = SpliceServer(
        str(tmp_path / "runtime.sock"), lambda path: PASS_TIMED, max_connections=1
    )
    server.start(tmp_path / "gate.sock")
    try:
        assert (tmp_path / "gate.sock").stat().st_mode & 0o777 == 0o600
        first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        first.connect(str(tmp_path / "gate.sock"))
        deadline = time.monotonic() + 5
        while server.connections != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        second.connect(str(tmp_path / "gate.sock"))
        second.settimeout(5)
        assert second.recv(1) == b""  # closed at once
        first.settimeout(0.2)
        with pytest.raises(TimeoutError):
            first.recv(1)  # still open
        first.close()
        second.close()
    finally:
        server.stop(0)
        runtime.close()
    assert server.connections == 0


def test_stop_hands_back_the_workers_still_answering(tmp_path: Path) -> None:
    running = threading.Event()
    release = threading.Event()

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        running.set()
        release.wait(10)
        return b""

    runtime = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    runtime.bind(str(tmp_path / "runtime.sock"))
    runtime.listen(8)
    server = SpliceServer(
        str(tmp_path / "runtime.sock"), lambda path: Route(RouteKind.ANSWER, handler=handler)
    )
    server.start(tmp_path / "gate.sock")
    caller = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    caller.connect(str(tmp_path / "gate.sock"))
    block = Encoder().encode([(":method", "POST"), (":path", "/runtime.v1.ImageService/PullImage")])
    caller.sendall(
        PREFACE
        + encode_frame(HEADERS, 4, 1, block)
        + encode_frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x00")
    )
    assert running.wait(5)
    pool = server.stop(0.1)
    assert pool is not None  # the pull is still running: its owner waits before closing
    release.set()
    pool.shutdown(wait=True)
    caller.close()
    runtime.close()


def test_a_file_at_the_socket_path_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "gate.sock"
    path.write_text("someone's file")
    server = SpliceServer(str(tmp_path / "runtime.sock"), lambda raw: PASS_TIMED)
    with pytest.raises(FileExistsError):
        server.start(path)
    assert path.read_text() == "someone's file"
