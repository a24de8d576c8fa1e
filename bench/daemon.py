"""The node daemon's performance targets (README "Benchmarks"), measured in one run.

The real daemon (:func:`tests.support.grpc_harness.run_daemon`: the same ``serve`` as ``pullgate
serve``, in this process, over its unix socket) against the real ``docker-registry``
(distribution 2.8.2, mutual TLS, referrers tag schema) holding signed two-platform indexes
(index and ``linux/amd64`` manifest signed, JWS, P-256 leaf, level strict). Machines here are
noisy: every ratio is measured side by side (interleaved rounds) and medians are reported.

1. **warm Verify ÷ Health/Check** rate with ``--clients`` concurrent clients (one channel each)
   on the same server, alternating windows of each. A warm Verify is a cache hit, which by
   design still costs one tag ``HEAD`` (a tag can move). Target >= 0.8.
2. **cold multi-platform Verify ÷ bare replay**: each round verifies a *new* signed index (a new
   digest: the decision cache and the index memo cannot hold it) after the current snapshot's
   certificate memos are cleared (:meth:`~pullgate.verification.cache.CertMemo.clear`). The registry
   requests that call made are read from the registry's own access log and replayed, in the
   logged order, by a minimal urllib3 client in this process with the same TLS setup (CA and
   client certificate; the SSL context is built once, outside the timing) over fresh
   connections. The daemon keeps its pooled registry connections between rounds (that is its
   design); the replay pays one TLS handshake per round. Target <= 1.3.
3. **registry requests of 100 concurrent cold calls ÷ one cold call** (two new indexes, same
   shape; counts from the access log). Target 1.
4. **RSS after 50,000 distinct cached decisions**, in a child process that imports the whole
   daemon (``pullgate.service.app``, gRPC) and fills the real
   :class:`~pullgate.decision.cache.DecisionCache` with 50,000 distinct keys, each holding its
   own unpickled copy of a real ``Decision`` from this run (distinct digests). Reports VmRSS
   (``/proc/self/status``) total and delta over the baseline. Target: total <= 100 MB.
5. **reload-to-effect**: the trusted CA is replaced on disk (the watcher reloads, no RPC, no
   restart); the time until a Verify of a cached-allowed image denies (median over
   ``--effect-rounds``). Target <= 1 s. **Failed RPCs during 100 reloads under load**: clients
   run Verify continuously while the trust policy is rewritten (alternating two equivalent
   texts, so every reload swaps in a new snapshot digest) and ``Reload`` is called 100 times.
   Counted: RPC errors (Verify and Reload), failed reloads and wrong answers (any deny).
   Target 0.
6. **Full garbage-collection pause, settled ÷ thawed heap**, in this process once the daemon has
   served the warm step: ``gc.collect()`` timed with the daemon's state frozen out of the
   collector (:func:`pullgate.common.heap.settle`, as ``serve`` does at start and after every
   swap) and
   with every object back under it (``gc.unfreeze``), interleaved ``--gc-rounds`` times. A full
   pass holds the GIL, so its length is a stall any concurrent pull or shim call can meet.
   Target <= 0.25.

Exit status 1 when any target is missed, 2 without a registry.

Run: ``.venv/bin/python bench/daemon.py [--rounds N] [--clients N] [--window S]``; ``--only rss``
(repeatable; steps ``warm gc cold burst rss reload``) runs only the named steps.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import urllib3

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.docker_registry import (  # noqa: E402
    AccessLogEntry,
    DockerRegistry,
    free_port,
    registry_available,
)
from tests.support.grpc_harness import Client, run_daemon  # noqa: E402
from tests.support.pki import Chain, KeySpec, Pki, write_store  # noqa: E402
from tests.support.push import MT_JWS, Pusher  # noqa: E402
from tests.support.signing import sign_jws  # noqa: E402

from bench._common import POLICY, accept_for, replay_context  # noqa: E402
from pullgate.common import heap  # noqa: E402
from pullgate.config import DaemonConfig  # noqa: E402
from pullgate.decision.model import DecisionRequest  # noqa: E402
from pullgate.registry.transport import USER_AGENT  # noqa: E402
from pullgate.service.compose import build_runtime  # noqa: E402
from pullgate.service.metrics import Metrics  # noqa: E402
from pullgate.service.runtime import DaemonRuntime  # noqa: E402
from pullgate.v1 import verifier_pb2  # noqa: E402

REPO = "bench/app"
BURST = 100
RSS_DECISIONS = 50_000
MB = 1024 * 1024


def _q(value: str | Path) -> str:
    return json.dumps(str(value))


def _policy(indent: int | None) -> str:
    return json.dumps(POLICY, indent=indent)


# ----------------------------------------------------------------------------------- setup


@dataclass
class Node:
    """The registry, the signed images and the files one daemon runs from."""

    tmp: Path
    registry: DockerRegistry
    chain: Chain
    trust_dir: Path
    config_path: Path
    images: list[str] = field(default_factory=list)  # fresh tags, consumed by cold rounds
    warm: str = ""

    def reference(self, tag: str) -> str:
        return f"{self.registry.host}/{REPO}:{tag}"

    def take(self) -> str:
        """A reference nobody has verified yet."""
        return self.reference(self.images.pop())

    def trust(self, chain: Chain) -> None:
        write_store(self.trust_dir, "ca", "bench", [chain.root.cert])


def _push_signed_index(pusher: Pusher, chain: Chain, tag: str) -> None:
    amd64 = pusher.push_image(REPO, None, "linux/amd64", f"amd64 {tag}".encode() * 64)
    arm64 = pusher.push_image(REPO, None, "linux/arm64/v8", f"arm64 {tag}".encode() * 64)
    index = pusher.push_index(REPO, tag, {"linux/amd64": amd64, "linux/arm64/v8": arm64})
    for subject in (index, amd64):
        pusher.push_signature(
            REPO, subject, sign_jws(chain, subject), MT_JWS, certificates=chain.x509
        )


def _prepare(tmp: Path, registry: DockerRegistry, fresh_images: int) -> Node:
    chain = Pki(name="bench daemon").chain(key=KeySpec.ec(256))
    trust_dir = tmp / "trust"
    node = Node(
        tmp=tmp,
        registry=registry,
        chain=chain,
        trust_dir=trust_dir,
        config_path=tmp / "etc" / "config.toml",
    )
    node.trust(chain)
    (trust_dir / "trustpolicy.json").write_text(_policy(None))
    hosts = tmp / "certs.d" / registry.host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f"server = {_q(registry.url)}\nca = {_q(registry.ca_pem)}\n"
        f"client = [[{_q(registry.client_pem)}, {_q(registry.client_key)}]]\n"
    )
    node.config_path.parent.mkdir()
    node.config_path.write_text(
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
    with Pusher.for_registry(registry) as pusher:
        _push_signed_index(pusher, chain, "warm")
        for i in range(fresh_images):
            tag = f"cold-{i}"
            _push_signed_index(pusher, chain, tag)
            node.images.append(tag)
    node.warm = node.reference("warm")
    return node


@contextmanager
def _daemon(node: Node) -> Iterator[tuple[Client, DaemonRuntime]]:
    """The real daemon; also hands out its runtime (for the RSS step's real Decision)."""
    runtimes: list[DaemonRuntime] = []

    def factory(path: Path, config: DaemonConfig, metrics: Metrics) -> DaemonRuntime:
        runtime = build_runtime(path, config, metrics)
        runtimes.append(runtime)
        return runtime

    with run_daemon(node.config_path, runtime_factory=factory) as client:
        yield client, runtimes[0]


def _verify(client: Client, reference: str) -> verifier_pb2.VerifyResponse:
    return client.verifier.Verify(verifier_pb2.VerifyRequest(reference=reference), timeout=60)


def _require_allowed(response: verifier_pb2.VerifyResponse, what: str) -> None:
    if not response.allowed:
        raise SystemExit(f"{what}: denied ({response.reason}: {response.message}); fix the setup")


# ------------------------------------------------------------- 1. warm Verify vs Health/Check


def _rate(
    clients: Sequence[Client], call: Callable[[Client], object], window: float
) -> tuple[float, int]:
    """Calls per second with one thread per client for ``window`` seconds; and errors."""
    stop = threading.Event()
    start = threading.Barrier(len(clients) + 1)
    counts = [0] * len(clients)
    errors = [0] * len(clients)

    def loop(i: int) -> None:
        client = clients[i]
        start.wait()
        while not stop.is_set():
            try:
                call(client)
            except grpc.RpcError:
                errors[i] += 1
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(window)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began), sum(errors)


def bench_warm(node: Node, client: Client, args: argparse.Namespace) -> dict[str, float]:
    _require_allowed(_verify(client, node.warm), "warm image")
    socket_path = client.socket_path
    clients = [Client.connect(socket_path) for _ in range(args.clients)]
    request = verifier_pb2.VerifyRequest(reference=node.warm)
    try:

        def verify(c: Client) -> object:
            response = c.verifier.Verify(request, timeout=30)
            if not response.allowed or not response.cache_hit:
                raise SystemExit(f"warm Verify not an allowed cache hit: {response}")
            return response

        def health(c: Client) -> object:
            return c.health.check("")

        _rate(clients, health, 0.3)  # warm-up: channels connected, threads started
        _rate(clients, verify, 0.3)
        verify_rates: list[float] = []
        health_rates: list[float] = []
        ratios: list[float] = []
        errors = 0
        for i in range(args.rounds):
            order = [(health, health_rates), (verify, verify_rates)]
            if i % 2:
                order.reverse()
            for call, sink in order:
                rate, failed = _rate(clients, call, args.window)
                sink.append(rate)
                errors += failed
            ratios.append(verify_rates[-1] / health_rates[-1])
    finally:
        for c in clients:
            c.channel.close()
    print(
        f"[1] warm Verify {statistics.median(verify_rates):8.0f}/s  Health/Check "
        f"{statistics.median(health_rates):8.0f}/s  ({args.clients} clients, {args.rounds} "
        f"x {args.window:g} s windows each, {errors} RPC errors)"
    )
    print(f"    ratio per round: {' '.join(f'{r:.2f}' for r in ratios)}")
    return {"ratio": statistics.median(ratios), "errors": float(errors)}


# ----------------------------------------------------------------- 2. cold Verify vs replay


def bare_replay(
    registry: DockerRegistry, context: ssl.SSLContext, entries: Sequence[AccessLogEntry]
) -> None:
    """The logged requests, in order, with a fresh minimal urllib3 client (fresh connections)."""
    manager = urllib3.PoolManager(ssl_context=context, retries=False)
    try:
        for entry in entries:
            headers = {"User-Agent": USER_AGENT}
            accept = accept_for(entry.path)
            if accept:
                headers["Accept"] = accept
            response = manager.request(entry.method, registry.url + entry.uri, headers=headers)
            if response.status != entry.status:
                raise SystemExit(
                    f"replay of {entry.method} {entry.uri} got {response.status}, "
                    f"logged {entry.status}"
                )
    finally:
        manager.clear()


def _clear_memos(runtime: DaemonRuntime) -> None:
    """Empty the certificate memos of the daemon's current snapshot (a never-seen chain)."""
    snapshot = runtime.state.current()
    if snapshot is not None:
        snapshot.cert_memo.clear()


def _cold_call(
    node: Node, client: Client, runtime: DaemonRuntime
) -> tuple[float, list[AccessLogEntry]]:
    reference = node.take()
    _clear_memos(runtime)
    mark = node.registry.log_mark()
    started = time.perf_counter()
    response = _verify(client, reference)
    elapsed = time.perf_counter() - started
    _require_allowed(response, "cold image")
    if response.cache_hit or len(response.subjects) != 2:
        raise SystemExit(f"not a cold two-subject decision: {response}")
    return elapsed, node.registry.requests_since(mark)


def bench_cold(
    node: Node, client: Client, runtime: DaemonRuntime, args: argparse.Namespace
) -> dict[str, float]:
    context = replay_context(node.registry)
    _, entries = _cold_call(node, client, runtime)  # warm-up of both paths
    bare_replay(node.registry, context, entries)
    cold_times: list[float] = []
    bare_times: list[float] = []
    ratios: list[float] = []
    for _ in range(args.rounds):
        elapsed, entries = _cold_call(node, client, runtime)
        cold_times.append(elapsed)
        started = time.perf_counter()
        bare_replay(node.registry, context, entries)
        bare_times.append(time.perf_counter() - started)
        ratios.append(cold_times[-1] / bare_times[-1])
    print(f"[2] requests per cold multi-platform verification: {len(entries)}")
    for entry in entries:
        print(f"      {entry.method} {entry.path} -> {entry.status}")
    print(
        f"    cold Verify median {statistics.median(cold_times) * 1000:7.2f} ms   bare replay "
        f"median {statistics.median(bare_times) * 1000:7.2f} ms   ({args.rounds} rounds)"
    )
    return {"ratio": statistics.median(ratios), "requests": float(len(entries))}


# ----------------------------------------------------------- 3. registry requests of a burst


def _shape(entries: Sequence[AccessLogEntry]) -> Counter[tuple[str, str]]:
    """(method, kind of path): digests and tags blanked so two images compare."""
    out: Counter[tuple[str, str]] = Counter()
    for entry in entries:
        parts = entry.path.split("/")
        kind = "/".join(parts[:-1]) if len(parts) > 3 else entry.path
        out[(entry.method, kind)] += 1
    return out


def bench_burst(node: Node, client: Client, runtime: DaemonRuntime) -> dict[str, float]:
    _, one = _cold_call(node, client, runtime)
    reference = node.take()
    _clear_memos(runtime)
    before = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10).cache
    mark = node.registry.log_mark()
    barrier = threading.Barrier(BURST)

    def call(_: int) -> verifier_pb2.VerifyResponse:
        barrier.wait()
        return _verify(client, reference)

    with ThreadPoolExecutor(BURST) as pool:
        responses = list(pool.map(call, range(BURST)))
    burst = node.registry.requests_since(mark)
    after = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=10).cache
    for response in responses:
        _require_allowed(response, "burst image")
    joins = after.singleflight_joins - before.singleflight_joins
    extra = _shape(burst) - _shape(one)
    print(
        f"[3] one cold call: {len(one)} requests; {BURST} concurrent cold calls: {len(burst)} "
        f"requests; single-flight joins {joins}, computations {BURST - joins}; "
        f"extra over one call: {dict(extra) or 'none'}"
    )
    return {"ratio": len(burst) / len(one)}


# ------------------------------------------------------------------------ 4. RSS of the cache


def bench_heap(rounds: int) -> dict[str, float]:
    """A full collection's pause in the running daemon, heap settled (``pullgate.common.heap``: the
    daemon's state frozen out of the collector, as ``serve`` leaves it) ÷ thawed (every object
    walked, as without it), interleaved; the daemon is left settled."""
    thawed: list[float] = []
    settled: list[float] = []
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        gc.unfreeze()
        sizes["thawed"] = len(gc.get_objects())
        started = time.perf_counter()
        gc.collect()
        thawed.append(time.perf_counter() - started)
        heap.settle()
        sizes["settled"] = len(gc.get_objects())
        started = time.perf_counter()
        gc.collect()
        settled.append(time.perf_counter() - started)
    ratio = statistics.median(settled) / statistics.median(thawed)
    print(
        f"full collection: {statistics.median(thawed) * 1e3:.1f} ms walking "
        f"{sizes['thawed']} objects, {statistics.median(settled) * 1e3:.2f} ms walking "
        f"{sizes['settled']} once settled ({gc.get_freeze_count()} frozen); ratio {ratio:.3f}"
    )
    return {"ratio": ratio}


def _vm_rss(field: str = "VmRSS") -> int:
    """A resident-size line of ``/proc/self/status`` in bytes: ``VmRSS`` (the target's measure),
    ``RssAnon`` (private memory) or ``RssFile`` (mapped files: shared libraries' pages, which
    depend on the page cache: the same binaries measure several MB apart, docs/decisions.md)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no {field} in /proc/self/status")


def rss_child(decision_file: Path, count: int) -> None:
    """Child process: the daemon's imports, then ``count`` distinct real decisions cached."""
    import dataclasses

    import pullgate.service.app  # noqa: F401  (the daemon's full import set)
    from pullgate.common.clock import SystemClock
    from pullgate.config import CacheConfig
    from pullgate.decision.cache import CacheKey, DecisionCache
    from pullgate.decision.model import Decision

    blob = decision_file.read_bytes()
    template = pickle.loads(blob)  # noqa: S301 (our own file, written by the parent)
    assert isinstance(template, Decision)
    cache = DecisionCache(CacheConfig(max_entries=count), SystemClock())
    baseline = _vm_rss()
    for i in range(count):
        real = pickle.loads(blob)  # noqa: S301  (a distinct object graph per entry)
        top = f"sha256:{i:064x}"
        plat = f"sha256:{i + count:064x}"
        subjects = tuple(
            dataclasses.replace(
                s,
                digest=top if s.role == "index" else plat,
                outcome=dataclasses.replace(s.outcome, digest=top if s.role == "index" else plat)
                if s.outcome is not None
                else None,
            )
            for s in real.subjects
        )
        decision = dataclasses.replace(
            real, digest=top, reference=f"{real.reference}-{i}", subjects=subjects
        )
        key = CacheKey(
            digest=top,
            platform_digest=plat,
            platform="linux/amd64",
            require=None,
            snapshot="0" * 64,
        )
        cache.put(key, decision, None)
    if len(cache) != count:
        raise SystemExit(f"the cache holds {len(cache)} of {count} decisions")
    total = _vm_rss()
    anon, files = _vm_rss("RssAnon"), _vm_rss("RssFile")
    print(
        json.dumps(
            {
                "baseline": baseline,
                "total": total,
                "anon": anon,
                "file": files,
                "entries": len(cache),
            }
        )
    )


def bench_rss(node: Node, runtime: DaemonRuntime, count: int) -> dict[str, float]:
    decision = runtime.decider.decide(DecisionRequest(reference=node.warm))
    if not decision.allowed or len(decision.subjects) != 2:
        raise SystemExit(f"no real two-subject decision to copy: {decision}")
    path = node.tmp / "decision.pickle"
    path.write_bytes(pickle.dumps(decision))
    result = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(path), "--rss-count", str(count)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"RSS child failed: {result.stderr}")
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    total, baseline = numbers["total"] / MB, numbers["baseline"] / MB
    print(
        f"[4] VmRSS of a process with the daemon's imports: {baseline:.1f} MB before, "
        f"{total:.1f} MB with {numbers['entries']} distinct cached decisions "
        f"(delta {total - baseline:.1f} MB, {(total - baseline) * MB / count:.0f} B/decision); "
        f"of which private (RssAnon) {numbers['anon'] / MB:.1f} MB, mapped files (RssFile) "
        f"{numbers['file'] / MB:.1f} MB"
    )
    return {"total_mb": total, "delta_mb": total - baseline}


# ------------------------------------------------------------------------------- 5. reloads


def _until(predicate: Callable[[], bool], limit: float) -> float:
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > limit:
            return float("inf")
    return time.perf_counter() - started


def bench_reload(node: Node, client: Client, args: argparse.Namespace) -> dict[str, float]:
    other = Pki(name="bench someone else").chain(key=KeySpec.ec(256))
    effects: list[float] = []
    restores: list[float] = []
    for _ in range(args.effect_rounds):
        _require_allowed(_verify(client, node.warm), "warm image before the CA swap")
        node.trust(other)  # the watcher sees the directory change; no RPC
        effects.append(_until(lambda: not _verify(client, node.warm).allowed, 10.0))
        node.trust(node.chain)
        restores.append(_until(lambda: _verify(client, node.warm).allowed, 10.0))
    print(
        f"[5] reload-to-effect (CA replaced on disk -> Verify denies): "
        f"{' '.join(f'{e * 1000:.0f}' for e in effects)} ms; "
        f"back to allow: {' '.join(f'{r * 1000:.0f}' for r in restores)} ms"
    )

    load_clients = [Client.connect(client.socket_path) for _ in range(args.load_clients)]
    stop = threading.Event()
    calls = [0] * len(load_clients)
    rpc_errors = [0] * len(load_clients)
    denies = [0] * len(load_clients)

    def load(i: int) -> None:
        while not stop.is_set():
            try:
                response = _verify(load_clients[i], node.warm)
            except grpc.RpcError:
                rpc_errors[i] += 1
            else:
                denies[i] += int(not response.allowed)
            calls[i] += 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(load_clients))]
    for thread in threads:
        thread.start()
    reload_errors = 0
    reload_failed = 0
    generations: set[int] = set()
    started = time.perf_counter()
    policy = node.trust_dir / "trustpolicy.json"
    try:
        for i in range(args.reloads):
            policy.write_text(_policy(2 if i % 2 == 0 else None))
            try:
                result = client.verifier.Reload(verifier_pb2.ReloadRequest(), timeout=30).result
            except grpc.RpcError:
                reload_errors += 1
                continue
            reload_failed += int(not result.ok)
            generations.add(result.generation)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for c in load_clients:
            c.channel.close()
    elapsed = time.perf_counter() - started
    failed = sum(rpc_errors) + reload_errors
    print(
        f"    {args.reloads} Reload RPCs in {elapsed:.1f} s ({len(generations)} generations) "
        f"under {sum(calls)} Verify calls from {len(load_clients)} clients: "
        f"Verify RPC errors {sum(rpc_errors)}, Reload RPC errors {reload_errors}, "
        f"failed reloads {reload_failed}, wrong denies {sum(denies)}"
    )
    return {
        "effect": statistics.median(effects),
        "failed": float(failed + reload_failed + sum(denies)),
    }


# ---------------------------------------------------------------------------------- driver


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    name: str
    value: str
    target: str
    ok: bool


STEPS = ("warm", "gc", "cold", "burst", "rss", "reload")

Result = dict[str, float]


def _rows(results: dict[str, Result], args: argparse.Namespace) -> list[Row]:
    """One row per measure of the steps that ran (in the summary's usual order)."""
    specs: list[tuple[str, str, Callable[[Result], str], str, Callable[[Result], bool]]] = [
        (
            "warm",
            f"warm Verify / Health rate ({args.clients} clients)",
            lambda r: f"{r['ratio']:.2f}",
            ">= 0.8",
            lambda r: r["ratio"] >= 0.8 and r["errors"] == 0,
        ),
        (
            "cold",
            "cold 2-platform Verify / bare replay",
            lambda r: f"{r['ratio']:.2f}",
            "<= 1.3",
            lambda r: r["ratio"] <= 1.3,
        ),
        (
            "burst",
            f"registry requests {BURST} cold calls / 1",
            lambda r: f"{r['ratio']:.2f}",
            "1",
            lambda r: r["ratio"] == 1.0,
        ),
        (
            "gc",
            "full GC pause in the daemon, settled / thawed heap",
            lambda r: f"{r['ratio']:.3f}",
            "<= 0.25",
            lambda r: r["ratio"] <= 0.25,
        ),
        (
            "rss",
            f"VmRSS with {args.rss_decisions} cached decisions",
            lambda r: f"{r['total_mb']:.1f} MB (+{r['delta_mb']:.1f})",
            "<= 100 MB",
            lambda r: r["total_mb"] <= 100.0,
        ),
        (
            "reload",
            "reload-to-effect (median)",
            lambda r: f"{r['effect'] * 1000:.0f} ms",
            "<= 1000 ms",
            lambda r: r["effect"] <= 1.0,
        ),
        (
            "reload",
            f"failed RPCs/reloads in {args.reloads} reloads under load",
            lambda r: f"{r['failed']:.0f}",
            "0",
            lambda r: r["failed"] == 0,
        ),
    ]
    return [
        Row(name=name, value=value(results[step]), target=target, ok=ok(results[step]))
        for step, name, value, target, ok in specs
        if step in results
    ]


def run(args: argparse.Namespace) -> list[Row]:
    steps = set(args.only or STEPS)
    # cold: a warm-up and the rounds; burst: two; one spare
    fresh = (args.rounds + 2 if "cold" in steps else 0) + (2 if "burst" in steps else 0)
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="pullgate-bench-daemon-") as tmp_name:
        tmp = Path(tmp_name)
        with DockerRegistry(tmp / "registry", log_level="warn") as registry:
            started = time.perf_counter()
            node = _prepare(tmp, registry, fresh)
            print(
                f"setup: {fresh + 1} signed 2-platform indexes pushed in "
                f"{time.perf_counter() - started:.1f} s"
            )
            with _daemon(node) as (client, runtime):
                if "warm" in steps:
                    results["warm"] = bench_warm(node, client, args)
                if "gc" in steps:
                    results["gc"] = bench_heap(args.gc_rounds)
                if "cold" in steps:
                    results["cold"] = bench_cold(node, client, runtime, args)
                if "burst" in steps:
                    results["burst"] = bench_burst(node, client, runtime)
                if "rss" in steps:
                    results["rss"] = bench_rss(node, runtime, args.rss_decisions)
                if "reload" in steps:
                    results["reload"] = bench_reload(node, client, args)
    return _rows(results, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 when every target is met, 1 when not, 2 without a registry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds for 1 and 2")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for 1")
    parser.add_argument("--window", type=float, default=1.0, help="seconds per rate window")
    parser.add_argument("--rss-decisions", type=int, default=RSS_DECISIONS)
    parser.add_argument("--effect-rounds", type=int, default=5)
    parser.add_argument("--gc-rounds", type=int, default=9, help="interleaved rounds for 6")
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--load-clients", type=int, default=4)
    parser.add_argument(
        "--only",
        action="append",
        choices=STEPS,
        help="run only this step (repeatable; default: all, in the order 1, 6, 2, 3, 4, 5)",
    )
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rss-count", type=int, default=RSS_DECISIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child is not None:
        rss_child(args.rss_child, args.rss_count)
        return 0
    if not registry_available():
        print("docker-registry is not installed (apt-get install docker-registry)")
        return 2
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    rows = run(args)
    width = max(len(r.name) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'value':>20}  {'target':>10}  result")
    for row in rows:
        print(
            f"{row.name.ljust(width)}  {row.value:>20}  {row.target:>10}  "
            f"{'ok' if row.ok else 'MISSED'}"
        )
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
