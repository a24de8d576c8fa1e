"""``[cache]`` bounds of the memos beyond the decision cache: each key is read, a bad value is a
typed ConfigError naming it, and the memo built from the configuration holds at most that many
entries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pullgate.common.clock import FixedClock
from pullgate.config import CacheConfig, DaemonConfig, parse_config
from pullgate.cri.container_start import CreatedImages
from pullgate.cri.containers import ContainerKey
from pullgate.decision.cache import DecisionCache
from pullgate.decision.clients import ClientKit, ClientPool
from pullgate.decision.context import Shared
from pullgate.errors import ConfigError, Reason
from pullgate.nri.admission import NriGate
from pullgate.registry.health import EndpointHealth
from pullgate.registry.model import Endpoint, HostsConfig
from pullgate.registry.store import Store
from pullgate.registry.tls import TlsContextCache
from pullgate.service.convert import RequestConverter, ResponseEncoder
from pullgate.trust.snapshot import Snapshot, build_snapshot
from tests.support.memory_store import MemoryRegistry
from tests.support.parts import build_client, build_watchdog
from tests.unit.decision.world import NoNetworkFetcher
from tests.unit.nri.test_admission import FakeGate
from tests.unit.reload.trustdirs import write_trust_dir

SOURCE = Path("/etc/pullgate/config.toml")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

# key -> a valid value other than the default
COUNTS = {
    "certificate_entries": 7,
    "hosts_entries": 2,
    "tls_entries": 3,
    "endpoint_entries": 4,
    "referrers_entries": 5,
    "nri_denial_entries": 6,
    "decoded_entries": 8,
    "repositories_per_image": 9,
    "idle_client_keys": 10,
    "request_entries": 11,
    "response_entries": 12,
    "created_container_entries": 13,
}


@pytest.mark.parametrize(("key", "value"), [*COUNTS.items(), ("referrers_ttl", 0)])
def test_each_key_is_read(key: str, value: int) -> None:
    config = parse_config(f"[cache]\n{key} = {value}\n".encode(), SOURCE)
    assert getattr(config.cache, key) == value
    assert getattr(CacheConfig(), key) != value


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        *((key, bad) for key in COUNTS for bad in ("0", "-1", "1.5", '"8"', "true")),
        ("referrers_ttl", "-1"),
        ("referrers_ttl", '"600s"'),
        ("referrers_ttl", "inf"),
        ("referrers_ttl", "false"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_key(key: str, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[cache]\n{key} = {bad}\n".encode(), SOURCE)
    assert info.value.reason is Reason.CONFIG
    assert [p.removeprefix(f"{SOURCE}: ").split(": ", 1)[0] for p in info.value.problems] == [
        f"cache.{key}"
    ]


def _snapshot(tmp_path: Path, **cache: float) -> Snapshot:
    config = DaemonConfig(
        trust_dir=write_trust_dir(tmp_path / "trust"),
        hosts_dirs=(tmp_path / "certs.d",),
        cache=CacheConfig(**cache),  # type: ignore[arg-type]
    )
    return build_snapshot(None, 1, clock=FixedClock(NOW), base=config)


def _endpoint(n: int) -> Endpoint:
    return Endpoint(url=f"https://r{n}.test/v2", scheme="https", host=f"r{n}.test", path="/v2")


def test_certificate_and_hosts_entries_bound_the_snapshots_memos(tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path, hosts_entries=2, certificate_entries=3)
    for registry in ("a.test", "b.test", "c.test"):
        snapshot.hosts(registry)
    hosts = snapshot.cache_stats()[0]
    assert (hosts.capacity, hosts.size, hosts.evictions) == (2, 2, 1)
    assert snapshot.cert_memo.loaded.capacity == 3


def test_tls_and_endpoint_entries_bound_the_client_kit() -> None:
    kit = ClientKit(
        tls_contexts=TlsContextCache(),
        health=EndpointHealth(),
        watchdog=build_watchdog(),
        request_log=None,
        clock=FixedClock(NOW),
    )
    kit.configure(DaemonConfig(cache=CacheConfig(tls_entries=1, endpoint_entries=2)))
    for n in (1, 2, 3):
        kit.tls_contexts.get(_endpoint(n))
        kit.health.failed(_endpoint(n), Reason.REGISTRY_UNREACHABLE)
    assert (kit.tls_contexts.stats().capacity, kit.tls_contexts.stats().size) == (1, 1)
    assert (kit.health.stats().capacity, kit.health.stats().size) == (2, 2)


def test_referrers_entries_and_ttl_reach_the_registry_clients(tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path, referrers_entries=2, referrers_ttl=0.0)
    shared = Shared.build(snapshot, NoNetworkFetcher(), FixedClock(NOW))
    client = build_client(
        lambda r: HostsConfig(registry=r, directory=None, source="none", endpoints=()),
        limits=shared.limits,
    )
    try:
        memo = client.referrers_memo
        assert memo.stats().capacity == 2
        memo.mark_absent(("r", "e", "repo"))
        assert not memo.api_absent(("r", "e", "repo"))  # a lifetime of 0: never remembered
    finally:
        client.close()


def test_nri_denial_entries_bounds_the_background_denials() -> None:
    gate = NriGate(FakeGate(), lambda: "snap", max_denials=6, workers=1)
    try:
        assert gate.outcomes.stats().capacity == 6
    finally:
        gate.close()


def test_decoded_entries_bounds_the_decoded_subset() -> None:
    cache = DecisionCache(CacheConfig(decoded_entries=3), FixedClock(NOW))
    assert [stats.capacity for stats in cache.lru_stats()] == [CacheConfig().max_entries, 3]


def test_idle_client_keys_bounds_the_pool_and_a_resize_closes_the_dropped() -> None:
    registry = MemoryRegistry()
    pool = ClientPool(max_keys=3)
    closed: list[Store] = []

    def factory() -> Store:
        store = registry.opener()
        real_close = store.close

        def close() -> None:
            closed.append(store)
            real_close()

        store.close = close  # type: ignore[method-assign]
        return store

    for key in ("a", "b", "c"):
        with pool.lend((key, ""), factory):
            pass
    pool.resize(1)
    assert (pool.stats().capacity, pool.stats().size) == (1, 1)
    assert len(closed) == 2  # the idle clients of the two keys dropped


def test_request_and_response_entries_size_the_servers_wire_memos() -> None:
    cache = CacheConfig(request_entries=3, response_entries=2)
    assert RequestConverter(cache.request_entries).stats().capacity == 3
    assert ResponseEncoder(cache.response_entries).stats().capacity == 2


def test_created_container_entries_bounds_the_runtime_gates_memory() -> None:
    created = CreatedImages(CacheConfig(created_container_entries=2).created_container_entries)
    keys = [ContainerKey("sandbox", f"c{n}", 0) for n in range(3)]
    for key in keys:
        created.remember(key, "sha256:image")
    assert created.take(keys[0]) is None  # the least recently created was dropped
    assert created.take(keys[2]) == "sha256:image"
