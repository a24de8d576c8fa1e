"""The CRI proxy against a fake runtime: what is forwarded, what is gated, what comes back.

The real-containerd end-to-end tests live in ``tests/integration/test_cri_proxy.py``; these pin
the byte-level forwarding contract (original bytes, metadata, deadlines, status codes) and the
fail-closed paths that containerd cannot provoke.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from pullgate.cri.methods import normalise_method
from pullgate.cri.proxy import CriProxy
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.decision.audit_log import AuditLog
from pullgate.decision.model import Decision, DecisionRequest
from pullgate.decision.record import DecisionRecorder
from pullgate.errors import MalformedInput, Reason, VerificationInconclusive

DIGEST = "sha256:" + "d" * 64
IMAGE = "r.io/team/app:v1"
PULL = "/runtime.v1.ImageService/PullImage"
ECHO = "/runtime.v1.ImageService/EchoFromTheFuture"  # a CRI method pullgate does not know
STREAM = "/runtime.v1.ImageService/StreamImages"  # server-streaming
STATUS = "/runtime.v1.ImageService/ImageStatus"
REMOVE = "/runtime.v1.ImageService/RemoveImage"
MOVED = ["r.io/team/app@sha256:" + "e" * 64]  # what the tag names after it moved


@dataclass
class FakeRuntime:
    """Records every call; answers PullImage/ImageStatus like containerd, echoes the rest."""

    repo_digests: list[str] = field(default_factory=lambda: [f"r.io/team/app@{DIGEST}"])
    calls: list[tuple[str, bytes, dict[str, Any], float | None]] = field(default_factory=list)
    pull_gate: asyncio.Event | None = None  # when set, PullImage waits for it (a slow pull)
    status_gate: asyncio.Event | None = None  # when set, ImageStatus waits for it
    pull_error: grpc.StatusCode | None = None  # PullImage fails so (after "storing" the image)
    cancelled: list[str] = field(default_factory=list)  # methods whose call the caller cancelled
    stored: bool = True  # ImageStatus finds an image (RemoveImage removes it)

    def handler(self) -> grpc.GenericRpcHandler:
        runtime = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details: grpc.HandlerCallDetails) -> Any:
                method = details.method

                async def unary(
                    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
                ) -> bytes:
                    meta = dict(context.invocation_metadata() or ())
                    runtime.calls.append((method, request, meta, context.time_remaining()))
                    try:
                        return await runtime.answer(method, request, context)
                    except asyncio.CancelledError:
                        runtime.cancelled.append(method)
                        raise

                async def stream(
                    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
                ) -> AsyncIterator[bytes]:
                    runtime.calls.append((method, request, {}, context.time_remaining()))
                    await context.send_initial_metadata((("x-init", "stream"),))
                    yield b"one"
                    yield b"two"
                    context.set_trailing_metadata((("x-trail", "stream"),))

                if method == STREAM:
                    return grpc.unary_stream_rpc_method_handler(stream)
                return grpc.unary_unary_rpc_method_handler(unary)

        return Handler()

    async def answer(
        self, method: str, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        if method.endswith("/Fail"):
            await context.send_initial_metadata((("x-init", "fail"),))
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing", (("x-why", "because"),))
        if method == PULL:
            if self.pull_gate is not None:
                await self.pull_gate.wait()
            if self.pull_error is not None:
                await context.abort(self.pull_error, "failed after storing the image")
            return api_pb2.PullImageResponse(image_ref="sha256:id").SerializeToString()
        if method.endswith("/ImageStatus"):
            if self.status_gate is not None:
                await self.status_gate.wait()
            if not self.stored:
                return b""
            image = api_pb2.Image(id="sha256:id", size=1, repo_digests=self.repo_digests)
            return api_pb2.ImageStatusResponse(image=image).SerializeToString()
        if method == REMOVE:
            self.stored = False
        context.set_trailing_metadata((("x-echo", "yes"),))
        return request

    def methods(self) -> list[str]:
        return [c[0] for c in self.calls]


def _allow(request: DecisionRequest) -> Decision:
    return Decision(
        allowed=True,
        reason=Reason.VERIFIED,
        message="ok",
        reference=request.reference,
        digest=DIGEST,
    )


def _crash(request: DecisionRequest) -> Decision:
    raise AssertionError(f"the decision layer must not be asked about {request.reference}")


def _deny(request: DecisionRequest) -> Decision:
    return Decision(
        allowed=False,
        reason=Reason.UNTRUSTED,
        message="untrusted signer",
        reference=request.reference,
        digest=DIGEST,
    )


Scenario = Callable[[grpc.aio.Channel, FakeRuntime], Awaitable[None]]


def _run(
    decide: Callable[[DecisionRequest], Decision],
    scenario: Scenario,
    *,
    audit: Callable[[dict[str, Any]], None] | None = None,
    proxies: list[CriProxy] | None = None,
    recheck_after: tuple[float, ...] = (),
    **kw: Any,
) -> FakeRuntime:
    """Run ``scenario`` against a proxy in front of a fake runtime; ``proxies`` receives the
    proxy (for scenarios that look at it or stop it). Failed pulls are checked once only unless
    ``recheck_after`` says otherwise."""
    runtime = FakeRuntime(**kw)

    async def main() -> None:
        tag = uuid.uuid4().hex[:10]
        upstream, front = Path(f"/tmp/pg-up-{tag}.sock"), Path(f"/tmp/pg-front-{tag}.sock")
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((runtime.handler(),))
        server.add_insecure_port(f"unix:{upstream}")
        await server.start()
        proxy = CriProxy(
            str(upstream),
            decide,
            recorder=DecisionRecorder(audit),
            recheck_after=recheck_after,
        )
        if proxies is not None:
            proxies.append(proxy)
        await proxy.start(front, mode=0o600)
        try:
            assert front.stat().st_mode & 0o777 == 0o600
            async with grpc.aio.insecure_channel(f"unix:{front}") as channel:
                await scenario(channel, runtime)
        finally:
            await proxy.stop(0)
            await server.stop(0)
            upstream.unlink(missing_ok=True)
            front.unlink(missing_ok=True)

    asyncio.run(main())
    return runtime


def _identity(data: bytes) -> bytes:
    return data


async def _raw(
    channel: grpc.aio.Channel, method: str, request: bytes, **kw: Any
) -> tuple[bytes, grpc.aio.Metadata | None]:
    stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        method, request_serializer=_identity, response_deserializer=_identity
    )
    call = stub(request, **kw)
    response: bytes = await call
    return response, await call.trailing_metadata()


def _pull_bytes(image: str = IMAGE) -> bytes:
    request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
    return request.SerializeToString() + b"\xfa\x06\x03new"  # field 111: a future CRI field


async def _expect_error(coro: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await coro
    return excinfo.value


def test_unknown_methods_forward_bytes_metadata_and_deadline() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        response, trailing = await _raw(
            channel, ECHO, b"\x00opaque", metadata=(("x-trace", "t1"),), timeout=30
        )
        assert response == b"\x00opaque"
        assert ("x-echo", "yes") in tuple(trailing or ())

    runtime = _run(_allow, scenario)
    [(method, request, meta, remaining)] = runtime.calls
    assert (method, request, meta["x-trace"]) == (ECHO, b"\x00opaque", "t1")
    assert remaining is not None
    # The deadline travels as a grpc-timeout header whose encoding rounds up a little.
    assert 0 < remaining <= 31


def test_upstream_status_is_passed_back() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, "/runtime.v1.ImageService/Fail", b""))
        assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "no such thing")
        assert ("x-why", "because") in tuple(err.trailing_metadata() or ())
        assert ("x-init", "fail") in tuple(err.initial_metadata() or ())

    _run(_allow, scenario)


def test_allowed_pull_forwards_the_original_bytes_then_pins() -> None:
    seen: list[DecisionRequest] = []

    def decide(request: DecisionRequest) -> Decision:
        seen.append(request)
        return _allow(request)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        response, _ = await _raw(channel, PULL, _pull_bytes())
        assert api_pb2.PullImageResponse.FromString(response).image_ref == "sha256:id"

    runtime = _run(decide, scenario)
    assert runtime.methods() == [PULL, "/runtime.v1.ImageService/ImageStatus"]
    assert runtime.calls[0][1] == _pull_bytes()
    assert [(r.reference, r.caller) for r in seen] == [(IMAGE, "cri")]


def test_pin_mismatch_removes_and_denies() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, PULL, _pull_bytes()))
        assert err.code() == grpc.StatusCode.UNKNOWN
        assert (err.details() or "").startswith("SignatureValidationFailed: DESCRIPTOR_MISMATCH: ")

    runtime = _run(_allow, scenario, repo_digests=["r.io/team/app@sha256:" + "e" * 64])
    assert runtime.methods()[-1] == "/runtime.v1.ImageService/RemoveImage"
    removed = api_pb2.RemoveImageRequest.FromString(runtime.calls[-1][1])
    assert removed.image.image == "sha256:id"


@pytest.mark.parametrize("image", [f"r.io/team/app@{DIGEST}", f"r.io/team/app:v1@{DIGEST}"])
def test_pull_by_the_verified_digest_needs_no_pin(image: str) -> None:
    seen: list[DecisionRequest] = []

    def decide(request: DecisionRequest) -> Decision:
        seen.append(request)
        return _allow(request)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        await _raw(channel, PULL, _pull_bytes(image))

    # The runtime would not even list the digest: only the skipped check could notice.
    runtime = _run(decide, scenario, repo_digests=[])
    assert runtime.methods() == [PULL]
    assert [r.digest for r in seen] == [DIGEST]


def test_pull_by_another_digest_than_the_verified_one_is_pinned() -> None:
    # E.g. the request names an index and the decision reports the platform manifest it checked.
    index = "sha256:" + "a" * 64

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, PULL, _pull_bytes(f"r.io/team/app@{index}")))
        assert err.code() == grpc.StatusCode.UNKNOWN

    runtime = _run(_allow, scenario, repo_digests=[f"r.io/team/app@{index}"])
    assert runtime.methods() == [
        PULL,
        "/runtime.v1.ImageService/ImageStatus",
        "/runtime.v1.ImageService/RemoveImage",
    ]


@pytest.mark.parametrize(
    ("decide_result", "prefix"),
    [
        (_deny, "SignatureValidationFailed: UNTRUSTED: "),
        ("inconclusive", "RegistryUnavailable: TIMEOUT: "),
        ("crash", "SignatureValidationFailed: INTERNAL: "),
    ],
)
def test_denials_never_reach_the_runtime(decide_result: Any, prefix: str) -> None:
    def decide(request: DecisionRequest) -> Decision:
        if decide_result == "inconclusive":
            raise VerificationInconclusive(Reason.TIMEOUT, "too slow")
        if decide_result == "crash":
            raise KeyError("bug")
        result: Decision = decide_result(request)
        return result

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, PULL, _pull_bytes()))
        assert err.code() == grpc.StatusCode.UNKNOWN
        assert (err.details() or "").startswith(prefix), err.details()

    assert _run(decide, scenario).calls == []


@pytest.mark.parametrize("request_bytes", [b"\xff\xff", _pull_bytes("Bad Ref"), _pull_bytes("")])
def test_malformed_pull_requests_are_denied(request_bytes: bytes) -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, PULL, request_bytes))
        assert err.code() == grpc.StatusCode.UNKNOWN
        assert (err.details() or "").startswith("SignatureValidationFailed: MALFORMED: ")

    assert _run(_allow, scenario).calls == []


def test_pull_image_without_leading_slash_is_gated() -> None:
    # grpc-go routes "runtime.v1.ImageService/PullImage" as PullImage: it must be gated too.
    seen: list[DecisionRequest] = []

    def decide(request: DecisionRequest) -> Decision:
        seen.append(request)
        return _deny(request)

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, PULL[1:], _pull_bytes()))
        assert err.code() == grpc.StatusCode.UNKNOWN
        assert (err.details() or "").startswith("SignatureValidationFailed: UNTRUSTED: ")

    assert _run(decide, scenario).calls == []
    assert [r.reference for r in seen] == [IMAGE]


def test_allowed_pull_without_leading_slash_is_forwarded_under_the_canonical_path() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        await _raw(channel, PULL[1:], _pull_bytes())

    runtime = _run(_allow, scenario)
    assert runtime.methods() == [PULL, "/runtime.v1.ImageService/ImageStatus"]


def test_unknown_method_without_leading_slash_is_forwarded_normalised() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        response, _ = await _raw(channel, ECHO[1:], b"x")
        assert response == b"x"

    assert _run(_allow, scenario).methods() == [ECHO]


@pytest.mark.parametrize(
    "method",
    [
        "/runtime.v1alpha2.ImageService/PullImage",
        "runtime.v1alpha2.ImageService/PullImage",
        "/runtime.v1alpha2.RuntimeService/Version",
        "/runtime.v1.RuntimeService/Version",
        "/runtime.v1.RuntimeService/ExecSync",
        "/runtime.v1.RuntimeService/CreateContainer",
        "runtime.v1.RuntimeService/RunPodSandbox",
        "/runtime.v1.ImageServiceX/PullImage",
        "/containerd.services.transfer.v1.Transfer/Transfer",
        "/containerd.services.images.v1.Images/Create",
        "/containerd.services.content.v1.Content/Write",
        "/grpc.health.v1.Health/Check",
        "/runtime.v1/PullImage",
        "/runtime.v1ImageService/PullImage",
        "/other.Service/Echo",
    ],
)
def test_non_cri_services_are_refused_and_audited(method: str) -> None:
    records: list[dict[str, Any]] = []

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, method, _pull_bytes()))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    runtime = _run(_crash, scenario, audit=records.append)
    assert runtime.calls == []
    assert [(r["event"], r["decision"], r["method"]) for r in records] == [
        ("cri.refused", "deny", method)
    ]


@pytest.mark.parametrize(
    "method",
    [
        "/",
        "//runtime.v1.ImageService/PullImage",
        "/runtime.v1.ImageService/",
        "/runtime.v1.ImageService",
        "runtime.v1.ImageService",
        "/runtime.v1.ImageService/PullImage/",
        "/runtime.v1.ImageService/x/PullImage",
        "/runtime.v1.ImageService/Pull%49mage",
        "/runtime.v1..ImageService/PullImage",
        "/.runtime.v1.ImageService/PullImage",
        "/runtime.v1.ImageService/PullImage ",
    ],
)
def test_malformed_method_paths_are_refused(method: str) -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, method, _pull_bytes()))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    assert _run(_crash, scenario).calls == []


def test_empty_method_path_is_never_forwarded() -> None:
    # grpc's synchronous server cancels a call with an empty path before any handler sees it
    # (so it is not audited either); what matters is that it never reaches the runtime.
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, "", _pull_bytes()))
        assert err.code() in {grpc.StatusCode.CANCELLED, grpc.StatusCode.PERMISSION_DENIED}

    assert _run(_crash, scenario).calls == []


def test_refusal_answers_a_streaming_call_without_waiting_for_its_requests() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        stub = channel.stream_stream(
            "/containerd.services.content.v1.Content/Write",
            request_serializer=_identity,
            response_deserializer=_identity,
        )
        never_ending: asyncio.Queue[bytes] = asyncio.Queue()

        async def requests() -> Any:
            # The client sends no message and never half-closes: the refusal must not wait for
            # either. (A message sent while the refusal is on its way races with it, and the
            # client then reports its failed write instead of the status.)
            await never_ending.get()
            yield b"unreachable"  # pragma: no cover

        call = stub(requests(), timeout=30)
        err = await _expect_error(call.read())
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    assert _run(_crash, scenario).calls == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/runtime.v1.ImageService/PullImage", "/runtime.v1.ImageService/PullImage"),
        ("runtime.v1.ImageService/PullImage", "/runtime.v1.ImageService/PullImage"),
        (b"/runtime.v1.RuntimeService/Version", "/runtime.v1.RuntimeService/Version"),
    ],
)
def test_normalise_method(raw: object, expected: str) -> None:
    assert normalise_method(raw) == expected


@pytest.mark.parametrize("raw", [None, 7, b"/runtime.v1.I\xffmageService/X", "a/b/c", "/a b/c"])
def test_normalise_method_rejects_malformed_paths(raw: object) -> None:
    with pytest.raises(MalformedInput) as excinfo:
        normalise_method(raw)
    assert excinfo.value.reason is Reason.MALFORMED


def test_start_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "cri.sock"
    target.write_text("not a socket")
    proxy = CriProxy("/nonexistent.sock", _allow, recorder=DecisionRecorder(None))
    with pytest.raises(FileExistsError):
        asyncio.run(proxy.start(target))
    assert target.read_text() == "not a socket"


@pytest.mark.parametrize("with_sink", [True, False])
def test_each_refusal_is_audited_exactly_once(
    with_sink: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # ``pullgate serve`` passes its audit log (which writes ``pullgate.audit``) as the sink:
    # the proxy must not write the same record to ``pullgate.audit`` a second time.
    records: list[dict[str, Any]] = []
    method = "/containerd.services.content.v1.Content/Write"

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, method, b""))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    with caplog.at_level(logging.INFO, logger="pullgate.audit"):
        _run(_crash, scenario, audit=records.append if with_sink else AuditLog().write)
    lines = [r for r in caplog.records if r.name == "pullgate.audit"]
    if with_sink:
        assert ([r["event"] for r in records], lines) == (["cri.refused"], [])
    else:  # the daemon's sink: one line, naming the front end
        logged = [json.loads(r.getMessage()) for r in lines]
        assert [(d["event"], d["front"]) for d in logged] == [("cri.refused", "cri")]


def test_image_fs_info_answers_while_a_hundred_pulls_are_in_flight() -> None:
    # Each pull in flight holds a proxy handler thread; the kubelet's ImageFsInfo / ImageStatus
    # must still be answered (kubelet with serializeImagePulls=false and no parallel limit).
    parallel = 100

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        gate = runtime.pull_gate = asyncio.Event()
        pulls = [asyncio.ensure_future(_raw(channel, PULL, _pull_bytes())) for _ in range(parallel)]

        async def all_pulls_reached_the_runtime() -> None:
            while runtime.methods().count(PULL) < parallel:
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(all_pulls_reached_the_runtime(), timeout=30)
            await _raw(channel, "/runtime.v1.ImageService/ImageFsInfo", b"", timeout=10)
        finally:
            gate.set()
        await asyncio.gather(*pulls)

    runtime = _run(_allow, scenario)
    assert runtime.methods().count("/runtime.v1.ImageService/ImageFsInfo") == 1


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def _pull_call(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryCall[bytes, bytes]:
    stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        PULL, request_serializer=_identity, response_deserializer=_identity
    )
    return stub(_pull_bytes())


def test_a_pull_the_kubelet_cancels_is_cancelled_at_the_runtime() -> None:
    # E.g. the pod was deleted mid-pull: containerd must stop pulling, as without the proxy.
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        runtime.pull_gate = asyncio.Event()
        call = _pull_call(channel)
        await _until(lambda: PULL in runtime.methods())
        call.cancel()
        await _until(lambda: runtime.cancelled == [PULL])

    assert _run(_allow, scenario).cancelled == [PULL]


@dataclass
class HeldDecision:
    """A decision function that blocks until released (to act while a pull is being decided)."""

    deciding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, request: DecisionRequest) -> Decision:
        self.deciding.set()
        self.release.wait(20)
        return _allow(request)


def test_a_pull_cancelled_during_its_decision_never_completes_at_the_runtime() -> None:
    # The proxy forwards nothing for a caller it knows is gone; a cancellation still on its way
    # when the decision ends is passed on to the runtime's pull instead. Either way no pull the
    # kubelet cancelled completes.
    held = HeldDecision()
    proxies: list[CriProxy] = []

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        runtime.pull_gate = asyncio.Event()  # never set: a forwarded pull would hang
        call = _pull_call(channel)
        await _until(held.deciding.is_set)
        call.cancel()
        held.release.set()
        [proxy] = proxies
        await _until(lambda: proxy.pulls_in_flight == 0)
        await _until(lambda: runtime.cancelled.count(PULL) == runtime.methods().count(PULL))

    _run(held, scenario, proxies=proxies)


def test_stop_lets_a_pull_being_decided_finish() -> None:
    # A graceful stop (daemon shutdown) must not pull the upstream channel from under a pull
    # that was mid-decision: it is forwarded, pinned and answered.
    held = HeldDecision()
    proxies: list[CriProxy] = []

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        pull = asyncio.ensure_future(_raw(channel, PULL, _pull_bytes()))
        await _until(held.deciding.is_set)
        [proxy] = proxies
        stopping = asyncio.ensure_future(proxy.stop(10))
        held.release.set()
        response, _ = await pull
        await stopping
        assert api_pb2.PullImageResponse.FromString(response).image_ref == "sha256:id"

    runtime = _run(held, scenario, proxies=proxies)
    assert runtime.methods() == [PULL, "/runtime.v1.ImageService/ImageStatus"]


def test_server_streaming_calls_pass_messages_and_metadata_through() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        stub: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            STREAM, request_serializer=_identity, response_deserializer=_identity
        )
        call = stub(b"list", timeout=30)
        assert [m async for m in call] == [b"one", b"two"]
        assert ("x-init", "stream") in tuple(await call.initial_metadata() or ())
        assert ("x-trail", "stream") in tuple(await call.trailing_metadata() or ())

    assert _run(_allow, scenario).methods() == [STREAM]


@pytest.mark.parametrize("tag_names", [MOVED, [f"r.io/team/app@{DIGEST}"]], ids=["moved", "same"])
def test_a_pull_cancelled_after_the_runtime_stored_it_is_still_checked(
    tag_names: list[str],
) -> None:
    # The kubelet gives up (pod deleted) just as containerd stores the image: if the tag moved
    # between verification and pull, the stored image must go, exactly as after a completed pull.
    proxies: list[CriProxy] = []

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        runtime.pull_gate = asyncio.Event()
        call = _pull_call(channel)
        await _until(lambda: PULL in runtime.methods())
        call.cancel()
        [proxy] = proxies
        await _until(lambda: proxy.pulls_in_flight == 0)

    runtime = _run(_allow, scenario, proxies=proxies, repo_digests=tag_names)
    expected = [PULL, STATUS, REMOVE] if tag_names == MOVED else [PULL, STATUS]
    assert runtime.methods() == expected


def test_a_pull_that_fails_after_the_runtime_stored_it_is_still_checked() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        err = await _expect_error(_raw(channel, PULL, _pull_bytes()))
        assert err.code() == grpc.StatusCode.INTERNAL  # the runtime's own status

    runtime = _run(_allow, scenario, repo_digests=MOVED, pull_error=grpc.StatusCode.INTERNAL)
    assert runtime.methods() == [PULL, STATUS, REMOVE]


def test_a_stop_does_not_cut_off_a_pin_in_progress() -> None:
    # The pin's ImageStatus answers only after stop()'s grace ran out: the RemoveImage that
    # follows must still reach the runtime (the channel stays open for it).
    proxies: list[CriProxy] = []

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        runtime.status_gate = asyncio.Event()
        pull = asyncio.ensure_future(_raw(channel, PULL, _pull_bytes()))
        await _until(lambda: STATUS in runtime.methods())
        [proxy] = proxies
        await proxy.stop(0.2)
        runtime.status_gate.set()
        await _until(lambda: REMOVE in runtime.methods())
        with pytest.raises(grpc.aio.AioRpcError):
            await pull

    runtime = _run(_allow, scenario, proxies=proxies, repo_digests=MOVED)
    assert runtime.methods() == [PULL, STATUS, REMOVE]


# Re-checks of a failed or cancelled tag pull, shortened for the tests.
RECHECK = (0.05, 0.1, 0.2, 0.4, 0.8, 1.2)


async def _fail_pull(channel: grpc.aio.Channel, runtime: FakeRuntime, how: str) -> None:
    """A tag pull the kubelet cancels, or that the runtime fails, before the runtime stored it."""
    if how == "cancelled":
        runtime.pull_gate = asyncio.Event()
        call = _pull_call(channel)
        await _until(lambda: PULL in runtime.methods())
        call.cancel()
    else:
        runtime.pull_error = grpc.StatusCode.INTERNAL
        await _expect_error(_raw(channel, PULL, _pull_bytes()))
    await _until(lambda: runtime.methods().count(STATUS) == 1)  # the immediate check


@pytest.mark.parametrize("how", ["cancelled", "failed"])
def test_an_unverified_image_the_runtime_stores_after_a_failed_pull_is_removed(how: str) -> None:
    # containerd keeps pulling after the proxy's call was cancelled, and its CRI plugin records
    # the image asynchronously: the immediate check finds nothing, the tag (moved after
    # verification) names an unverified image a moment later. A re-check must remove it.
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        await _fail_pull(channel, runtime, how)
        await asyncio.sleep(0.5)
        runtime.stored = True
        await _until(lambda: REMOVE in runtime.methods(), timeout=10)

    runtime = _run(_allow, scenario, recheck_after=RECHECK, stored=False, repo_digests=MOVED)
    assert not runtime.stored
    assert runtime.methods()[:2] == [PULL, STATUS]


def test_the_verified_image_stored_after_a_failed_pull_is_kept() -> None:
    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        await _fail_pull(channel, runtime, "cancelled")
        await asyncio.sleep(0.5)
        runtime.stored = True
        await _until(lambda: runtime.methods().count(STATUS) == 1 + len(RECHECK), timeout=10)

    runtime = _run(_allow, scenario, recheck_after=RECHECK, stored=False)
    assert runtime.stored
    assert REMOVE not in runtime.methods()


@pytest.mark.parametrize("grace", [0.0, 5.0])
def test_stop_drops_re_checks_due_after_its_grace(grace: float) -> None:
    # A re-check an hour away must neither hold up a stop nor make it raise; one due within the
    # grace still runs.
    proxies: list[CriProxy] = []

    async def scenario(channel: grpc.aio.Channel, runtime: FakeRuntime) -> None:
        await _fail_pull(channel, runtime, "cancelled")
        await _until(lambda: runtime.methods().count(STATUS) == 2)  # the first re-check
        runtime.stored = True
        [proxy] = proxies
        await asyncio.wait_for(proxy.stop(grace), 10)

    runtime = _run(
        _allow,
        scenario,
        proxies=proxies,
        recheck_after=(0.05, 0.5, 3600.0),
        stored=False,
        repo_digests=MOVED,
    )
    if grace:
        assert runtime.methods()[1:] == [STATUS, STATUS, STATUS, REMOVE]
    else:
        assert runtime.methods()[1:] == [STATUS, STATUS]
        assert runtime.stored
