"""Overlapped pulls (with the container-start gate on): the runtime pulls while pullgate decides.
A verdict in by the pull's end is acted on as always; a pull that ends first is answered at once
and its verdict acted on later (a deny, or a pin that does not hold, removes the image, audited
once and counted); a verdict known from memory is acted on before anything is pulled; stopping
concludes what is pending. Against the fake runtime of ``test_proxy``; the real runtimes:
``tests/integration/test_overlap_pull.py``."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from pullgate.common.activity import Activity
from pullgate.cri.proxy import CriProxy
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import Reason
from tests.unit.cri.test_proxy import (
    MOVED,
    PULL,
    REMOVE,
    STATUS,
    FakeRuntime,
    _allow,
    _crash,
    _deny,
    _expect_error,
    _pull_bytes,
    _raw,
)


@dataclass
class Observed:
    """What the proxy counted and audited."""

    denied: list[str] = field(default_factory=list)
    pending: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    def overlap_denied(self, reason: str) -> None:
        self.denied.append(reason)

    def overlap_pending(self, delta: int) -> None:
        self.pending += delta

    def overlap_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("event") == "cri.overlap_denied"]


class Held:
    """A decision that answers ``answer`` only once released (or never, if never released)."""

    def __init__(self, answer: Callable[[DecisionRequest], Decision]) -> None:
        self._answer = answer
        self.release = threading.Event()
        self.asked = threading.Event()
        self.answered = threading.Event()

    def __call__(self, request: DecisionRequest) -> Decision:
        self.asked.set()
        self.release.wait(30)
        try:
            return self._answer(request)
        finally:
            self.answered.set()


Scenario = Callable[[grpc.aio.Channel, FakeRuntime, CriProxy], Awaitable[None]]


def _serve(
    decide: Callable[[DecisionRequest], Decision],
    scenario: Scenario,
    *,
    runtime: FakeRuntime | None = None,
    known: Callable[[DecisionRequest], Decision | None] | None = None,
    stop_grace: float = 0,
    observed: Observed | None = None,
    gate_use: Activity | None = None,
) -> tuple[FakeRuntime, Observed]:
    runtime = runtime if runtime is not None else FakeRuntime()
    observed = observed if observed is not None else Observed()

    async def main() -> None:
        tag = uuid.uuid4().hex[:10]
        upstream, front = Path(f"/tmp/pg-ovu-{tag}.sock"), Path(f"/tmp/pg-ovf-{tag}.sock")
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((runtime.handler(),))
        server.add_insecure_port(f"unix:{upstream}")
        await server.start()
        proxy = CriProxy(
            str(upstream),
            decide,
            recorder=DecisionRecorder(observed.records.append),
            overlap=True,
            known=known,
            observer=observed,
            gate_use=gate_use,
            recheck_after=(),
        )
        await proxy.start(front, mode=0o600)
        try:
            async with grpc.aio.insecure_channel(f"unix:{front}") as channel:
                await scenario(channel, runtime, proxy)
        finally:
            await proxy.stop(stop_grace)
            await server.stop(0)
            upstream.unlink(missing_ok=True)
            front.unlink(missing_ok=True)

    asyncio.run(main())
    return runtime, observed


async def _until(done: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def _answered(channel: grpc.aio.Channel) -> None:
    response, _ = await _raw(channel, PULL, _pull_bytes())
    assert api_pb2.PullImageResponse.FromString(response).image_ref == "sha256:id"


def test_a_deny_in_before_the_pull_ends_is_answered_and_the_image_removed() -> None:
    decided = threading.Event()

    def decide(request: DecisionRequest) -> Decision:
        decided.set()
        return _deny(request)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        call = asyncio.ensure_future(_expect_error(_raw(channel, PULL, _pull_bytes())))
        await _until(lambda: decided.is_set() and PULL in runtime.methods(), "never pulled")
        await asyncio.sleep(0.1)  # the verdict is concluded while the pull is still running
        assert runtime.pull_gate is not None
        runtime.pull_gate.set()
        err = await call
        assert err.code() == grpc.StatusCode.UNKNOWN
        assert (err.details() or "").startswith("SignatureValidationFailed: UNTRUSTED: ")

    runtime, observed = _serve(decide, scenario, runtime=FakeRuntime(pull_gate=asyncio.Event()))
    assert runtime.methods() == [PULL, REMOVE]
    assert api_pb2.RemoveImageRequest.FromString(runtime.calls[-1][1]).image.image == "sha256:id"
    assert observed.denied == []  # answered as a denial: not an overlap denial
    assert observed.overlap_records() == []


def test_a_pull_that_ends_before_its_deny_is_answered_then_removed() -> None:
    held = Held(_deny)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        await _answered(channel)  # while the decision is held
        assert not held.answered.is_set()
        assert REMOVE not in runtime.methods()
        held.release.set()
        await _until(lambda: REMOVE in runtime.methods(), "the denied image was never removed")
        await _until(lambda: observed.denied != [], "the overlap denial was never counted")

    observed = Observed()
    runtime, _ = _serve(held, scenario, observed=observed)
    assert runtime.methods() == [PULL, REMOVE]
    assert api_pb2.RemoveImageRequest.FromString(runtime.calls[-1][1]).image.image == "sha256:id"
    assert observed.denied == [Reason.UNTRUSTED.value]
    assert observed.pending == 0
    [record] = observed.overlap_records()
    assert (record["reason"], record["image"], record["front"]) == ("UNTRUSTED", "sha256:id", "cri")


def test_a_pull_that_ends_before_its_allow_is_pinned_in_the_background() -> None:
    held = Held(_allow)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        await _answered(channel)
        assert runtime.methods() == [PULL]
        held.release.set()
        await _until(lambda: STATUS in runtime.methods(), "the pin was never checked")

    runtime, observed = _serve(held, scenario)
    assert runtime.methods() == [PULL, STATUS]
    assert observed.denied == []
    assert observed.pending == 0


def test_a_tag_that_moved_before_a_late_allow_is_removed_and_counted() -> None:
    held = Held(_allow)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        await _answered(channel)
        held.release.set()
        await _until(lambda: REMOVE in runtime.methods(), "the moved tag was never removed")

    runtime, observed = _serve(held, scenario, runtime=FakeRuntime(repo_digests=MOVED))
    assert runtime.methods() == [PULL, STATUS, REMOVE]
    deadline = time.monotonic() + 10
    while not observed.denied and time.monotonic() < deadline:
        time.sleep(0.01)
    assert observed.denied == [Reason.DESCRIPTOR_MISMATCH.value]
    [record] = observed.overlap_records()
    assert record["reason"] == Reason.DESCRIPTOR_MISMATCH.value


def test_a_known_deny_is_answered_without_pulling() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        err = await _expect_error(_raw(channel, PULL, _pull_bytes()))
        assert (err.details() or "").startswith("SignatureValidationFailed: UNTRUSTED: ")

    runtime, observed = _serve(_crash, scenario, known=_deny)
    assert runtime.methods() == []
    assert observed.denied == []


def test_a_known_allow_is_pulled_and_pinned_without_deciding_again() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        await _answered(channel)

    runtime, _ = _serve(_crash, scenario, known=_allow)
    assert runtime.methods() == [PULL, STATUS]


def test_an_unknown_verdict_overlaps_the_pull() -> None:
    held = Held(_allow)

    def unknown(request: DecisionRequest) -> Decision | None:
        return None

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        await _answered(channel)
        assert held.asked.is_set()
        held.release.set()
        await _until(lambda: STATUS in runtime.methods(), "the pin was never checked")

    runtime, _ = _serve(held, scenario, known=unknown)
    assert runtime.methods() == [PULL, STATUS]


def test_stopping_removes_a_pulled_image_whose_verdict_is_pending() -> None:
    held = Held(_allow)  # never released before the proxy stops

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        await _answered(channel)

    try:
        runtime, observed = _serve(held, scenario, stop_grace=0.2)
    finally:
        held.release.set()
    assert runtime.methods() == [PULL, REMOVE]
    assert observed.denied == [Reason.NOT_VERIFIED.value]
    [record] = observed.overlap_records()
    assert record["reason"] == Reason.NOT_VERIFIED.value
    held.answered.wait(10)
    time.sleep(0.1)  # the late allow finds the job concluded: nothing more happens
    assert runtime.methods() == [PULL, REMOVE]
    assert observed.pending == 0


def test_a_pull_waits_for_its_verdict_while_the_start_gate_is_not_in_use() -> None:
    # No call through the runtime gate lately: the kubelet may not be using it, so nothing
    # holds the image back; the pull is answered only with its verdict (here a deny).
    held = Held(_deny)
    gate_use = Activity(30.0)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        call = asyncio.ensure_future(_expect_error(_raw(channel, PULL, _pull_bytes())))
        await _until(lambda: PULL in runtime.methods() and held.asked.is_set(), "never pulled")
        await asyncio.sleep(0.3)
        assert not call.done()  # the runtime answered; the proxy waits for the verdict
        held.release.set()
        err = await call
        assert (err.details() or "").startswith("SignatureValidationFailed: UNTRUSTED: ")

    runtime, observed = _serve(held, scenario, gate_use=gate_use)
    assert runtime.methods() == [PULL, REMOVE]
    assert observed.denied == []


def test_a_pull_is_answered_early_while_the_start_gate_is_in_use() -> None:
    held = Held(_allow)
    gate_use = Activity(30.0)
    gate_use.seen()  # e.g. the kubelet's Status call through the gate

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        await _answered(channel)
        held.release.set()
        await _until(lambda: STATUS in runtime.methods(), "the pin was never checked")

    runtime, _ = _serve(held, scenario, gate_use=gate_use)
    assert runtime.methods() == [PULL, STATUS]
