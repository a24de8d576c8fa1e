"""Overlapped pulls whose allow is in before the runtime's pull ends: with the start gate in use,
the pull is answered at once and the tag's pin is checked after the answer (a pin that does not
hold removes the image, audited once and counted, as for a late verdict); without the gate, the
pin is checked before the answer, as without overlap; stopping removes an image whose pin was not
checked yet. Against the fake runtime of ``test_proxy``; the real runtimes:
``tests/integration/test_overlap_pull.py``."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from typing import Any

import grpc

from pullgate.common.activity import Activity
from pullgate.cri.overlap import OverlappedPulls
from pullgate.cri.pin import RuntimeImages
from pullgate.cri.proxy import CriProxy
from pullgate.cri.request import parse_pull_request
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.cri.verdict import pull_verdict
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.errors import Reason
from tests.unit.cri.test_overlap import Observed, _serve, _until
from tests.unit.cri.test_proxy import (
    MOVED,
    PULL,
    REMOVE,
    STATUS,
    FakeRuntime,
    _allow,
    _expect_error,
    _pull_bytes,
    _raw,
)

ANSWERED_WITHIN = 5.0  # seconds: the answer must not wait for the held ImageStatus


class Decided:
    """An allow answered at once, noting that it was."""

    def __init__(self) -> None:
        self.done = threading.Event()

    def __call__(self, request: DecisionRequest) -> Decision:
        try:
            return _allow(request)
        finally:
            self.done.set()


def _in_use() -> Activity:
    gate_use = Activity(30.0)
    gate_use.seen()  # e.g. the kubelet's Status call through the gate
    return gate_use


async def _pull_after_the_allow(
    channel: grpc.aio.Channel, runtime: FakeRuntime, decided: Decided
) -> asyncio.Future[tuple[bytes, Any]]:
    """Start a pull, let the allow come in while the runtime still pulls, then end the pull."""
    call = asyncio.ensure_future(_raw(channel, PULL, _pull_bytes()))
    await _until(lambda: decided.done.is_set() and PULL in runtime.methods(), "never pulled")
    await asyncio.sleep(0.05)  # the verdict is concluded while the pull is still running
    assert runtime.pull_gate is not None
    runtime.pull_gate.set()
    return call


def _held_runtime(**kw: Any) -> FakeRuntime:
    return FakeRuntime(pull_gate=asyncio.Event(), status_gate=asyncio.Event(), **kw)


def test_an_allow_in_before_the_pull_ends_is_answered_before_its_pin() -> None:
    decided = Decided()
    observed = Observed()

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        call = await _pull_after_the_allow(channel, runtime, decided)
        response, _ = await asyncio.wait_for(call, ANSWERED_WITHIN)  # ImageStatus still held
        assert api_pb2.PullImageResponse.FromString(response).image_ref == "sha256:id"
        await _until(lambda: STATUS in runtime.methods(), "the pin was never checked")
        assert observed.pending == 1  # the pin is verdict work still to do
        assert runtime.status_gate is not None
        runtime.status_gate.set()
        await _until(lambda: observed.pending == 0, "the pin never settled")

    runtime, _ = _serve(
        decided, scenario, runtime=_held_runtime(), observed=observed, gate_use=_in_use()
    )
    assert runtime.methods() == [PULL, STATUS]
    assert observed.denied == []
    assert observed.overlap_records() == []


def test_a_tag_that_moved_under_an_early_allow_is_removed_after_the_answer() -> None:
    decided = Decided()
    observed = Observed()

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        call = await _pull_after_the_allow(channel, runtime, decided)
        await asyncio.wait_for(call, ANSWERED_WITHIN)  # answered: the gate holds the image
        assert REMOVE not in runtime.methods()
        assert runtime.status_gate is not None
        runtime.status_gate.set()
        await _until(lambda: REMOVE in runtime.methods(), "the moved tag was never removed")
        await _until(lambda: observed.pending == 0, "the pin never settled")

    runtime, _ = _serve(
        decided,
        scenario,
        runtime=_held_runtime(repo_digests=MOVED),
        observed=observed,
        gate_use=_in_use(),
    )
    assert runtime.methods() == [PULL, STATUS, REMOVE]
    assert api_pb2.RemoveImageRequest.FromString(runtime.calls[-1][1]).image.image == "sha256:id"
    assert observed.denied == [Reason.DESCRIPTOR_MISMATCH.value]
    [record] = observed.overlap_records()
    assert (record["reason"], record["image"]) == (Reason.DESCRIPTOR_MISMATCH.value, "sha256:id")


def test_without_the_start_gate_an_early_allow_is_pinned_before_the_answer() -> None:
    decided = Decided()
    observed = Observed()

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        call = await _pull_after_the_allow(channel, runtime, decided)
        await _until(lambda: STATUS in runtime.methods(), "the pin was never checked")
        await asyncio.sleep(0.2)
        assert not call.done()  # the answer waits for the pin
        assert runtime.status_gate is not None
        runtime.status_gate.set()
        err = await _expect_error(call)
        assert (err.details() or "").startswith("SignatureValidationFailed: DESCRIPTOR_MISMATCH")

    runtime, _ = _serve(
        decided,
        scenario,
        runtime=_held_runtime(repo_digests=MOVED),
        observed=observed,
        gate_use=Activity(30.0),  # no call through the gate lately
    )
    assert runtime.methods() == [PULL, STATUS, REMOVE]
    assert observed.denied == []  # answered as a denial: not an overlap denial
    assert observed.pending == 0


def test_stopping_removes_an_answered_image_whose_pin_is_unchecked() -> None:
    decided = Decided()
    observed = Observed()

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime, _: CriProxy) -> None:
        call = await _pull_after_the_allow(channel, runtime, decided)
        await asyncio.wait_for(call, ANSWERED_WITHIN)
        await _until(lambda: STATUS in runtime.methods(), "the pin was never started")
        # ImageStatus stays held: the proxy stops before the pin is checked

    runtime, _ = _serve(
        decided,
        scenario,
        runtime=_held_runtime(),
        observed=observed,
        gate_use=_in_use(),
        stop_grace=0.2,
    )
    assert runtime.methods()[:3] == [PULL, STATUS, REMOVE]
    assert observed.denied == [Reason.NOT_VERIFIED.value]
    [record] = observed.overlap_records()
    assert record["reason"] == Reason.NOT_VERIFIED.value
    assert observed.pending == 0


class _BrokenImages(RuntimeImages):
    """ImageStatus fails in a way the pin check does not expect; removals are recorded."""

    def __init__(self) -> None:
        super().__init__(self._never)
        self.removed: list[str] = []

    def _never(self, method: str, request: bytes) -> bytes:
        raise AssertionError("not called")

    def status(self, image: str) -> api_pb2.Image | None:
        raise ValueError("a broken runtime client")

    def remove(self, image: str) -> None:
        self.removed.append(image)


def test_a_pin_check_that_breaks_removes_the_image_and_is_recorded() -> None:
    images = _BrokenImages()
    observed = Observed()
    overlap = OverlappedPulls(
        partial(pull_verdict, _allow, caller="cri"),
        images,
        observed.records.append,
        observed,
    )
    try:
        job = overlap.begin(parse_pull_request(_pull_bytes()))
        assert job is not None
        overlap.run(job)
        assert isinstance(job.wait(), Decision)
        response = api_pb2.PullImageResponse(image_ref="sha256:id").SerializeToString()
        assert overlap.detach(job, response) is None  # answered; the pin checked after
        deadline = time.monotonic() + 10
        while observed.pending and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        overlap.close(time.monotonic())
    assert images.removed == ["sha256:id"]
    assert observed.denied == [Reason.INTERNAL.value]
    assert observed.pending == 0
