"""The plugin against an in-process runtime: registration, configure, sync, create, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pullgate.nri.plugin import RUNTIME_SERVICE, Admission, event_mask
from pullgate.nri.service import NriService, NriState, NriTarget
from pullgate.nri.session import CODE_UNIMPLEMENTED
from pullgate.nri.wire import api_pb2
from tests.unit.nri.fake_runtime import FakeRuntime


class RecordingGate:
    def __init__(self, allow: bool) -> None:
        self.allow = allow
        self.admitted: list[str] = []
        self.started: list[str] = []
        self.synced: list[tuple[int, bool]] = []
        self.created_ids: list[str] = []
        self.removed_ids: list[str] = []
        self.request_timeout = 0

    def admit(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        self.admitted.append(container.id)
        return Admission(allowed=self.allow, message="" if self.allow else "no: test")

    def admit_start(self, pod: api_pb2.PodSandbox, container: api_pb2.Container) -> Admission:
        self.started.append(container.id)
        return Admission(allowed=self.allow, message="" if self.allow else "no: test")

    def synchronized(self, containers: Sequence[api_pb2.Container], *, complete: bool) -> None:
        self.synced.append((len(containers), complete))

    def created(self, container: api_pb2.Container) -> None:
        self.created_ids.append(container.id)

    def removed(self, container: api_pb2.Container) -> None:
        self.removed_ids.append(container.id)

    def configured(self, request: api_pb2.ConfigureRequest) -> None:
        self.request_timeout = request.request_timeout


@dataclass
class Rig:
    service: NriService
    runtimes: asyncio.Queue[FakeRuntime]
    states: list[NriState]
    opened: list[FakeRuntime]

    async def connection(self) -> FakeRuntime:
        runtime = await asyncio.wait_for(self.runtimes.get(), 5)
        self.opened.append(runtime)
        return runtime

    async def registered(self) -> FakeRuntime:
        runtime = await self.connection()
        stream_id, call = await runtime.next_call()
        assert (call.service, call.method) == (RUNTIME_SERVICE, "RegisterPlugin")
        registration = api_pb2.RegisterPluginRequest.FromString(call.payload)
        assert (registration.plugin_name, registration.plugin_idx) == ("pullgate", "10")
        runtime.answer(stream_id)
        return runtime


@contextlib.asynccontextmanager
async def running(tmp_path: Path, gate: RecordingGate) -> AsyncIterator[Rig]:
    """A listening fake runtime and the plugin service dialling it; all stopped on exit."""
    path = tmp_path / "nri.sock"
    runtimes: asyncio.Queue[FakeRuntime] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await runtimes.put(FakeRuntime(reader, writer))

    server = await asyncio.start_unix_server(on_connect, str(path))
    states: list[NriState] = []
    service = NriService(
        NriTarget(name="pullgate", index="10", socket_path=path), gate, on_state=states.append
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    rig = Rig(service=service, runtimes=runtimes, states=states, opened=[])
    try:
        yield rig
    finally:
        for runtime in rig.opened:
            await runtime.close()
        server.close()
        await server.wait_closed()
        stop.set()  # the stopping sweep finds no listener (see the sweep's own test)
        await asyncio.wait_for(task, 10)
    assert states[-1] is NriState.STOPPED


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_full_flow_deny_and_reconnect(tmp_path: Path) -> None:
    async def main() -> None:
        gate = RecordingGate(allow=False)
        async with running(tmp_path, gate) as rig:
            runtime = await rig.registered()
            configure = api_pb2.ConfigureRequest(request_timeout=2000)
            answer = await runtime.call("Configure", configure.SerializeToString())
            events = api_pb2.ConfigureResponse.FromString(answer.payload).events
            assert events & event_mask([api_pb2.CREATE_CONTAINER])
            assert events & event_mask([api_pb2.START_CONTAINER])
            assert gate.request_timeout == 2000

            part = api_pb2.SynchronizeRequest(containers=[api_pb2.Container(id="a")], more=True)
            answer = await runtime.call("Synchronize", part.SerializeToString())
            assert api_pb2.SynchronizeResponse.FromString(answer.payload).more
            last = api_pb2.SynchronizeRequest(containers=[api_pb2.Container(id="b")])
            answer = await runtime.call("Synchronize", last.SerializeToString())
            assert not api_pb2.SynchronizeResponse.FromString(answer.payload).more
            assert gate.synced == [(1, False), (1, True)]
            await _until(lambda: rig.service.state is NriState.SYNCHRONIZED)

            create = api_pb2.CreateContainerRequest(container=api_pb2.Container(id="c1"))
            answer = await runtime.call("CreateContainer", create.SerializeToString())
            assert not answer.ok
            assert gate.admitted == ["c1"]
            answer = await runtime.call("CreateContainer", b"\xff\xff\xff")
            assert not answer.ok  # undecodable: refused
            start = api_pb2.ContainerEventRequest(container=api_pb2.Container(id="s1"))
            answer = await runtime.call("StartContainer", start.SerializeToString())
            assert not answer.ok  # a start is decided too
            assert gate.started == ["s1"]
            answer = await runtime.call("StartContainer", b"\xff\xff\xff")
            assert not answer.ok
            answer = await runtime.call("NoSuchMethod", b"")
            assert answer.code == CODE_UNIMPLEMENTED

            event = api_pb2.ContainerEventRequest(container=api_pb2.Container(id="c2"))
            await runtime.call("PostCreateContainer", event.SerializeToString())
            await runtime.call("RemoveContainer", event.SerializeToString())
            assert (gate.created_ids, gate.removed_ids) == (["c2"], ["c2"])

            await runtime.close()  # containerd restarts: the plugin dials again, re-registers
            await _until(lambda: rig.service.state is NriState.DISCONNECTED)
            await rig.registered()
            await _until(lambda: rig.service.registrations == 2)
        assert NriState.REGISTERED in rig.states

    asyncio.run(main())


def test_allowed_create_is_an_empty_response(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, RecordingGate(allow=True)) as rig:
            runtime = await rig.registered()
            create = api_pb2.CreateContainerRequest(container=api_pb2.Container(id="c1"))
            answer = await runtime.call("CreateContainer", create.SerializeToString())
            assert answer.ok
            assert api_pb2.CreateContainerResponse.FromString(answer.payload).ByteSize() == 0

    asyncio.run(main())


def test_refused_registration_disconnects_and_retries(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, RecordingGate(allow=True)) as rig:
            runtime = await rig.connection()
            stream_id, _ = await runtime.next_call()
            runtime.answer(stream_id, code=3)
            await rig.connection()  # dialled again after back-off
            assert rig.service.registrations == 0

    asyncio.run(main())


@pytest.mark.parametrize("junk", [b"\x00" * 8, b"\x00\x00\x00\x01\x00\x00\x00\x0a" + b"\x00" * 10])
def test_protocol_garbage_ends_the_connection(tmp_path: Path, junk: bytes) -> None:
    async def main() -> None:
        async with running(tmp_path, RecordingGate(allow=True)) as rig:
            runtime = await rig.registered()
            runtime.writer.write(junk)
            await _until(lambda: rig.service.state is NriState.DISCONNECTED)
            assert rig.service.registrations == 1

    asyncio.run(main())


def test_graceful_stop_registers_a_sweeping_plugin(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "nri.sock"
        runtimes: asyncio.Queue[FakeRuntime] = asyncio.Queue()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await runtimes.put(FakeRuntime(reader, writer))

        server = await asyncio.start_unix_server(on_connect, str(path))
        service = NriService(
            NriTarget(name="pullgate", index="10", socket_path=path), RecordingGate(allow=True)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        rig = Rig(service=service, runtimes=runtimes, states=[], opened=[])
        first = await rig.registered()
        stop.set()
        sweeper = await rig.connection()  # dialled again once the main connection is closed
        stream_id, call = await sweeper.next_call()
        registration = api_pb2.RegisterPluginRequest.FromString(call.payload)
        assert (registration.plugin_name, registration.plugin_idx) == ("pullgate-stopping", "99")
        sweeper.answer(stream_id)
        create = api_pb2.CreateContainerRequest(container=api_pb2.Container(id="c"))
        answer = await sweeper.call("CreateContainer", create.SerializeToString())
        assert not answer.ok  # refuses while it lives
        await sweeper.call("Synchronize", api_pb2.SynchronizeRequest().SerializeToString())
        await asyncio.wait_for(task, 5)
        for runtime in (first, sweeper):
            await runtime.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
