"""The node audit over a stand-in runtime listing: allowed / denied / never-verified, the exit
rule on running containers, and the daemon's audit lines and counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pullgate.cri.runtime.v1 import api_pb2
from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from pullgate.start.audit import ALLOWED, DENIED, NEVER_VERIFIED, audit_node
from pullgate.start.node_auditor import NodeAuditor
from tests.support.pki import NOW
from tests.unit.start.conftest import GateWorld


@dataclass
class Listing:
    """What a runtime reports (a stand-in for the CRI listing)."""

    image_list: list[api_pb2.Image] = field(default_factory=list)
    containers: list[api_pb2.Container] = field(default_factory=list)

    def images(self) -> Sequence[api_pb2.Image]:
        return self.image_list

    def running(self) -> Sequence[api_pb2.Container]:
        return self.containers


def _image(image_id: str, *names: str) -> api_pb2.Image:
    tags = [n for n in names if "@" not in n]
    digests = [n for n in names if "@" in n]
    return api_pb2.Image(id=image_id, repo_tags=tags, repo_digests=digests)


def _container(cid: str, image_id: str, asked: str) -> api_pb2.Container:
    return api_pb2.Container(
        id=cid,
        image_id=image_id,
        image=api_pb2.ImageSpec(image=asked, user_specified_image=asked),
        state=api_pb2.CONTAINER_RUNNING,
    )


def test_images_and_containers_get_their_verdicts(gw: GateWorld) -> None:
    signed, unsigned, nameless = gw.image("s", tag="s1"), gw.image("u", tag="u1"), gw.image("n")
    gw.world.sign(signed.manifest)
    gw.decider.decide(DecisionRequest(reference=gw.world.ref("s1")))
    listing = Listing(
        image_list=[
            _image(signed.config.digest, gw.world.ref("s1")),
            _image(unsigned.config.digest, gw.world.ref("u1")),
            _image(nameless.config.digest),
        ],
        containers=[_container("c1", signed.config.digest, gw.world.ref("s1"))],
    )
    audit = audit_node(listing, gw.gate)
    verdicts = [(f.status, f.reason) for f in audit.images]
    assert verdicts == [
        (ALLOWED, Reason.VERIFIED),
        (DENIED, Reason.NO_SIGNATURE),
        (NEVER_VERIFIED, Reason.NOT_VERIFIED),
    ]
    assert (audit.unverified_containers, audit.unverified_images) == (0, 2)
    # A reload: the running container's allow is no longer current; verified again, allowed.
    gw.reload()
    assert audit_node(listing, gw.gate).unverified_containers == 0


def test_a_running_unsigned_container_fails_the_audit(gw: GateWorld) -> None:
    unsigned = gw.image("bad", tag="b1")
    listing = Listing(
        image_list=[_image(unsigned.config.digest, gw.world.ref("b1"))],
        containers=[_container("c2", unsigned.config.digest, gw.world.ref("b1"))],
    )
    audit = audit_node(listing, gw.gate)
    assert audit.unverified_containers == 1
    assert (audit.containers[0].status, audit.containers[0].reason) == (
        DENIED,
        Reason.NO_SIGNATURE,
    )
    assert [f["kind"] for f in audit.findings()] == ["image", "container"]


def test_the_audit_ignores_break_glass(gw: GateWorld, tmp_path: Any) -> None:
    unsigned = gw.image("glass", tag="g1")
    expires = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "break-glass").write_text(f"expires = {expires}\n")
    ref = gw.world.ref("g1")
    assert gw.gate.check(unsigned.config.digest, ref, [], [ref]).reason is Reason.BREAK_GLASS
    listing = Listing(containers=[_container("c3", unsigned.config.digest, ref)])
    assert audit_node(listing, gw.gate).unverified_containers == 1


def test_the_daemon_auditor_writes_one_line_per_finding(gw: GateWorld) -> None:
    unsigned = gw.image("daemon", tag="d1")
    listing = Listing(
        image_list=[_image(unsigned.config.digest, gw.world.ref("d1"))],
        containers=[_container("c4", unsigned.config.digest, gw.world.ref("d1"))],
    )
    lines: list[dict[str, object]] = []
    auditor = NodeAuditor(listing, gw.gate, interval=60, audit=lines.append)
    result = auditor.run_once()
    assert result is not None
    assert auditor.last is result
    assert [(line["event"], line["kind"]) for line in lines] == [
        ("node.audit", "image"),
        ("node.audit", "container"),
    ]
