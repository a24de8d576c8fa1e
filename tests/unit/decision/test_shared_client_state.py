"""What a decider's registry clients share (pullgate.decision.clients.make_client): the TLS
context cache and the referrers-API memo, neither of which holds a caller's credentials."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

import pullgate.registry.tls as tls
from pullgate.decision.model import DecisionRequest
from pullgate.errors import Reason
from pullgate.registry.client import RegistryClient
from pullgate.registry.model import Credentials, Endpoint, HostsConfig, RegistryError
from pullgate.registry.reference import parse_reference
from pullgate.registry.tls import TlsContextCache
from tests.support.fake_registry import FakeRegistry, make_tls
from tests.unit.decision.world import REPO, World


def _creds(user: str) -> Credentials:
    return Credentials(username=user, password="pw-" + user)


def test_clients_for_other_credentials_reuse_the_referrers_finding(world: World) -> None:
    world.reg.behaviour.referrers_404 = True  # no referrers API: tag schema only
    first = world.reg.put_image(REPO, tag="a", payload=b"a")
    second = world.reg.put_image(REPO, tag="b", payload=b"b")
    world.sign(first)
    world.sign(second)
    decider = world.decider()
    try:
        for tag, user in (("a", "alice"), ("b", "bob")):
            request = DecisionRequest(reference=world.ref(tag), credentials=_creds(user))
            decision = decider.decide(request)
            assert decision.allowed, decision.reason
        # Two credential identities, hence two clients; the API was probed once only.
        assert decider.stats().clients_created == 2
        assert len(world.reg.requests("referrers")) == 1
    finally:
        decider.close()


def test_clients_sharing_a_tls_cache_build_one_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Endpoint] = []
    real = tls.ssl_context_for

    def counting(endpoint: Endpoint) -> ssl.SSLContext:
        built.append(endpoint)
        return real(endpoint)

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
            with RegistryClient(hosts, tls_contexts=shared) as client:
                assert client.resolve(ref).digest == image.digest
        assert len(built) == 1
        # A client of its own builds its own context.
        with RegistryClient(hosts) as client:
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

        with RegistryClient(lambda _r: hosts_of(good), tls_contexts=shared) as client:
            client.resolve(ref)
        with (
            RegistryClient(lambda _r: hosts_of(bad), tls_contexts=shared) as client,
            pytest.raises(RegistryError) as err,
        ):
            client.resolve(ref)
        assert err.value.reason is Reason.REGISTRY_TLS
