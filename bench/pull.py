"""Cost of pullgate in the pull path, against Debian's real containerd.

One run starts the real ``docker-registry`` (mutual TLS) and a private containerd 1.6 (CRI
plugin, ``native`` snapshotter, ``registry.config_path`` at a certs.d holding the registry's CA
and client certificate), and wires pullgate as ``pullgate serve`` does: a real
:class:`~pullgate.decision.decider.Decider` over a snapshot of a test trust directory (level
strict, JWS, P-256 leaf) and the same certs.d, behind :class:`~pullgate.cri.proxy.CriProxy`, and
the ``pullgate.v1.Verifier`` socket (:func:`pullgate.service.app.make_server`). A CRI client
generated from the ``runtime.v1`` protos plays the kubelet. Every image is ~10 MB: two
uncompressed tar layers of random bytes, signed.

Measured, interleaved (the order of the two paths alternates every round):

* **cold** — every pull, on either path, is of an image never pulled before (new random layers,
  new digests), so containerd downloads and unpacks everything, and pullgate's decision cache
  misses; the snapshot's certificate memos are cleared before each proxied pull
  (``CertMemo.clear``), so the signing chain is verified from scratch. What a running daemon
  keeps across pulls (the loaded trust store, pooled connections to the registry and to
  containerd) stays, as on a node. The series' images are all pushed, and the disk flushed,
  before the first measured pull (a push right before a pull slows the registry for a few
  milliseconds). A "cold start" line (a brand-new decider: no pooled connection, no TLS
  context) is informational.
* **warm** — the same image for both paths, its decision already cached (asserted through the
  decider's cache counters).

Two ratios per series, both measured in the same run:

* **paired rounds** (compared with the target): the proxied pull ÷ the round's direct pull of
  another, equally fresh image. Pull times vary about +-10 % from one pull to the next here
  (content-store fsyncs, unpacking to disk, the registry's garbage collector), and a round's
  ratio carries that twice, so the 95 % interval printed with it is several points wide: one
  run can only place the ratio within a few points of a target.
* **same pull** (the breakdown): the proxied ``PullImage`` as the kubelet sees it ÷ the proxy's
  own ``PullImage`` call to containerd inside that pull. Numerator and denominator share one
  pull, so the variation cancels and what is left is pullgate's own added time (the extra gRPC
  hop in and out, parsing, the decision, the pin's ``ImageStatus``), to within a point. It is
  not the compared number because it leaves out any effect pullgate has on containerd's pull
  itself (printed as "containerd's pull via the proxy / direct").

Each ratio is the median over the rounds, with a 95 % bootstrap interval.

**floor** (informational, cold only): right after each cold proxied pull, the registry requests
that pull's decision made (recorded through the decider's request log: methods, URLs, Accept
headers) are replayed by a bare urllib3 client over its own warm pooled connection with the
same TLS setup, and timed. ``(containerd's pull + replay) / containerd's pull`` is what the cold
ratio would be if pullgate cost nothing but those registry round trips: no proxy hop, no
parsing, no cryptography (and it asks for objects the registry has just served).

**zero-cost pullgate** (informational): each cold and warm round has a third path, the real
:class:`CriProxy` (inbound hop, forward, the pin's ``ImageStatus``) on a socket of its own whose
decision function is :class:`ZeroCostDecider`. Cold, it has a bare urllib3 client fetch the
image's signature with the five requests a decision makes, each found from the previous answer
(the image manifest alongside the signature's three, as a decision reads it), then allows;
warm, it allows from memory. Its ratios (paired, and same pull) are the lowest a proxy that
verifies before it forwards can reach here, whatever its verification costs. The
three paths take every place in the round in turn.

Between pulls the image is removed (``RemoveImage``). containerd's CRI removes the last
reference with a synchronous garbage collection, so content and snapshots go too; the script
checks, before every measured pull, that containerd's content store (``ctr content ls``) and its
snapshots are empty, and stops if not, then flushes dirty pages (``sync``). Both paths
therefore always start equally cold.

* **shim** — ``pullgate-containerd-verifier`` executed exactly as containerd's bindir verifier
  does (argv ``-name REF -digest D -stdin-media-type T``, descriptor JSON on stdin; plus
  ``-socket``, which a site wrapper would set), against the real Verifier server answering from a
  warm decision, ÷ ``python -c pass`` with the same interpreter the shebang names. The plain
  wrapper the package installs is the target; pip's and distlib's console-script wrappers are
  printed for information. ``PYTHONDONTWRITEBYTECODE`` is removed from the subprocesses'
  environment and each form runs once before measuring, so bytecode is cached as on a node.

Prints a table of ratios and targets; exit status 1 when a target is missed, 2 when the
registry or containerd cannot run here. Absolute times are context; the ratio is compared.

Run (root): ``.venv/bin/python bench/pull.py [--rounds N] [--warm-rounds N] [--shim-runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import urllib3

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.containerd import (  # noqa: E402
    Containerd,
    CriClient,
    containerd_unavailable,
    write_hosts_toml,
)
from tests.support.docker_registry import DockerRegistry, registry_available  # noqa: E402
from tests.support.parts import build_engine, build_fetcher  # noqa: E402
from tests.support.pki import NOW, Chain, KeySpec, Pki, write_store  # noqa: E402
from tests.support.push import Pusher  # noqa: E402

from bench._common import POLICY, replay, replay_context  # noqa: E402
from bench.pull_paths import (  # noqa: E402
    NoControl,
    SwappableDecider,
    TimedProxy,
    ZeroCostDecider,
)
from bench.pull_series import Row, Series, pull_rows, table, zero_cost_rows  # noqa: E402
from bench.pull_shim import ShimBench, measure_shim  # noqa: E402
from bench.pull_support import (  # noqa: E402
    LoopThread,
    content_digests,
    push_signed_image,
    snapshot_count,
)
from pullgate.common.clock import FixedClock  # noqa: E402
from pullgate.common.descriptor import Descriptor  # noqa: E402
from pullgate.config import DaemonConfig, VerificationConfig  # noqa: E402
from pullgate.decision.audit_log import AuditLog  # noqa: E402
from pullgate.decision.model import DecisionRequest  # noqa: E402
from pullgate.decision.platform import host_platform  # noqa: E402
from pullgate.decision.record import DecisionRecorder  # noqa: E402
from pullgate.registry.transport import RequestRecord  # noqa: E402
from pullgate.service.app import make_server  # noqa: E402
from pullgate.service.servicer import ServerParts  # noqa: E402
from pullgate.trust.snapshot import Snapshot, build_snapshot  # noqa: E402
from pullgate.verification.cache import CertMemo  # noqa: E402

TARGET_COLD = 1.10
TARGET_WARM = 1.02
TARGET_SHIM = 2.0
LAYER_BYTES = 5 * 1024 * 1024
REPO = "bench/app"
SETTLE_SECONDS = 1.0
BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 6


class BenchError(RuntimeError):
    """The setup is not what the measurement assumes (the run stops)."""


@dataclass
class Bench:
    """Everything one run shares."""

    tmp: Path
    registry: DockerRegistry
    containerd: Containerd
    chain: Chain
    deciders: SwappableDecider
    via: CriClient
    direct: CriClient
    platform: str
    api_socket: Path
    replayer: urllib3.PoolManager
    proxy: TimedProxy
    zero_cost: ZeroCostDecider
    zero_cost_proxy: TimedProxy
    zero_cost_via: CriClient
    memo: CertMemo  # the snapshot's certificate memos
    pushed: int = 0
    last_records: list[RequestRecord] = field(default_factory=list)  # of the last floor pull
    referrers_probes: int = 0  # Referrers API probes of cold decisions (not in the bare fetch)

    def image(self) -> tuple[str, Descriptor]:
        """Push a new signed ~10 MB image; its tag reference and manifest descriptor."""
        self.pushed += 1
        tag = f"v{self.pushed}"
        with Pusher.for_registry(self.registry) as pusher:
            desc = push_signed_image(
                pusher,
                self.chain,
                repo=REPO,
                tag=tag,
                platform=self.platform,
                layer_bytes=LAYER_BYTES,
            )
        return f"{self.registry.host}/{REPO}:{tag}", desc

    def ensure_empty(self) -> None:
        """containerd holds no content and no snapshot (else the next pull is not cold)."""
        deadline = time.monotonic() + 10.0
        while True:
            blobs = content_digests(self.containerd.socket)
            snapshots = snapshot_count(self.containerd.socket)
            if not blobs and not snapshots:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"containerd still holds {len(blobs)} blobs, {snapshots} snapshots "
                    "after RemoveImage: pulls would not be cold"
                )
            time.sleep(0.05)

    def timed_pull(self, client: CriClient, ref: str) -> float:
        """Seconds for one ``PullImage`` into an empty containerd; the image is removed after.

        Dirty pages (the previous pull's unpacked layers, pushes) are flushed before the clock
        starts, so the kernel's writeback does not land at random inside a measured pull.
        """
        self.ensure_empty()
        os.sync()
        started = time.perf_counter()
        client.pull(ref)
        elapsed = time.perf_counter() - started
        self.direct.remove(ref)
        return elapsed

    def proxied_pull(self, series: Series, ref: str, *, floor: bool = False) -> None:
        """One measured pull through pullgate; records its time, its decision's time and the
        proxy's own PullImage call to containerd (``floor``: and the time of a bare replay of
        the decision's registry requests)."""
        decisions = len(self.deciders.durations)
        forwards = len(self.proxy.forward_times)
        series.proxied.append(self.timed_pull(self.via, ref))
        if len(self.deciders.durations) != decisions + 1:
            raise BenchError("a proxied pull did not ask the decision layer exactly once")
        if len(self.proxy.forward_times) != forwards + 1:
            raise BenchError("a proxied pull did not forward PullImage exactly once")
        series.decisions.append(self.deciders.durations[-1])
        series.upstream.append(self.proxy.forward_times[-1])
        if floor:
            records = list(self.deciders.requests)
            started = time.perf_counter()
            replay(self.replayer, records)
            series.floor.append(time.perf_counter() - started)
            series.floor_requests = len(records)
            self.last_records = records

    def zero_cost_pull(self, series: Series, ref: str, *, cold: bool) -> None:
        """One measured pull through the zero-cost proxy (see :class:`ZeroCostDecider`): cold,
        its decision fetches the signature (as a cold decision's requests do); warm, it answers
        from memory."""
        fetches = len(self.zero_cost.durations)
        forwards = len(self.zero_cost_proxy.forward_times)
        series.zero_cost.append(self.timed_pull(self.zero_cost_via, ref))
        if len(self.zero_cost.durations) != fetches + cold:
            raise BenchError(f"a zero-cost pull (cold={cold}) fetched the signature wrongly")
        if len(self.zero_cost_proxy.forward_times) != forwards + 1:
            raise BenchError("a zero-cost pull did not forward PullImage exactly once")
        series.zero_cost_upstream.append(self.zero_cost_proxy.forward_times[-1])
        if not cold:
            return
        series.zero_cost_fetch.append(self.zero_cost.durations[-1])
        # The same requests; their order differs (each fetches the image manifest alongside).
        # A registry client probes the Referrers API once per [cache] referrers_ttl before it
        # uses the tag schema (pullgate.registry.referrers_memo); the bare fetch models the
        # steady state, so such a probe is counted, not compared.
        decided = sorted(
            (r.method, kind)
            for r in self.last_records
            if (kind := urlsplit(r.url).path.rsplit("/", 2)[-2]) != "referrers"
        )
        self.referrers_probes += len(self.last_records) - len(decided)
        fetched = sorted((m, path.rsplit("/", 2)[-2]) for m, path in self.zero_cost.sent)
        if fetched != decided:
            raise BenchError(f"the bare fetch {fetched} is not a decision's work {decided}")

    def cache_hits(self) -> int:
        """Decision-cache hits of the current decider."""
        return self.deciders.current.stats().cache.hits


def _snapshot(tmp: Path, certs_d: Path, chain: Chain, platform: str) -> Snapshot:
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "bench", [chain.root.cert])
    (trust_dir / "trustpolicy.json").write_text(json.dumps(POLICY))
    config = DaemonConfig(
        trust_dir=trust_dir,
        hosts_dirs=(certs_d,),
        platform=platform,
        verification=replace(VerificationConfig(), crl_cache_dir=tmp / "crl", timeout=60.0),
    )
    return build_snapshot(None, 1, clock=FixedClock(NOW), base=config)


def _start(stack: ExitStack, tmp: Path) -> tuple[Bench, LoopThread]:
    certs_d = tmp / "certs.d"
    certs_d.mkdir()
    platform = str(host_platform())
    chain = Pki(name="pull bench").chain(key=KeySpec.ec(256))
    snap = _snapshot(tmp, certs_d, chain, platform)
    registry = stack.enter_context(DockerRegistry(tmp / "registry", log_level="warn"))
    write_hosts_toml(certs_d, registry)
    containerd = stack.enter_context(Containerd(certs_d))
    deciders = SwappableDecider(
        lambda log: build_engine(
            lambda: snap, clock=FixedClock(NOW), fetcher=build_fetcher(), request_log=log
        )
    )
    stack.callback(deciders.close)
    loop = LoopThread()
    stack.callback(loop.close)
    audit = AuditLog()  # the proxies audit as the daemon's do (nothing counted here)
    recorder = DecisionRecorder(audit.write, wanted=audit.enabled)
    proxy = TimedProxy(str(containerd.socket), deciders.decide, recorder=recorder)
    fetcher = urllib3.PoolManager(ssl_context=replay_context(registry), retries=False, maxsize=2)
    stack.callback(fetcher.clear)
    zero_cost = ZeroCostDecider(fetcher, registry.url, REPO)
    stack.callback(zero_cost.close)
    zero_cost_proxy = TimedProxy(str(containerd.socket), zero_cost.decide, recorder=recorder)
    sockets = Path(tempfile.mkdtemp(prefix="pgbench-", dir="/tmp"))  # short: sun_path limit
    stack.callback(shutil.rmtree, sockets, ignore_errors=True)
    cri_socket = sockets / "cri.sock"
    api_socket = cri_socket.parent / "api.sock"
    servers = AsyncExitStack()

    async def serve() -> None:
        await proxy.start(cri_socket)
        servers.push_async_callback(proxy.stop, 1.0)
        await zero_cost_proxy.start(sockets / "zero.sock")
        servers.push_async_callback(zero_cost_proxy.stop, 1.0)
        parts = ServerParts(engine=deciders, control=NoControl(), recorder=DecisionRecorder(None))
        await servers.enter_async_context(make_server(api_socket, parts, serving=True))

    loop.run(serve())
    stack.callback(lambda: loop.run(servers.aclose()))
    via = stack.enter_context(CriClient(cri_socket))
    direct = stack.enter_context(CriClient(containerd.socket))
    zero_cost_via = stack.enter_context(CriClient(sockets / "zero.sock"))
    replayer = urllib3.PoolManager(ssl_context=replay_context(registry), retries=False)
    stack.callback(replayer.clear)
    bench = Bench(
        tmp,
        registry,
        containerd,
        chain,
        deciders,
        via,
        direct,
        platform,
        api_socket,
        replayer,
        proxy,
        zero_cost,
        zero_cost_proxy,
        zero_cost_via,
        snap.cert_memo,
    )
    return bench, loop


def measure_cold(bench: Bench, rounds: int, *, fresh_decider: bool) -> Series:
    """Every pull a never-seen image; decision computed from scratch for the proxied one.

    The round's images are all pushed before the first measured pull, and the registry's disk
    writes are flushed (``sync``): a ~20 MB push right before a pull leaves the registry busy
    (garbage collection, page-cache writeback) for the next few milliseconds, which would land
    on whichever path pulls first in the round, not on pullgate or containerd.
    """
    series = Series()
    paths = ["proxied", "direct"] if fresh_decider else ["proxied", "direct", "zero-cost"]
    images = [{path: bench.image()[0] for path in paths} for _ in range(rounds)]
    settle()
    for index, refs in enumerate(images):
        if fresh_decider:
            bench.deciders.renew()
        bench.memo.clear()
        hits = bench.cache_hits()
        shift = index % len(paths)  # every path takes every place in the round in turn
        for path in paths[shift:] + paths[:shift]:
            if path == "proxied":
                bench.proxied_pull(series, refs[path], floor=not fresh_decider)
                if bench.cache_hits() != hits:
                    raise BenchError("a cold proxied pull hit the decision cache")
            elif path == "direct":
                series.direct.append(bench.timed_pull(bench.direct, refs[path]))
            else:
                bench.zero_cost_pull(series, refs[path], cold=True)
    return series


def settle() -> None:
    """Flush dirty pages to disk and give background work a moment (before measuring)."""
    os.sync()
    time.sleep(SETTLE_SECONDS)


def measure_warm(bench: Bench, rounds: int) -> Series:
    """The same image on both paths, its decision cached by a first proxied pull."""
    ref, _ = bench.image()
    bench.timed_pull(bench.via, ref)  # computes and caches the decision
    bench.timed_pull(bench.zero_cost_via, ref)  # and the zero-cost proxy's
    settle()
    series = Series()
    paths = ["proxied", "direct", "zero-cost"]
    for index in range(rounds):
        shift = index % len(paths)
        for path in paths[shift:] + paths[:shift]:
            if path == "proxied":
                hits = bench.cache_hits()
                bench.proxied_pull(series, ref)
                if bench.cache_hits() != hits + 1:
                    raise BenchError("a warm proxied pull missed the decision cache")
            elif path == "direct":
                series.direct.append(bench.timed_pull(bench.direct, ref))
            else:
                bench.zero_cost_pull(series, ref, cold=False)
    return series


def _warm_up(bench: Bench) -> None:
    """One pull per path (channels, imports, containerd's and the registry's first-use costs)."""
    bench.ensure_empty()
    for client in (bench.via, bench.direct, bench.zero_cost_via):
        ref, _ = bench.image()
        bench.timed_pull(client, ref)


def run(args: argparse.Namespace) -> list[Row]:
    """Set up, measure, print the details; returns the summary rows."""
    with (
        tempfile.TemporaryDirectory(prefix="pullgate-pull-bench-") as tmp_name,
        ExitStack() as stack,
    ):
        bench, _ = _start(stack, Path(tmp_name))
        _warm_up(bench)
        cold = measure_cold(bench, args.rounds, fresh_decider=False)
        warm = measure_warm(bench, args.warm_rounds)
        start = measure_cold(bench, args.start_rounds, fresh_decider=True)
        shim_ref, shim_desc = bench.image()
        bench.deciders.decide(DecisionRequest(reference=shim_ref, digest=shim_desc.digest))
        shim = measure_shim(
            ShimBench(
                socket=bench.api_socket,
                reference=shim_ref,
                digest=shim_desc.digest,
                bin_root=bench.tmp / "verifier",
                python=str(ROOT / ".venv" / "bin" / "python"),
            ),
            args.shim_runs,
        )
    print(f"image: 2 layers x {LAYER_BYTES / 2**20:.0f} MiB random bytes, signed (JWS, P-256)")
    for name, series in (("cold", cold), ("warm", warm), ("cold start (new decider)", start)):
        print("\n".join(series.lines(name)))
    for line in shim.lines():
        print(line)
    print(
        f"Referrers API probes in cold decisions (once per client and referrers_ttl): "
        f"{bench.referrers_probes}"
    )
    rows = [
        *pull_rows("cold", cold, TARGET_COLD),
        Row(name="  floor: registry round trips alone", ratio=cold.floor_ratio, target=None),
        *zero_cost_rows(cold, "real proxy and pin, bare fetch"),
        *pull_rows("warm decision cache", warm, TARGET_WARM),
        *zero_cost_rows(warm, "real proxy and pin"),
        Row(
            name="PullImage proxied / direct, cold start (new decider)",
            ratio=start.ratio,
            target=None,
        ),
        Row(
            name="shim (plain wrapper) / python -c pass",
            ratio=shim.ratio("plain"),
            target=TARGET_SHIM,
        ),
    ]
    rows += [
        Row(name=f"shim ({name} wrapper) / python -c pass", ratio=shim.ratio(name), target=None)
        for name in shim.forms
        if name != "plain"
    ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when every target is met, 1 when one is missed, 2 when it cannot run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=101, help="cold rounds (2 pulls each)")
    parser.add_argument("--warm-rounds", type=int, default=201, help="warm rounds (2 pulls each)")
    parser.add_argument("--start-rounds", type=int, default=5, help="cold-start rounds")
    parser.add_argument("--shim-runs", type=int, default=40, help="runs of each executable")
    args = parser.parse_args(argv)
    if not registry_available():
        print("docker-registry is not installed (apt-get install docker-registry)")
        return 2
    reason = containerd_unavailable()
    if reason is not None:
        print(f"containerd cannot run here: {reason}")
        return 2
    started = time.monotonic()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    rows = run(args)
    print()
    print(table(rows))
    print(
        f"\nwall time of the whole run: {time.monotonic() - started:.0f} s; "
        f"load average at end: {os.getloadavg()[0]:.2f}"
    )
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
