"""Image volumes (CRI ``Mount.image``) at CreateContainer on the RuntimeService gate: read from
the request, decided like the container's own image on both transports (the splice transport's
memory-only allow and the full check), a denial answering with the mounted image's reason."""

from __future__ import annotations

from pullgate.cri.create_request import MountImage, create_image
from pullgate.cri.methods import CREATE_CONTAINER, IMAGE_STATUS
from pullgate.cri.runtime.v1 import api_pb2
from pullgate.cri.runtime_proxy import RuntimeProxy, parse_create_request
from pullgate.cri.splice.routes import Refusal
from pullgate.errors import Reason
from tests.unit.start.conftest import FakeRuntime, GateWorld
from tests.unit.start.test_container_start import _signed

HEX = "cd" * 32


def _mount(image: str, asked: str = "", sub_path: str = "") -> api_pb2.Mount:
    spec = api_pb2.ImageSpec(image=image, user_specified_image=asked)
    return api_pb2.Mount(image=spec, image_sub_path=sub_path)


def _create(image: str, asked: str, *mounts: api_pb2.Mount) -> bytes:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app"),
        image=api_pb2.ImageSpec(image=image, user_specified_image=asked),
        mounts=list(mounts),
    )
    return api_pb2.CreateContainerRequest(pod_sandbox_id="pod", config=config).SerializeToString()


def _unsigned(gw: GateWorld, name: str, tag: str) -> tuple[str, str]:
    image = gw.image(name, tag=tag)
    return gw.world.ref(tag), image.config.digest


def test_mounts_naming_images_are_read_and_ordinary_mounts_skipped() -> None:
    request = _create(
        f"sha256:{HEX}",
        "app:1",
        _mount(f"sha256:{'ab' * 32}", "registry.test/tools:1", "bin"),
        api_pb2.Mount(),  # a host-path mount: no image
        _mount("", "registry.test/ignored:1"),  # an empty ImageSpec.image is no image volume
        _mount("registry.test/data:2"),
        _mount("ab" * 32),  # CRI-O's bare hex, asked for by itself
    )
    expected = (
        MountImage(image=f"sha256:{'ab' * 32}", asked="registry.test/tools:1", sub_path="bin"),
        MountImage(image="registry.test/data:2", asked="registry.test/data:2"),
        MountImage(image="ab" * 32, asked=f"sha256:{'ab' * 32}"),
    )
    assert parse_create_request(request).mounts == expected
    fields = create_image(request)
    assert fields is not None
    assert fields[3] == expected
    assert parse_create_request(_create(f"sha256:{HEX}", "app:1")).mounts == ()


def test_the_quick_allow_needs_a_current_allow_of_every_mounted_image(
    gw: GateWorld, proxy: RuntimeProxy
) -> None:
    ref, config = _signed(gw, "app", "a1")
    tools_ref, tools = _signed(gw, "tools", "t1")
    _, bare = _unsigned(gw, "bare", "b1")
    assert proxy._quick_create(_create(config, ref)) is not None  # no mounts: as before
    # A mount without a current allow (never verified): the worker must decide.
    assert proxy._quick_create(_create(config, ref, _mount(bare))) is None
    # A mount named by a tag: never decided from memory.
    assert proxy._quick_create(_create(config, ref, _mount(tools_ref))) is None
    # Every image allowed: allowed from memory; settling audits each decided image once.
    gw.audits.clear()
    settle = proxy._quick_create(_create(config, ref, _mount(tools, tools_ref)))
    assert settle is not None
    answer = settle()
    assert getattr(answer, "image_id", None) == config
    assert [(a["image_id"], a["decision"]) for a in gw.audits] == [
        (config, "allow"),
        (tools, "allow"),
    ]
    # One image mounted at two sub paths is one decided image: audited once.
    gw.audits.clear()
    twice = _create(config, ref, _mount(tools, tools_ref, "a"), _mount(tools, tools_ref, "b"))
    settle = proxy._quick_create(twice)
    assert settle is not None
    settle()
    assert [a["image_id"] for a in gw.audits] == [config, tools]
    # After a trust reload nothing is current: the mount's allow lapses with the container's.
    gw.reload()
    assert proxy._quick_create(_create(config, ref, _mount(tools, tools_ref))) is None


def test_the_full_check_denies_an_unsigned_mounted_image_on_both_transports(
    gw: GateWorld, proxy: RuntimeProxy, runtime: FakeRuntime
) -> None:
    ref, config = _signed(gw, "app", "a2")
    bare_ref, bare = _unsigned(gw, "bare", "b2")
    runtime.images[bare] = api_pb2.Image(id=bare, repo_tags=[bare_ref])
    request = _create(config, ref, _mount(bare, bare_ref, "payload"))
    answer = proxy.start_verdict(request)
    assert (answer.allowed, answer.reason) == (False, Reason.NO_SIGNATURE)
    assert answer.image_id == bare
    assert answer.denial.text.startswith("SignatureValidationFailed: NO_SIGNATURE: ")
    # The splice transport's worker refuses the held request with the same answer.
    route = proxy._splice_routes()(CREATE_CONTAINER.encode())
    assert route.verdict is not None
    assert route.verdict(request) == Refusal(2, answer.denial.text)
    # The container alone is allowed: the mount made the difference.
    assert proxy.start_verdict(_create(config, ref)).allowed
    # A signed mount beside it does not help.
    tools_ref, tools = _signed(gw, "tools", "t2")
    both = _create(config, ref, _mount(tools, tools_ref), _mount(bare, bare_ref))
    assert proxy.start_verdict(both).reason is Reason.NO_SIGNATURE


def test_a_denied_container_image_answers_before_its_mounts(
    gw: GateWorld, proxy: RuntimeProxy, runtime: FakeRuntime
) -> None:
    app_ref, app = _unsigned(gw, "app", "a3")
    runtime.images[app] = api_pb2.Image(id=app, repo_tags=[app_ref])
    tools_ref, tools = _signed(gw, "tools", "t3")
    answer = proxy.start_verdict(_create(app, app_ref, _mount(tools, tools_ref)))
    assert (answer.allowed, answer.reason, answer.image_id) == (False, Reason.NO_SIGNATURE, app)


def test_a_tag_form_mount_is_resolved_through_image_status_like_the_container_image(
    gw: GateWorld, proxy: RuntimeProxy, runtime: FakeRuntime
) -> None:
    ref, config = _signed(gw, "app", "a4")
    tools_ref, tools = _signed(gw, "tools", "t4")
    gw.reload()  # nothing current: the tag must be resolved and verified now
    runtime.images[config] = api_pb2.Image(id=config, repo_tags=[ref])
    # The runtime does not know the tag: denied as an unknown image.
    unknown = proxy.start_verdict(_create(config, ref, _mount(tools_ref)))
    assert (unknown.allowed, unknown.reason) == (False, Reason.IMAGE_UNKNOWN)
    assert runtime.calls.count(IMAGE_STATUS) >= 1
    # It knows it: resolved to its image ID and verified now.
    runtime.images[tools_ref] = api_pb2.Image(id=tools, repo_tags=[tools_ref])
    gw.audits.clear()
    answer = proxy.start_verdict(_create(config, ref, _mount(tools_ref)))
    assert (answer.allowed, answer.reason, answer.image_id) == (True, Reason.VERIFIED, config)
    assert [(a["image_id"], a["verified_now"]) for a in gw.audits] == [
        (config, False),
        (tools, True),
    ]
    # The runtime's tag names other content than the signed one: denied as the container
    # image would be.
    _, other = _unsigned(gw, "other", "o4")
    runtime.images[tools_ref] = api_pb2.Image(id=other, repo_tags=[tools_ref])
    moved = proxy.start_verdict(_create(config, ref, _mount(tools_ref)))
    assert (moved.allowed, moved.reason, moved.image_id) == (False, Reason.CONTENT_MISMATCH, other)
