"""The RuntimeService gate's StartContainer and CreateContainer decisions over a fake runtime:
the start re-checked on the image the container holds, the create's decided image held to,
CRI-O's bare-hex image IDs, and the one table of decided methods both transports read."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from pullgate.common.descriptor import image_id
from pullgate.cri.container_start import START_FRONT
from pullgate.cri.methods import (
    CREATE_CONTAINER,
    LIST_CONTAINERS,
    PULL_IMAGE,
    START_CONTAINER,
)
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.cri.runtime_proxy import RuntimeProxy, names_tag, pin_create_request
from pullgate.cri.splice.routes import TAKE_OVER, RouteKind
from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from tests.unit.start.conftest import FakeRuntime, GateWorld

HEX = "ab" * 32


def _signed(gw: GateWorld, name: str, tag: str) -> tuple[str, str]:
    """A signed image allowed through the decider: its tag reference and image ID."""
    image = gw.image(name, tag=tag)
    gw.world.sign(image.manifest)
    ref = gw.world.ref(tag)
    assert gw.decider.decide(DecisionRequest(reference=ref)).allowed
    return ref, image.config.digest


def _create(image: str, asked: str = "", *, name: str = "app", attempt: int = 0) -> bytes:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name, attempt=attempt),
        image=api_pb2.ImageSpec(image=image, user_specified_image=asked),
    )
    return api_pb2.CreateContainerRequest(pod_sandbox_id="pod", config=config).SerializeToString()


def _container(cid: str, held: str, asked: str, *, name: str = "app") -> api_pb2.Container:
    return api_pb2.Container(
        id=cid,
        pod_sandbox_id="pod",
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=asked, user_specified_image=asked),
        image_ref=held,
    )


def _start(cid: str) -> bytes:
    return api_pb2.StartContainerRequest(container_id=cid).SerializeToString()


def _verdict(proxy: RuntimeProxy, method: str, request: bytes) -> tuple[bool, Reason]:
    answer = proxy.verdicts()[method](request)
    return answer.allowed, answer.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"sha256:{HEX}", f"sha256:{HEX}"),
        (HEX, f"sha256:{HEX}"),  # CRI-O
        (HEX[:-1], None),
        (HEX + "a", None),
        (HEX.upper(), None),
        (f"sha256:{HEX[:-1]}", None),
        (f"{HEX}:latest", None),
        ("nginx", None),
        ("", None),
    ],
)
def test_only_a_digest_or_exactly_64_lowercase_hex_is_an_image_id(
    value: str, expected: str | None
) -> None:
    assert image_id(value) == expected


def test_a_crio_bare_hex_image_id_is_decided_as_its_digest(
    gw: GateWorld, proxy: RuntimeProxy, runtime: FakeRuntime
) -> None:
    ref, config = _signed(gw, "crio", "c1")
    bare = config.removeprefix("sha256:")
    # The kubelet's form: the ID as CRI-O reports it.
    assert _verdict(proxy, CREATE_CONTAINER, _create(bare, ref)) == (True, Reason.VERIFIED)
    # A tag, resolved through ImageStatus, whose answer carries the bare ID.
    runtime.images[ref] = api_pb2.Image(id=bare, repo_tags=[ref])
    assert _verdict(proxy, CREATE_CONTAINER, _create(ref, ref, name="b")) == (True, Reason.VERIFIED)
    # And a container whose runtime record reports it so starts.
    runtime.containers["c"] = _container("c", bare, ref)
    assert _verdict(proxy, START_CONTAINER, _start("c")) == (True, Reason.VERIFIED)


def test_a_start_is_decided_again_on_the_image_the_container_holds(
    gw: GateWorld, proxy: RuntimeProxy, runtime: FakeRuntime
) -> None:
    ref, config = _signed(gw, "reload", "r1")
    runtime.containers["c"] = _container("c", config, ref)
    assert _verdict(proxy, START_CONTAINER, _start("c")) == (True, Reason.VERIFIED)
    assert (gw.audits[-1]["event"], gw.audits[-1]["front"]) == ("start.start", START_FRONT)
    assert not gw.audits[-1]["verified_now"]  # the recorded allow is current
    gw.reload()  # a new trust snapshot: the allow is no longer current, so it is verified now
    runtime.images[config] = api_pb2.Image(id=config, repo_tags=[ref])
    assert _verdict(proxy, START_CONTAINER, _start("c")) == (True, Reason.VERIFIED)
    assert gw.audits[-1]["verified_now"]
    # An unsigned image the container holds (created behind the gate's back) does not start.
    unsigned = gw.image("unsigned", tag="u1")
    runtime.images[unsigned.config.digest] = api_pb2.Image(
        id=unsigned.config.digest, repo_tags=[gw.world.ref("u1")]
    )
    runtime.containers["u"] = _container("u", unsigned.config.digest, gw.world.ref("u1"))
    assert _verdict(proxy, START_CONTAINER, _start("u")) == (False, Reason.NO_SIGNATURE)
    assert runtime.removed == []  # refused, not removed: it holds what it was created from


def test_a_start_of_an_unknown_container_or_a_malformed_request_is_refused(
    proxy: RuntimeProxy,
) -> None:
    assert _verdict(proxy, START_CONTAINER, _start("missing")) == (False, Reason.IMAGE_UNKNOWN)
    assert _verdict(proxy, START_CONTAINER, b"\xff") == (False, Reason.IMAGE_UNKNOWN)
    assert _verdict(proxy, START_CONTAINER, b"") == (False, Reason.IMAGE_UNKNOWN)


def test_a_container_holding_other_content_than_its_create_decided_is_removed(
    gw: GateWorld, proxy: RuntimeProxy, runtime: FakeRuntime
) -> None:
    ref, decided = _signed(gw, "decided", "d1")
    _, other = _signed(gw, "other", "d2")  # allowed too, in the same repository
    runtime.images[ref] = api_pb2.Image(id=decided, repo_tags=[ref])
    assert _verdict(proxy, CREATE_CONTAINER, _create(ref, ref)) == (True, Reason.VERIFIED)
    # The tag moved before the runtime resolved it: the container holds the other image.
    runtime.containers["c"] = _container("c", other, ref)
    assert _verdict(proxy, START_CONTAINER, _start("c")) == (False, Reason.CONTENT_MISMATCH)
    assert runtime.removed == ["c"]


def test_the_kubelet_id_form_is_held_to_its_id_and_asks_the_runtime_nothing_more(
    gw: GateWorld, proxy: RuntimeProxy, runtime: FakeRuntime
) -> None:
    ref, config = _signed(gw, "kubelet", "k1")
    assert _verdict(proxy, CREATE_CONTAINER, _create(config, ref)) == (True, Reason.VERIFIED)
    assert runtime.calls == []  # decided from the store: no ImageStatus
    runtime.containers["c"] = _container("c", config, ref)
    assert _verdict(proxy, START_CONTAINER, _start("c")) == (True, Reason.VERIFIED)
    assert runtime.calls == [LIST_CONTAINERS]


def test_both_transports_decide_the_same_methods(proxy: RuntimeProxy) -> None:
    gated = set(proxy.gated())
    assert gated == {PULL_IMAGE, CREATE_CONTAINER, START_CONTAINER}
    assert set(proxy.verdicts()) <= gated
    route = proxy._splice_routes()
    for method in gated:
        assert route(method.encode()).kind in (RouteKind.DECIDE, RouteKind.ANSWER)
    assert route(START_CONTAINER.encode()).kind is RouteKind.DECIDE
    assert route(b"/runtime.v1.RuntimeService/ListContainers").kind is RouteKind.PASS
    handler = proxy.router().service(_Details(START_CONTAINER))
    assert handler is not None
    assert getattr(handler.unary_unary, "__func__", None) is RuntimeProxy.start_container


@dataclass(frozen=True)
class _Details(grpc.HandlerCallDetails):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


def test_a_tag_form_create_is_pinned_to_the_decided_image_and_nothing_else_changes() -> None:
    decided = f"sha256:{HEX}"
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app", attempt=2),
        image=api_pb2.ImageSpec(image="registry.test/app:v1", annotations={"a": "b"}),
        labels={"l": "v"},
    )
    original = api_pb2.CreateContainerRequest(pod_sandbox_id="pod", config=config)
    data = original.SerializeToString() + b"\xa2\x06\x01x"  # an unknown field (100) too
    pinned = pin_create_request(data, decided)
    assert pinned.startswith(data)  # the caller's bytes are kept; an override is appended
    parsed = api_pb2.CreateContainerRequest.FromString(pinned)
    expected = api_pb2.CreateContainerRequest.FromString(data)
    expected.config.image.image = decided
    expected.config.image.user_specified_image = "registry.test/app:v1"  # was empty
    assert parsed == expected
    # An image-ID request, no decided ID, or an undecodable request: unchanged.
    by_id = _create(decided, "registry.test/app:v1")
    assert pin_create_request(by_id, f"sha256:{'cd' * 32}") == by_id
    assert pin_create_request(data, "registry.test/app:v1") == data
    assert pin_create_request(b"\xff", decided) == b"\xff"
    # A user_specified_image the request carries is kept as it is.
    asked = _create("registry.test/app:v1", "app:v1")
    assert (
        api_pb2.CreateContainerRequest.FromString(
            pin_create_request(asked, decided)
        ).config.image.user_specified_image
        == "app:v1"
    )


def test_only_tag_form_creates_are_handed_to_the_handler_on_splice(proxy: RuntimeProxy) -> None:
    assert names_tag(_create("registry.test/app:v1"))
    assert not names_tag(_create(f"sha256:{HEX}"))
    assert not names_tag(_create(HEX))  # CRI-O's form of an image ID
    assert not names_tag(b"\xff")  # the verdict refuses it
    route = proxy._splice_routes()(CREATE_CONTAINER.encode())
    assert route.verdict is not None
    assert route.verdict(_create("registry.test/app:v1")) is TAKE_OVER
    assert route.handler is not None
