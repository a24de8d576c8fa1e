"""The start gate's core: local checks, verify-now with config-digest binding, critical images,
break-glass, background verification."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from pullgate.decision.model import DecisionRequest
from pullgate.errors import ConfigError, Reason
from pullgate.start.break_glass import parse_break_glass
from pullgate.start.gate import StartGate
from pullgate.start.verdicts import VerdictStore
from tests.support.pki import NOW
from tests.unit.decision.world import StepClock, make_world
from tests.unit.start.conftest import GateWorld, make_gate


def _stamp(delta: timedelta) -> str:
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_local_check_allows_only_recorded_content(gw: GateWorld) -> None:
    image, other = gw.image("a", tag="a1"), gw.image("b", tag="b1")
    gw.world.sign(image.manifest)
    gw.world.sign(other.manifest)
    ref = gw.world.ref("a1")
    gw.decider.decide(DecisionRequest(reference=ref))
    allowed = gw.gate.check_local(image.config.digest, ref)
    assert (allowed.allowed, allowed.reason) == (True, Reason.VERIFIED)
    # Not recorded yet (never pulled through pullgate): NOT_VERIFIED, no network.
    denied = gw.gate.check_local(other.config.digest, gw.world.ref("b1"))
    assert (denied.allowed, denied.reason) == (False, Reason.NOT_VERIFIED)
    assert gw.audits[-1]["reason"] == "NOT_VERIFIED"


def test_local_check_is_per_repository_unless_asked_by_image_id(gw: GateWorld) -> None:
    image = gw.image("shared", tag="s1")
    gw.world.sign(image.manifest)
    gw.decider.decide(DecisionRequest(reference=gw.world.ref("s1")))
    elsewhere = gw.gate.check_local(image.config.digest, f"{gw.world.reg.host}/other:s1")
    assert (elsewhere.allowed, elsewhere.reason) == (False, Reason.NOT_VERIFIED)
    by_id = gw.gate.check_local(image.config.digest, image.config.digest)
    assert (by_id.allowed, by_id.reason) == (True, Reason.VERIFIED)


def test_reload_makes_earlier_allows_stale(gw: GateWorld) -> None:
    image = gw.image("stale", tag="t1")
    gw.world.sign(image.manifest)
    gw.decider.decide(DecisionRequest(reference=gw.world.ref("t1")))
    gw.reload()
    answer = gw.gate.check_local(image.config.digest, gw.world.ref("t1"))
    assert (answer.allowed, answer.reason) == (False, Reason.NOT_VERIFIED)


def test_full_check_verifies_now_and_binds_the_config(gw: GateWorld) -> None:
    image = gw.image("now", tag="n1")
    gw.world.sign(image.manifest)
    repo_digest = gw.ref(image.manifest.digest)
    answer = gw.gate.check(image.config.digest, gw.world.ref("n1"), [repo_digest])
    assert (answer.allowed, answer.reason, answer.verified_now) == (True, Reason.VERIFIED, True)
    # Recorded through the engine: the next create is local.
    assert gw.gate.check_local(image.config.digest, gw.world.ref("n1")).allowed


def test_full_check_unsigned_is_denied_with_the_engine_reason(gw: GateWorld) -> None:
    image = gw.image("unsigned", tag="u1")
    answer = gw.gate.check(image.config.digest, gw.world.ref("u1"), [gw.ref(image.manifest.digest)])
    assert (answer.allowed, answer.reason, answer.inconclusive) == (
        False,
        Reason.NO_SIGNATURE,
        False,
    )


def test_other_platform_content_is_a_content_mismatch(gw: GateWorld) -> None:
    amd, arm = gw.image("amd"), gw.image("arm")
    index = gw.index(amd, arm)
    gw.world.sign(index)
    gw.world.sign(amd.manifest)
    gw.world.sign(arm.manifest)
    # The runtime stored the arm64 manifest under the index's name (ctr pull --platform).
    answer = gw.gate.check(arm.config.digest, gw.ref(index.digest), [gw.ref(index.digest)])
    assert (answer.allowed, answer.reason, answer.inconclusive) == (
        False,
        Reason.CONTENT_MISMATCH,
        False,
    )
    assert answer.denial.text.startswith("SignatureValidationFailed: CONTENT_MISMATCH: ")


def test_a_signed_digest_in_another_repository_does_not_vouch(gw: GateWorld) -> None:
    image = gw.image("elsewhere", tag="e1")
    gw.world.sign(image.manifest)
    # Only the requested repository's names are verified: "other" has no statement.
    answer = gw.gate.check(
        image.config.digest, f"{gw.world.reg.host}/other:e1", [gw.ref(image.manifest.digest)]
    )
    assert (answer.allowed, answer.reason) == (False, Reason.NO_POLICY)


def test_an_image_with_no_name_in_the_repository_is_not_verified(gw: GateWorld) -> None:
    image = gw.image("nameless", tag="n2")
    answer = gw.gate.check(image.config.digest, "sha256:" + "e" * 64, [])
    assert (answer.allowed, answer.reason) == (False, Reason.NOT_VERIFIED)


def test_an_imported_image_known_by_tag_only_is_verified_by_its_tag(gw: GateWorld) -> None:
    image = gw.image("tagged", tag="t9")
    gw.world.sign(image.manifest)
    ref = gw.world.ref("t9")
    answer = gw.gate.check(image.config.digest, ref, [], [ref])
    assert (answer.allowed, answer.reason, answer.verified_now) == (True, Reason.VERIFIED, True)


def test_background_verification_makes_the_next_local_check_allow(gw: GateWorld) -> None:
    image = gw.image("bg", tag="g1")
    gw.world.sign(image.manifest)
    ref = gw.world.ref("g1")
    assert not gw.gate.check_local(image.config.digest, ref).allowed
    assert gw.gate.verify_in_background(ref, image.manifest.digest)
    deadline = time.monotonic() + 10
    while not gw.gate.check_local(image.config.digest, ref).allowed:
        assert time.monotonic() < deadline, "background verification never recorded an allow"
        time.sleep(0.02)


def test_critical_images_skip_the_gate(tmp_path: Path) -> None:
    with make_world(tmp_path) as world:
        gw = make_gate(world, tmp_path, critical=(f"{world.reg.host}/pause:*",))
        answer = gw.gate.check_local("sha256:" + "c" * 64, f"{world.reg.host}/pause:3.9")
        assert (answer.allowed, answer.reason, answer.critical) == (
            True,
            Reason.SKIPPED_BY_POLICY,
            True,
        )
        gw.gate.close()
        gw.decider.close()


def test_break_glass_turns_a_denial_into_an_audited_allow(gw: GateWorld, tmp_path: Path) -> None:
    image = gw.image("glass", tag="x1")
    (tmp_path / "break-glass").write_text(f"expires = {_stamp(timedelta(hours=1))}\n")
    answer = gw.gate.check(image.config.digest, gw.world.ref("x1"), [gw.ref(image.manifest.digest)])
    assert (answer.allowed, answer.reason, answer.break_glass) == (True, Reason.BREAK_GLASS, True)
    assert gw.audits[-1]["break_glass"] is True
    assert gw.gate.break_glass is not None
    assert gw.gate.break_glass.used == 1


@pytest.mark.parametrize(
    "expires", [timedelta(minutes=-1), timedelta(hours=24, minutes=1)], ids=["past", "over-24h"]
)
def test_break_glass_out_of_range_is_refused(
    gw: GateWorld, tmp_path: Path, expires: timedelta
) -> None:
    image = gw.image("refused", tag="r1")
    (tmp_path / "break-glass").write_text(f"expires = {_stamp(expires)}\n")
    answer = gw.gate.check_local(image.config.digest, gw.world.ref("r1"))
    assert (answer.allowed, answer.reason) == (False, Reason.NOT_VERIFIED)
    assert gw.gate.break_glass is not None
    assert gw.gate.break_glass.refused == 1
    with pytest.raises(ConfigError) as err:
        parse_break_glass(f"expires = {_stamp(expires)}\n".encode()).check(NOW)
    assert err.value.reason is Reason.CONFIG


def test_break_glass_patterns_limit_what_it_covers(gw: GateWorld, tmp_path: Path) -> None:
    image = gw.image("scoped", tag="s1")
    host = gw.world.reg.host
    (tmp_path / "break-glass").write_text(
        f'expires = {_stamp(timedelta(hours=2))}\nreferences = ["{host}/other:*"]\n'
    )
    answer = gw.gate.check_local(image.config.digest, gw.world.ref("s1"))
    assert (answer.allowed, answer.reason) == (False, Reason.NOT_VERIFIED)
    covered = gw.gate.check_local(image.config.digest, f"{host}/other:s1")
    assert (covered.allowed, covered.reason) == (True, Reason.BREAK_GLASS)


@pytest.mark.parametrize("pattern", ["docker.io/library/*", "docker.io/*/*"])
def test_a_scoped_break_glass_does_not_cover_a_container_asked_for_by_image_id(
    gw: GateWorld, tmp_path: Path, pattern: str
) -> None:
    """An image ID (``sha256:<hex>``, what a kubelet without ``user_specified_image`` and a
    container created outside CRI give) would parse as ``docker.io/library/sha256:<hex>``;
    a file scoped to references covers it only through a digest entry naming that image ID."""
    image = gw.image("by-id", tag="i1")
    image_id = image.config.digest
    (tmp_path / "break-glass").write_text(
        f'expires = {_stamp(timedelta(hours=2))}\nreferences = ["{pattern}"]\n'
    )
    answer = gw.gate.check_local(image_id, image_id)
    assert (answer.allowed, answer.reason, answer.break_glass) == (
        False,
        Reason.NOT_VERIFIED,
        False,
    )
    assert gw.gate.break_glass is not None
    assert gw.gate.break_glass.used == 0
    (tmp_path / "break-glass").write_text(
        f'expires = {_stamp(timedelta(hours=2))}\nreferences = ["{pattern}", "{image_id}"]\n'
    )
    covered = gw.gate.check_local(image_id, image_id)
    assert (covered.allowed, covered.reason) == (True, Reason.BREAK_GLASS)


@pytest.mark.parametrize(
    "text",
    [
        "expires = 2026-01-01T00:00:00\n",  # no offset
        'expires = "tomorrow"\n',
        "expires = 2026-01-01T00:00:00Z\nextra = 1\n",
        "not toml [",
        'expires = 2026-01-01T00:00:00Z\nreferences = ["sha256:zz"]\n',
    ],
)
def test_bad_break_glass_files_are_refused(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_break_glass(text.encode())
    assert err.value.reason is Reason.CONFIG


def test_no_configuration_denies_with_config() -> None:
    from pullgate.start.verdicts import VerdictStore

    def never(request: DecisionRequest) -> object:
        raise AssertionError("no decision without a configuration")

    gate = StartGate(store=VerdictStore(), snapshot=lambda: None, decide=never)  # type: ignore[arg-type]
    answer = gate.check_local("sha256:" + "d" * 64, "example.com/app:1")
    # CONFIG is definitive in the reason table, whichever front end reports it
    assert (answer.allowed, answer.reason, answer.inconclusive) == (False, Reason.CONFIG, False)
    gate.close()


def test_an_allow_older_than_max_age_is_verified_again(tmp_path: Path) -> None:
    """Without a reload a recorded allow would answer creates forever, though its evidence
    (revocation status, certificate validity) is only as fresh as its decision: past
    ``max_age`` (the daemon's decision-cache ``max_ttl``) the memory-only check no longer
    allows, and the full check verifies again. The decider and the store share one clock, as
    in the daemon (the cached allow expires with its record)."""
    clock = StepClock()
    with make_world(tmp_path) as world:
        store = VerdictStore(clock=lambda: clock.now().timestamp())
        gw = make_gate(world, tmp_path, store=store, max_age=300.0, clock=clock)
        try:
            image = gw.image("aged", tag="g1")
            world.sign(image.manifest)
            ref = world.ref("g1")
            gw.decider.decide(DecisionRequest(reference=ref))
            clock.advance(299)
            assert gw.gate.check_local(image.config.digest, ref).allowed
            clock.advance(2)
            stale = gw.gate.check_local(image.config.digest, ref)
            assert (stale.allowed, stale.reason, stale.inconclusive) == (
                False,
                Reason.NOT_VERIFIED,
                True,
            )
            again = gw.gate.check(image.config.digest, ref)
            assert (again.allowed, again.reason, again.verified_now) == (
                True,
                Reason.VERIFIED,
                True,
            )
            assert gw.gate.check_local(image.config.digest, ref).allowed  # recorded anew
        finally:
            gw.gate.close()
            gw.decider.close()


@pytest.mark.parametrize("mode", [0o664, 0o646], ids=["group-writable", "world-writable"])
def test_a_break_glass_file_others_can_write_is_refused(
    gw: GateWorld, tmp_path: Path, mode: int
) -> None:
    """Whoever can write the file can switch enforcement off: a file writable by group or
    others (a ``pullgate`` group member, say) is refused until its mode is fixed."""
    image = gw.image("writable", tag="w1")
    glass = tmp_path / "break-glass"
    glass.write_text(f"expires = {_stamp(timedelta(hours=1))}\n")
    glass.chmod(mode)
    answer = gw.gate.check_local(image.config.digest, gw.world.ref("w1"))
    assert (answer.allowed, answer.reason) == (False, Reason.NOT_VERIFIED)
    assert gw.gate.break_glass is not None
    assert gw.gate.break_glass.refused == 1
    glass.chmod(0o644)
    fixed = gw.gate.check_local(image.config.digest, gw.world.ref("w1"))
    assert (fixed.allowed, fixed.reason) == (True, Reason.BREAK_GLASS)
