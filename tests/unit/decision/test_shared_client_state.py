"""What a decider's registry clients share (pullgate.decision.clients.make_client): the TLS
context cache, which holds nothing of a caller's credentials; and what they deliberately do not
share: the referrers-API memo, so a decision's request set does not depend on timing."""

from __future__ import annotations

import ssl
from collections import Counter
from pathlib import Path

import pytest

import pullgate.registry.tls as tls
from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.model import Endpoint, HostsConfig, RegistryError
from pullgate.registry.reference import parse_reference
from pullgate.registry.tls import TlsContextCache
from tests.support.fake_registry import FakeRegistry, make_tls
from tests.support.parts import build_client
from tests.unit.decision.world import REPO, HttpWorld


@pytest.fixture
def world(http_world: HttpWorld) -> HttpWorld:
    """The registry store's wire behaviour under the engine: the HTTP fake registry."""
    return http_world


def test_a_cold_decision_costs_the_same_requests_every_time(world: HttpWorld) -> None:
    """The index and platform subjects are discovered in parallel on their own clients; a
    referrers-API finding shared between them would race, and the same decision would cost a
    varying number of requests (the daemon's "one verification's worth" needs it fixed)."""
    world.reg.behaviour.referrers_404 = True  # no referrers API: each subject probes, then tags
    world.sign(world.index)
    world.sign(world.amd64)
    seen: list[Counter[tuple[str, str]]] = []
    for _ in range(8):
        decider = world.decider()
        try:
            mark = len(world.reg.requests())
            assert decider.decide(DecisionRequest(reference=world.ref())).allowed
            seen.append(Counter((r.method, r.path) for r in world.reg.requests()[mark:]))
        finally:
            decider.close()
    assert all(counts == seen[0] for counts in seen)
    probes = sum(n for (_, path), n in seen[0].items() if "/referrers/" in path)
    assert probes == 2  # one per subject


def test_clients_sharing_a_tls_cache_build_one_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Endpoint] = []
    real = tls.ssl_context_for

    def counting(endpoint: Endpoint, client: int = 0) -> ssl.SSLContext:
        built.append(endpoint)
        return real(endpoint, client)

    monkeypatch.setattr(tls, "ssl_context_for", counting)
    with FakeRegistry(tls=make_tls(tmp_path / "tls", require_client_cert=True)) as reg:
        image = reg.put_image(REPO, tag="v1")
        endpoint = reg.endpoint()

        def hosts(registry: str) -> HostsConfig:
            return HostsConfig(
                registry=registry, directory=None, source="none", endpoints=(endpoint,)
            )

        shared = TlsContextCache()
        ref = parse_reference(f"{reg.host}/{REPO}:v1")
        for _ in range(2):
            with build_client(hosts, tls_contexts=shared) as client:
                assert client.resolve(ref).digest == image.digest
        assert len(built) == 1
        # A client of its own builds its own context.
        with build_client(hosts) as client:
            assert client.resolve(ref).digest == image.digest
        assert len(built) == 2


def test_shared_tls_cache_still_fails_typed_on_a_missing_file(tmp_path: Path) -> None:
    with FakeRegistry(tls=make_tls(tmp_path / "tls", require_client_cert=True)) as reg:
        reg.put_image(REPO, tag="v1")
        good = reg.endpoint()
        bad = reg.endpoint(ca_files=(tmp_path / "absent.pem",))
        shared = TlsContextCache()
        ref = parse_reference(f"{reg.host}/{REPO}:v1")

        def hosts_of(ep: Endpoint) -> HostsConfig:
            return HostsConfig(registry=reg.host, directory=None, source="none", endpoints=(ep,))

        with build_client(lambda _r: hosts_of(good), tls_contexts=shared) as client:
            client.resolve(ref)
        with (
            build_client(lambda _r: hosts_of(bad), tls_contexts=shared) as client,
            pytest.raises(RegistryError) as err,
        ):
            client.resolve(ref)
        assert err.value.reason is Reason.REGISTRY_TLS
