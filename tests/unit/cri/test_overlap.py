"""Overlapped pulls (with the container-start gate on): the runtime pulls while pullgate decides;
a denial removes what was pulled, an allow is pinned as always. Against the fake runtime of
``test_proxy``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc

from pullgate.cri.proxy import CriProxy
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import Reason
from tests.unit.cri.test_proxy import (
    PULL,
    REMOVE,
    STATUS,
    FakeRuntime,
    _allow,
    _deny,
    _expect_error,
    _pull_bytes,
    _raw,
)


def _after_the_pull_started(
    runtime: FakeRuntime, answer: Callable[[DecisionRequest], Decision]
) -> Callable[[DecisionRequest], Decision]:
    """A decision that finishes only once the runtime has been asked to pull: without
    overlap it could never finish (and the pull would be a TIMEOUT deny)."""

    def decide(request: DecisionRequest) -> Decision:
        deadline = time.monotonic() + 10
        while PULL not in runtime.methods():
            if time.monotonic() > deadline:
                return Decision(
                    allowed=False,
                    reason=Reason.TIMEOUT,
                    message="the runtime never started pulling",
                    reference=request.reference,
                    digest="",
                    inconclusive=True,
                )
            time.sleep(0.01)
        return answer(request)

    return decide


def _overlapped(answer: Callable[[DecisionRequest], Decision], expect_denial: bool) -> FakeRuntime:
    runtime = FakeRuntime()
    decide = _after_the_pull_started(runtime, answer)

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
            recorder=DecisionRecorder(None),
            overlap=True,
            recheck_after=(),
        )
        await proxy.start(front, mode=0o600)
        try:
            async with grpc.aio.insecure_channel(f"unix:{front}") as channel:
                if expect_denial:
                    err = await _expect_error(_raw(channel, PULL, _pull_bytes()))
                    assert err.code() == grpc.StatusCode.UNKNOWN
                    assert (err.details() or "").startswith(
                        "SignatureValidationFailed: UNTRUSTED: "
                    )
                else:
                    response, _ = await _raw(channel, PULL, _pull_bytes())
                    assert api_pb2.PullImageResponse.FromString(response).image_ref == "sha256:id"
        finally:
            await proxy.stop(0)
            await server.stop(0)
            upstream.unlink(missing_ok=True)
            front.unlink(missing_ok=True)

    asyncio.run(main())
    return runtime


def test_a_denied_overlapped_pull_is_removed_and_denied() -> None:
    runtime = _overlapped(_deny, expect_denial=True)
    assert runtime.methods() == [PULL, REMOVE]
    removed = api_pb2.RemoveImageRequest.FromString(runtime.calls[-1][1])
    assert removed.image.image == "sha256:id"


def test_an_allowed_overlapped_pull_is_pinned() -> None:
    runtime = _overlapped(_allow, expect_denial=False)
    assert runtime.methods() == [PULL, STATUS]
