"""Registry content anyone with push access can plant is a definitive deny, never inconclusive.

``pullgate.registry.source`` (docs/notation.md §1.2-1.3): a listed signature that exists
nowhere, a referrers tag that is not an OCI index, and more referrers pages than the bound are
:class:`VerificationFailed`; real outages next to them stay inconclusive.
"""

from __future__ import annotations

import pytest

from pullgate.common.descriptor import Descriptor
from pullgate.errors import (
    MalformedInput,
    PullgateError,
    Reason,
    VerificationFailed,
    VerificationInconclusive,
)
from pullgate.registry.client import RegistryClient
from pullgate.registry.model import Endpoint, ImageReference, RegistryError, RegistryLimits
from tests.support.fake_registry import OCI_MANIFEST, FakeRegistry, hosts_for, refused_endpoint
from tests.support.parts import build_client

REF = ImageReference(registry="registry.test", repository="app", tag="v1")


def _client(*endpoints: Endpoint, limits: RegistryLimits | None = None) -> RegistryClient:
    return build_client(
        hosts_for(*endpoints), limits=limits or RegistryLimits(), sleep=lambda _s: None
    )


def _definitive(exc: BaseException, reason: Reason) -> None:
    assert isinstance(exc, VerificationFailed)
    assert not isinstance(exc, VerificationInconclusive)
    assert exc.reason is reason


def _dangling_manifest(reg: FakeRegistry, target: Descriptor) -> Descriptor:
    """A signature listed by the tag schema whose manifest was deleted."""
    sig = reg.add_signature("app", target, b"envelope")
    del reg.repos["app"].manifests[sig.digest]
    reg.behaviour.referrers_404 = True  # the tag index still lists it
    return sig


def _dangling_envelope(reg: FakeRegistry, target: Descriptor) -> None:
    """A signature listed by the referrers API whose envelope blob was deleted."""
    reg.add_signature("app", target, b"envelope")
    del reg.repos["app"].blobs[
        next(d for d, b in reg.repos["app"].blobs.items() if b == b"envelope")
    ]


# ---------------------------------------------------------------- (a) listed but not found


def test_listed_signature_manifest_missing_everywhere_is_definitive(
    reg: FakeRegistry, reg2: FakeRegistry
) -> None:
    target = reg.put_image("app")
    reg2.put_image("app")
    _dangling_manifest(reg, target)
    with _client(reg.endpoint(), reg2.endpoint()) as client, pytest.raises(PullgateError) as err:
        list(client.signatures(REF, target))
    _definitive(err.value, Reason.MALFORMED)
    assert reg2.requests("manifests")  # the other endpoint was asked for it too


def test_listed_envelope_missing_is_definitive(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _dangling_envelope(reg, target)
    with _client(reg.endpoint()) as client, pytest.raises(PullgateError) as err:
        list(client.signatures(REF, target))
    _definitive(err.value, Reason.MALFORMED)


def test_missing_signature_next_to_an_outage_stays_inconclusive(reg: FakeRegistry) -> None:
    # Not found here, but another endpoint could not be asked: that is an outage, not proof.
    target = reg.put_image("app")
    _dangling_envelope(reg, target)
    with _client(reg.endpoint(), refused_endpoint()) as client, pytest.raises(PullgateError) as err:
        list(client.signatures(REF, target))
    assert isinstance(err.value, RegistryError)
    assert not isinstance(err.value, VerificationFailed)


def test_missing_signature_with_auth_failure_stays_inconclusive(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _dangling_envelope(reg, target)
    client = _client(reg.endpoint())
    with client:
        listing = client.signatures(REF, target)
        reg.behaviour.auth = "basic"  # the fetch is refused (401), the listing went through
        reg.behaviour.username, reg.behaviour.password = "u", "p"
        with pytest.raises(PullgateError) as err:
            list(listing)
    assert isinstance(err.value, RegistryError)
    assert err.value.reason is Reason.REGISTRY_AUTH


# ---------------------------------------------------------------- (b) referrers tag not an index


def _plant_tag(reg: FakeRegistry, target: Descriptor) -> None:
    reg.put_image("app", tag=target.digest.replace(":", "-"), payload=b"not an index")
    reg.behaviour.referrers_404 = True


def test_referrers_tag_that_is_not_an_index_is_malformed(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _plant_tag(reg, target)
    assert (
        reg.repos["app"].manifests[reg.repos["app"].tags[target.digest.replace(":", "-")]][0]
        == OCI_MANIFEST
    )
    with _client(reg.endpoint()) as client, pytest.raises(MalformedInput) as err:
        list(client.signatures(REF, target))
    _definitive(err.value, Reason.MALFORMED)


def test_planted_tag_beats_an_empty_answer_elsewhere(reg: FakeRegistry, reg2: FakeRegistry) -> None:
    target = reg.put_image("app")
    reg2.put_image("app")
    _plant_tag(reg, target)
    with _client(reg.endpoint(), reg2.endpoint()) as client, pytest.raises(PullgateError) as err:
        list(client.signatures(REF, target))
    _definitive(err.value, Reason.MALFORMED)


def test_planted_tag_beats_an_outage_elsewhere(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    _plant_tag(reg, target)
    with _client(reg.endpoint(), refused_endpoint()) as client, pytest.raises(PullgateError) as err:
        list(client.signatures(REF, target))
    _definitive(err.value, Reason.MALFORMED)


def test_hostile_first_endpoint_does_not_hide_signatures_elsewhere(
    reg: FakeRegistry, reg2: FakeRegistry
) -> None:
    target = reg.put_image("app")
    reg2.put_image("app")
    _plant_tag(reg, target)
    sig = reg2.add_signature("app", target, b"envelope")
    with _client(reg.endpoint(), reg2.endpoint()) as client:
        blobs = list(client.signatures(REF, target))
    assert [b.manifest_digest for b in blobs] == [sig.digest]


# ---------------------------------------------------------------- (c) too many referrers


def test_more_referrers_pages_than_allowed_is_definitive(reg: FakeRegistry) -> None:
    target = reg.put_image("app")
    for i in range(3):
        reg.add_signature("app", target, f"envelope-{i}".encode())
    reg.behaviour.referrers_page_size = 1
    limits = RegistryLimits(max_referrers_pages=2)
    with _client(reg.endpoint(), limits=limits) as client, pytest.raises(PullgateError) as err:
        list(client.signatures(REF, target))
    _definitive(err.value, Reason.TOO_MANY_SIGNATURES)
