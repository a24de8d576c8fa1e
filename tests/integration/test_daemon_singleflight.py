"""Single-flight against the real registry's own access log.

The real daemon (:func:`tests.support.grpc_harness.run_daemon`, the same ``serve`` as ``pullgate
serve``) talks over its unix socket; the registry is Debian's ``docker-registry`` behind mutual
TLS holding a signed two-platform index (index and ``linux/amd64`` manifest signed).

* Cold: one ``Verify`` on a fresh daemon (fresh decision cache, fresh registry clients,
  verification memos cleared) gives the reference request set; a second fresh daemon then gets
  100 concurrent ``Verify`` calls for the same image, and the registry must log exactly the same
  ``(method, path)`` counts. The servicer single-flights at the asyncio level (joiners hold no
  thread) and calls arriving after the flight are answered from the resolve memo and the cache.
* The mechanism, with the resolve memo off (``[cache] resolve_ttl = 0``): every computation
  actually run (100 minus the single-flight joins reported by ``Status``) costs exactly one tag
  ``HEAD`` beyond the one verification, and a warm burst costs one ``HEAD`` per computation.
* With the memo on, a warm burst costs no registry request at all.

Bursts use ``resolve_ttl = 60`` rather than the default 5 s, so a slow machine cannot stretch a
burst past the memo's lifetime (the default behaves the same for bursts shorter than 5 s).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pullgate.common.descriptor import Descriptor
from pullgate.v1 import verifier_pb2
from tests.support.docker_registry import (
    REGISTRY_BINARY,
    DockerRegistry,
    RegistryFactory,
    free_port,
    registry_available,
)
from tests.support.grpc_harness import Client, run_daemon
from tests.support.pki import Chain, KeySpec, Pki, write_store
from tests.support.push import MT_JWS, Pusher
from tests.support.signing import sign_jws

REPO = "team/app"
TAG = "multi"
BURST = 100
_RESOLVE = ("HEAD", f"/v2/{REPO}/manifests/{TAG}")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not registry_available(),
        reason=f"{REGISTRY_BINARY} not installed (apt-get install docker-registry)",
    ),
]


def _q(value: str | Path) -> str:
    return json.dumps(str(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """A daemon configuration trusting ``chain`` and the registry, plus the signed index."""

    config_path: Path
    registry: DockerRegistry
    index: Descriptor
    amd64: Descriptor

    @property
    def reference(self) -> str:
        return f"{self.registry.host}/{REPO}:{TAG}"


def with_resolve_ttl(config: Path, seconds: float) -> Path:
    """``config`` with ``[cache] resolve_ttl`` set (appended as a table of its own)."""
    config.write_text(config.read_text() + f"[cache]\nresolve_ttl = {seconds}\n")
    return config


def _write_node(tmp: Path, chain: Chain, registry: DockerRegistry) -> Path:
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "prod", [chain.root.cert])
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "prod",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:prod"],
                "trustedIdentities": ["*"],
            }
        ],
    }
    (trust_dir / "trustpolicy.json").write_text(json.dumps(policy))
    hosts = tmp / "certs.d" / registry.host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f"server = {_q(registry.url)}\nca = {_q(registry.ca_pem)}\n"
        f"client = [[{_q(registry.client_pem)}, {_q(registry.client_key)}]]\n"
    )
    config = tmp / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text(
        "\n".join(
            [
                f"trust_dir = {_q(trust_dir)}",
                f"hosts_dir = {_q(tmp / 'certs.d')}",
                'platform = "linux/amd64"',
                "[api]",
                f"socket = {_q(tmp / 'run' / 'api.sock')}",
                "[metrics]",
                f'address = "127.0.0.1:{free_port()}"',
                "[verification]",
                f"crl_cache_dir = {_q(tmp / 'crl')}",
                "",
            ]
        )
    )
    return config


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with RegistryFactory(tmp_path / "registries") as factory:
        registry = factory.start(log_level="warn")
        chain = Pki(name="single-flight").chain(key=KeySpec.ec(256))
        with Pusher.for_registry(registry) as pusher:
            amd64 = pusher.push_image(REPO, None, "linux/amd64", b"amd64 layer")
            arm64 = pusher.push_image(REPO, None, "linux/arm64/v8", b"arm64 layer")
            index = pusher.push_index(REPO, TAG, {"linux/amd64": amd64, "linux/arm64/v8": arm64})
            for subject in (index, amd64):
                pusher.push_signature(
                    REPO, subject, sign_jws(chain, subject), MT_JWS, certificates=chain.x509
                )
        yield Setup(
            config_path=_write_node(tmp_path, chain, registry),
            registry=registry,
            index=index,
            amd64=amd64,
        )


def _verify(client: Client, reference: str) -> verifier_pb2.VerifyResponse:
    return client.verifier.Verify(verifier_pb2.VerifyRequest(reference=reference), timeout=120)


def _burst(client: Client, reference: str, n: int) -> list[verifier_pb2.VerifyResponse]:
    """``n`` concurrent ``Verify`` calls, released together by a barrier."""
    barrier = threading.Barrier(n)

    def one() -> verifier_pb2.VerifyResponse:
        barrier.wait()
        return _verify(client, reference)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


def _cache(client: Client) -> verifier_pb2.CacheStats:
    return client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10).cache


def _one_cold_call(setup: Setup) -> Counter[tuple[str, str]]:
    """The registry requests of one ``Verify`` on a fresh daemon (the reference set)."""
    registry = setup.registry
    mark = registry.log_mark()
    with run_daemon(setup.config_path) as client:
        single = _verify(client, setup.reference)
    one_call = registry.request_counts(mark)
    assert (single.allowed, single.reason) == (True, "VERIFIED")
    assert {(s.role, s.digest) for s in single.subjects} == {
        ("index", setup.index.digest),
        ("platform", setup.amd64.digest),
    }
    # The reference set really is a verification: the tag resolve, the index, and signature
    # discovery for both subjects (referrers API probe, then the referrers tag schema).
    assert one_call[_RESOLVE] == 1
    assert one_call[("GET", f"/v2/{REPO}/manifests/{setup.index.digest}")] == 1
    for subject in (setup.index, setup.amd64):
        assert one_call[("GET", f"/v2/{REPO}/referrers/{subject.digest}")] == 1
        assert one_call[("GET", f"/v2/{REPO}/manifests/{subject.digest.replace(':', '-')}")] == 1
    return one_call


def _cold_burst(
    setup: Setup, client: Client
) -> tuple[list[verifier_pb2.VerifyResponse], Counter[tuple[str, str]], int]:
    """A burst on a fresh daemon: responses, registry request counts, computations run."""
    before = _cache(client)
    mark = setup.registry.log_mark()
    responses = _burst(client, setup.reference, BURST)
    counts = setup.registry.request_counts(mark)
    after = _cache(client)
    return responses, counts, BURST - (after.singleflight_joins - before.singleflight_joins)


def test_without_resolve_memo_every_computation_costs_one_resolve(setup: Setup) -> None:
    """With ``resolve_ttl = 0``: one verification; every computation run costs one resolve.

    Computations = calls that did not join a running flight (Status' single-flight joins):
    the first one verifies and fills the cache; calls arriving after it finished are cache
    hits, and without the memo a cache hit still resolves the tag (``HEAD``).
    """
    with_resolve_ttl(setup.config_path, 0)
    one_call = _one_cold_call(setup)
    verification = one_call - Counter({_RESOLVE: 1})

    with run_daemon(setup.config_path) as client:
        cold, cold_counts, cold_runs = _cold_burst(setup, client)

        before = _cache(client)
        mark = setup.registry.log_mark()
        warm = _burst(client, setup.reference, BURST)
        warm_counts = setup.registry.request_counts(mark)
        after = _cache(client)

    assert [(r.allowed, r.reason, r.digest) for r in cold] == [
        (True, "VERIFIED", setup.index.digest)
    ] * BURST
    assert cold_counts == verification + Counter({_RESOLVE: cold_runs})

    assert [(r.allowed, r.reason, r.cache_hit) for r in warm] == [(True, "VERIFIED", True)] * BURST
    warm_runs = BURST - (after.singleflight_joins - before.singleflight_joins)
    assert after.hits - before.hits == warm_runs
    assert warm_counts == Counter({_RESOLVE: warm_runs})


def test_100_concurrent_calls_cost_exactly_one_verification(setup: Setup) -> None:
    """A burst of identical calls makes the same (method, path) requests as one cold call."""
    with_resolve_ttl(setup.config_path, 60)
    one_call = _one_cold_call(setup)
    with run_daemon(setup.config_path) as client:
        cold, cold_counts, _ = _cold_burst(setup, client)
        mark = setup.registry.log_mark()
        warm = _burst(client, setup.reference, BURST)
        warm_counts = setup.registry.request_counts(mark)
    assert [(r.allowed, r.reason) for r in cold] == [(True, "VERIFIED")] * BURST
    assert cold_counts == one_call
    assert [(r.allowed, r.cache_hit) for r in warm] == [(True, True)] * BURST
    assert warm_counts == Counter()
