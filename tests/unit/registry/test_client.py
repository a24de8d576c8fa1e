"""RegistryClient against the in-process fake registry: resolve, fetch, signatures, fallback."""

from __future__ import annotations

import pytest

from pullgate.common.descriptor import Descriptor
from pullgate.errors import MalformedInput, PullgateError, Reason, VerificationFailed
from pullgate.registry.client import RegistryClient
from pullgate.registry.model import (
    Capability,
    HostsConfig,
    ImageReference,
    RegistryError,
    RegistryLimits,
)
from pullgate.registry.referrers_memo import ReferrersMemo
from pullgate.registry.transport import RequestRecord
from tests.support.fake_registry import (
    JWS,
    FakeRegistry,
    hosts_for,
    refused_endpoint,
)
from tests.support.parts import build_client

REF = ImageReference(registry="registry.test", repository="app", tag="v1")


def make_client(*regs: FakeRegistry, log: list[RequestRecord] | None = None) -> RegistryClient:
    return build_client(
        hosts_for(*(r.endpoint() for r in regs)),
        request_log=log.append if log is not None else None,
        sleep=lambda _s: None,
    )


# ---------------------------------------------------------------------------- resolve


def test_resolve_tag_uses_head(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    with make_client(reg) as client:
        desc = client.resolve(REF)
    assert desc.same_target(target)
    assert [r.method for r in reg.requests("manifests")] == ["HEAD"]
    assert "ns=registry.test" in reg.requests("manifests")[0].path


def test_resolve_falls_back_to_get_without_digest_header(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg.behaviour.head_without_digest = True
    with make_client(reg) as client:
        desc = client.resolve(REF)
    assert desc.same_target(target)
    assert [r.method for r in reg.requests("manifests")] == ["HEAD", "GET"]


def test_resolve_digest_ref_with_wrong_content_is_malformed(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg.behaviour.head_without_digest = True
    reg.behaviour.wrong_digest.add(target.digest)
    with make_client(reg) as client, pytest.raises(MalformedInput) as err:
        client.resolve(REF.with_digest(target.digest))
    assert err.value.reason is Reason.MALFORMED


def test_tag_resolve_skips_pull_only_mirror(reg: FakeRegistry, reg2: FakeRegistry) -> None:
    target = reg2.put_image("app")
    mirror = reg.endpoint(capabilities=frozenset({Capability.PULL}))
    client = build_client(hosts_for(mirror, reg2.endpoint()))
    with client:
        assert client.resolve(REF).same_target(target)
        assert client.fetch_manifest(REF, target)  # by digest: mirror tried first (404)
    assert reg.requests("manifests")[0].method == "GET"
    assert not any(r.method == "HEAD" for r in reg.requests())


# ---------------------------------------------------------------------------- fetch


def test_fetch_manifest_digest_mismatch_is_deny(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg.behaviour.wrong_digest.add(target.digest)
    with make_client(reg) as client, pytest.raises(VerificationFailed) as err:
        client.fetch_manifest(REF, target)
    assert err.value.reason is Reason.MALFORMED


def test_digest_mismatch_tries_next_endpoint_first(reg: FakeRegistry, reg2: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg2.put_image("app")
    reg.behaviour.wrong_digest.add(target.digest)
    with make_client(reg, reg2) as client:
        data = client.fetch_manifest(REF, target)
    assert len(data) == target.size
    assert len(reg2.requests("manifests")) == 1


def test_mismatch_outranks_404(reg: FakeRegistry, reg2: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg.behaviour.wrong_digest.add(target.digest)
    with make_client(reg, reg2) as client, pytest.raises(MalformedInput):
        client.fetch_manifest(REF, target)  # reg2 answers 404


def test_all_404_is_definitive_not_found(reg: FakeRegistry) -> None:
    missing = Descriptor(media_type=JWS, digest="sha256:" + "0" * 64, size=3)
    with make_client(reg) as client, pytest.raises(PullgateError) as err:
        client.fetch_blob(REF, missing, 1024)
    assert err.value.reason is Reason.NOT_FOUND
    assert not err.value.inconclusive


def test_tag_absent_everywhere_is_definitive_not_found(
    reg: FakeRegistry, reg2: FakeRegistry
) -> None:
    reg.put_image("app")
    with make_client(reg, reg2) as client, pytest.raises(PullgateError) as err:
        client.resolve(ImageReference(registry="registry.test", repository="app", tag="absent"))
    assert err.value.reason is Reason.NOT_FOUND
    assert not err.value.inconclusive


def test_404_at_one_endpoint_and_an_outage_at_another_stays_inconclusive(
    reg: FakeRegistry,
) -> None:
    with (
        build_client(hosts_for(reg.endpoint(), refused_endpoint())) as client,
        pytest.raises(PullgateError) as err,
    ):
        client.resolve(REF)
    assert err.value.reason is Reason.REGISTRY_ERROR
    assert err.value.inconclusive


@pytest.mark.parametrize("with_length", [True, False])
def test_oversize_manifest_refused_without_reading_it(reg: FakeRegistry, with_length: bool) -> None:
    target = reg.put_image("app")
    reg.behaviour.oversize.add(target.digest)
    reg.behaviour.oversize_content_length = with_length
    log: list[RequestRecord] = []
    with make_client(reg, log=log) as client, pytest.raises(MalformedInput) as err:
        client.resolve(REF)
    assert err.value.reason is Reason.MALFORMED
    limit = RegistryLimits().max_manifest_bytes
    read = getattr(err.value, "bytes_read", 0)
    assert read <= limit + 1
    if with_length:  # refused from the HEAD's Content-Length: no GET at all
        assert [r.method for r in reg.requests("manifests")] == ["HEAD"]
    else:
        assert read == limit + 1


def test_oversize_descriptor_refused_before_request(reg: FakeRegistry) -> None:
    big = Descriptor(media_type=JWS, digest="sha256:" + "1" * 64, size=33 * 1024 * 1024)
    with make_client(reg) as client, pytest.raises(MalformedInput):
        client.fetch_blob(REF, big, 32 * 1024 * 1024)
    assert reg.requests() == []


# ---------------------------------------------------------------------------- endpoint fallback


def test_refusing_first_mirror_falls_back(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    client = build_client(hosts_for(refused_endpoint(), reg.endpoint()))
    with client:
        assert client.resolve(REF).same_target(target)


def test_all_refused_is_unreachable() -> None:
    client = build_client(hosts_for(refused_endpoint(), refused_endpoint()))
    with client, pytest.raises(RegistryError) as err:
        client.resolve(REF)
    assert err.value.reason is Reason.REGISTRY_UNREACHABLE


# ---------------------------------------------------------------------------- signatures


def _sign(reg: FakeRegistry, target: Descriptor, n: int) -> list[Descriptor]:
    return [reg.add_signature("app", target, f"envelope-{i}".encode()) for i in range(n)]


def _other_referrer(reg: FakeRegistry, target: Descriptor) -> None:
    reg.add_referrer("app", target, [(b"sbom", "application/spdx+json")], "application/spdx+json")


def test_referrers_two_pages(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    sigs = _sign(reg, target, 2)
    reg.behaviour.referrers_page_size = 1
    with make_client(reg) as client:
        blobs = list(client.signatures(REF, target))
    assert [b.manifest_digest for b in blobs] == [s.digest for s in sigs]
    assert [b.envelope for b in blobs] == [b"envelope-0", b"envelope-1"]
    assert {b.media_type for b in blobs} == {JWS}
    assert len(reg.requests("referrers")) == 2


def test_page_limit_is_enforced(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _sign(reg, target, 3)
    reg.behaviour.referrers_page_size = 1
    client = build_client(hosts_for(reg.endpoint()), limits=RegistryLimits(max_referrers_pages=2))
    with client, pytest.raises(VerificationFailed) as err:
        list(client.signatures(REF, target))
    assert err.value.reason is Reason.TOO_MANY_SIGNATURES
    assert len(reg.requests("referrers")) == 2


def test_server_ignoring_artifact_type_filter(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _other_referrer(reg, target)
    (sig,) = _sign(reg, target, 1)
    reg.behaviour.ignore_artifact_filter = True
    with make_client(reg) as client:
        blobs = list(client.signatures(REF, target))
    assert [b.manifest_digest for b in blobs] == [sig.digest]


@pytest.mark.parametrize("mode", ["referrers_html", "referrers_404"])
def test_referrers_api_absent_falls_back_to_tag_schema(reg: FakeRegistry, mode: str) -> None:
    target = reg.put_image("app")
    _other_referrer(reg, target)
    (sig,) = _sign(reg, target, 1)
    setattr(reg.behaviour, mode, True)
    with make_client(reg) as client:
        blobs = list(client.signatures(REF, target))
    assert [b.manifest_digest for b in blobs] == [sig.digest]
    tag = target.digest.replace(":", "-")
    assert any(tag in r.path for r in reg.requests("manifests"))


class FakeMonotonic:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _tag_requests(reg: FakeRegistry, target: Descriptor) -> int:
    tag = target.digest.replace(":", "-")
    return sum(tag in r.path for r in reg.requests("manifests"))


def _memo_client(reg: FakeRegistry, memo: ReferrersMemo) -> RegistryClient:
    return build_client(hosts_for(reg.endpoint()), sleep=lambda _s: None, referrers_memo=memo)


@pytest.mark.parametrize("mode", ["referrers_html", "referrers_404"])
def test_absent_referrers_api_is_remembered(reg: FakeRegistry, mode: str) -> None:
    first, second = reg.put_image("app", payload=b"one"), reg.put_image("app", payload=b"two")
    (sig1,), (sig2,) = _sign(reg, first, 1), _sign(reg, second, 1)
    setattr(reg.behaviour, mode, True)
    with make_client(reg) as client:
        assert [b.manifest_digest for b in client.signatures(REF, first)] == [sig1.digest]
        assert len(reg.requests("referrers")) == 1
        assert [b.manifest_digest for b in client.signatures(REF, second)] == [sig2.digest]
    assert len(reg.requests("referrers")) == 1  # the second discovery skipped the probe
    assert _tag_requests(reg, second) == 1


def test_memo_expires_and_a_registry_gaining_the_api_is_asked_again(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    (sig,) = _sign(reg, target, 1)
    clock = FakeMonotonic()
    memo = ReferrersMemo(ttl=600.0, monotonic=clock)
    reg.behaviour.referrers_404 = True
    with _memo_client(reg, memo) as client:
        list(client.signatures(REF, target))
        clock.now += 599.0
        list(client.signatures(REF, target))
        assert len(reg.requests("referrers")) == 1
        reg.behaviour.referrers_404 = False  # the registry gains the API
        clock.now += 2.0
        blobs = list(client.signatures(REF, target))
    assert [b.manifest_digest for b in blobs] == [sig.digest]
    assert len(reg.requests("referrers")) == 2
    assert len(memo) == 0  # the API answered: nothing remembered


def test_memo_never_concludes_unsigned_on_its_own(reg: FakeRegistry) -> None:
    # Remembered "no API", but the registry gained it and the signature is only listed there
    # (no tag-schema index): the empty tag listing sends discovery back to the API.
    target = reg.put_image("app")
    (sig,) = _sign(reg, target, 1)
    reg.behaviour.referrers_404 = True
    with make_client(reg) as client:
        list(client.signatures(REF, target))
        reg.behaviour.referrers_404 = False
        reg.behaviour.tag_schema = False
        blobs = list(client.signatures(REF, target))
    assert [b.manifest_digest for b in blobs] == [sig.digest]


def test_unsigned_with_memo_still_probes_before_concluding(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg.behaviour.referrers_404 = True
    reg.behaviour.tag_schema = False
    with make_client(reg) as client:
        assert list(client.signatures(REF, target)) == []
        assert list(client.signatures(REF, target)) == []
    assert len(reg.requests("referrers")) == 2


def test_memo_keys_do_not_mix_repositories_or_registries(reg: FakeRegistry) -> None:
    # One mirror endpoint serving two registries (containerd's ``ns`` query parameter).
    target = reg.put_image("app")
    other = reg.put_image("other")
    _sign(reg, target, 1)
    reg.add_signature("other", other, b"envelope")
    endpoint = reg.endpoint()

    def hosts(name: str) -> HostsConfig:
        return HostsConfig(registry=name, directory=None, source="none", endpoints=(endpoint,))

    reg.behaviour.referrers_404 = True
    with build_client(hosts, sleep=lambda _s: None) as client:
        list(client.signatures(REF, target))
        reg.behaviour.referrers_404 = False
        list(client.signatures(ImageReference(registry="registry.test", repository="other"), other))
        list(client.signatures(ImageReference(registry="elsewhere.test", repository="app"), target))
    assert len(reg.requests("referrers")) == 3  # each other key probed the API itself


def test_memo_is_per_client(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _sign(reg, target, 1)
    reg.behaviour.referrers_404 = True
    with make_client(reg) as client:
        list(client.signatures(REF, target))
    with make_client(reg) as client:
        list(client.signatures(REF, target))
    assert len(reg.requests("referrers")) == 2


def test_memo_is_bounded_lru() -> None:
    clock = FakeMonotonic()
    memo = ReferrersMemo(ttl=10.0, max_entries=2, monotonic=clock)
    a, b, c = ("r", "e", "a"), ("r", "e", "b"), ("r", "e", "c")
    memo.mark_absent(a)
    memo.mark_absent(b)
    assert memo.api_absent(a)  # a is now the most recently used
    memo.mark_absent(c)
    assert (memo.api_absent(a), memo.api_absent(b), memo.api_absent(c)) == (True, False, True)
    assert len(memo) == 2
    clock.now += 10.0
    assert not memo.api_absent(a)
    assert len(memo) == 1


def test_memo_with_no_ttl_remembers_nothing() -> None:
    memo = ReferrersMemo(ttl=0.0)
    memo.mark_absent(("r", "e", "a"))
    assert not memo.api_absent(("r", "e", "a"))


def test_missing_referrers_tag_means_unsigned(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg.behaviour.referrers_404 = True
    reg.behaviour.tag_schema = False
    with make_client(reg) as client:
        assert list(client.signatures(REF, target)) == []


def test_signature_manifest_with_two_layers_is_malformed(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg.add_referrer("app", target, [(b"one", JWS), (b"two", JWS)])
    with make_client(reg) as client, pytest.raises(MalformedInput) as err:
        list(client.signatures(REF, target))
    assert err.value.reason is Reason.MALFORMED


def test_tampered_envelope_is_deny(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _sign(reg, target, 1)
    envelope_digest = next(d for d, data in reg.repos["app"].blobs.items() if data == b"envelope-0")
    reg.behaviour.wrong_digest.add(envelope_digest)
    with make_client(reg) as client, pytest.raises(VerificationFailed) as err:
        list(client.signatures(REF, target))
    assert err.value.reason is Reason.MALFORMED


def test_signature_only_on_second_endpoint(reg: FakeRegistry, reg2: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg2.put_image("app")
    (sig,) = _sign(reg2, target, 1)
    with make_client(reg, reg2) as client:
        blobs = list(client.signatures(REF, target))
    assert [b.manifest_digest for b in blobs] == [sig.digest]
    assert reg.requests("referrers")  # the first endpoint was asked first


def test_first_endpoint_refuses_signatures_found_on_second(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    (sig,) = _sign(reg, target, 1)
    client = build_client(hosts_for(refused_endpoint(), reg.endpoint()))
    with client:
        blobs = list(client.signature_source(REF).signatures(target))
    assert [b.manifest_digest for b in blobs] == [sig.digest]


def test_unsigned_everywhere_yields_nothing(reg: FakeRegistry, reg2: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg2.put_image("app")
    with make_client(reg, reg2) as client:
        assert list(client.signatures(REF, target)) == []
    assert reg.requests("referrers")
    assert reg2.requests("referrers")


def test_no_endpoint_answering_is_inconclusive() -> None:
    target = Descriptor(media_type=JWS, digest="sha256:" + "2" * 64, size=1)
    client = build_client(hosts_for(refused_endpoint()))
    with client, pytest.raises(RegistryError) as err:
        list(client.signatures(REF, target))
    assert err.value.reason is Reason.REGISTRY_UNREACHABLE


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
def test_a_2kb_envelope_with_a_longer_body_is_refused_after_its_size_plus_one_chunk(
    reg: FakeRegistry, announced: bool
) -> None:
    envelope = reg.put_blob("app", bytes(range(256)) * 8, JWS)  # 2048 bytes
    reg.behaviour.oversize.add(envelope.digest)  # served with 5 MiB more
    reg.behaviour.oversize_content_length = announced
    log: list[RequestRecord] = []
    with make_client(reg, log=log) as client, pytest.raises(VerificationFailed) as err:
        client.fetch_blob(REF, envelope, RegistryLimits().max_envelope_bytes)
    assert err.value.reason is Reason.DESCRIPTOR_MISMATCH
    assert envelope.size == 2048
    assert [r.size for r in log] == [0 if announced else envelope.size + 1]
