"""Cost of a cold registry verification relative to the bare HTTP traffic it needs.

Against the real ``docker-registry`` (distribution 2.8.2, mutual TLS, no Referrers API, so the
referrers tag schema is used) holding one image with one JWS signature (P-256 leaf, 3-certificate
chain, level strict), measures in one run, interleaved:

* cold: what ``pullgate verify IMAGE`` does once the process is up and its one-shot configuration
  snapshot is built — its certificate memos cleared (``CertMemo.clear``), a fresh decision engine
  (``Decider``: no pooled connection, no TLS context, no token), certs.d lookup, reference
  parsing, resolve, signature discovery, fetches, verification and the allow's content binding
  (the CLI's code path, which is every front end's);
* bare: exactly the same HTTP requests (recorded through the client's ``request_log`` hook: same
  methods, URLs, Accept headers, same order) replayed by a minimal urllib3 client with the same
  TLS setup (system roots + the certs.d CA, the client certificate), built fresh each time, and
  equally fresh connections. Every replayed status must match the recorded one.

Prints the medians and the ratio cold / bare. Absolute times are context only; the machines are
noisy, the ratio is what is compared. Exit status 1 when the ratio exceeds the target (1.5x).

Run: ``.venv/bin/python bench/registry_verify.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

from tests.support.docker_registry import DockerRegistry, registry_available  # noqa: E402
from tests.support.parts import build_engine, build_fetcher  # noqa: E402
from tests.support.pki import KeySpec, Pki, write_store  # noqa: E402
from tests.support.push import MT_JWS, Pusher  # noqa: E402
from tests.support.signing import sign_jws  # noqa: E402

from bench._common import POLICY, replay, replay_context  # noqa: E402
from pullgate.common.clock import SystemClock  # noqa: E402
from pullgate.config import DaemonConfig, VerificationConfig  # noqa: E402
from pullgate.decision.model import DecisionRequest  # noqa: E402
from pullgate.registry.transport import RequestRecord  # noqa: E402
from pullgate.trust.snapshot import Snapshot, build_snapshot  # noqa: E402

TARGET_RATIO = 1.5
REPO = "bench/app"


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """Everything the cold path and the replay share."""

    registry: DockerRegistry
    image: str
    snapshot: Snapshot


def _prepare(tmp: Path, registry: DockerRegistry) -> Setup:
    chain = Pki(name="bench").chain(key=KeySpec.ec(256))
    with Pusher.for_registry(registry) as pusher:
        image = pusher.push_image(REPO, "v1", "linux/amd64", b"bench layer" * 512)
        pusher.push_signature(REPO, image, sign_jws(chain, image), MT_JWS, certificates=chain.x509)
    trust_dir = tmp / "trust"
    write_store(trust_dir, "ca", "bench", [chain.root.cert])
    (trust_dir / "trustpolicy.json").write_text(json.dumps(POLICY))
    hosts = tmp / "certs.d" / registry.host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f"server = {json.dumps(registry.url)}\n"
        f"ca = {json.dumps(str(registry.ca_pem))}\n"
        f"client = [[{json.dumps(str(registry.client_pem))}, "
        f"{json.dumps(str(registry.client_key))}]]\n"
    )
    config = DaemonConfig(
        trust_dir=trust_dir,
        hosts_dirs=(tmp / "certs.d",),
        verification=VerificationConfig(crl_cache_dir=tmp / "crl"),
    )
    return Setup(
        registry=registry,
        image=f"{registry.host}/{REPO}:v1",
        snapshot=build_snapshot(None, 1, clock=SystemClock(), base=config),
    )


def cold_verify(setup: Setup, request_log: Callable[[RequestRecord], None] | None = None) -> bool:
    """One verification from scratch, as ``pullgate verify`` runs it. True when allowed."""
    snapshot = setup.snapshot
    snapshot.cert_memo.clear()
    decider = build_engine(
        lambda: snapshot,
        clock=SystemClock(),
        fetcher=build_fetcher(),
        request_log=request_log,
        max_flights=1,
    )
    try:
        decision = decider.decide(DecisionRequest(reference=setup.image, caller="cli"))
    finally:
        decider.close()
    return decision.allowed


def bare_replay(setup: Setup, records: Sequence[RequestRecord]) -> float:
    """The recorded requests with a minimal client: fresh TLS context, fresh connections.

    Returns:
        Seconds spent building the TLS context (reported separately, see :func:`run`).
    """
    registry = setup.registry
    started = time.perf_counter()
    context = replay_context(registry)
    context_build = time.perf_counter() - started
    manager = urllib3.PoolManager(ssl_context=context, retries=False)
    try:
        replay(manager, records)
    finally:
        manager.clear()
    return context_build


def _record(setup: Setup) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    if not cold_verify(setup, records.append):
        raise SystemExit("the signed image was not allowed; fix the setup before benchmarking")
    if any(r.status is None for r in records):
        raise SystemExit(f"a recorded request failed at transport level: {records}")
    return records


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run(rounds: int) -> float:
    """Measure and print; returns the ratio of the medians (cold / bare)."""
    with tempfile.TemporaryDirectory(prefix="pullgate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with DockerRegistry(tmp / "registry", log_level="warn") as registry:
            setup = _prepare(tmp, registry)
            records = _record(setup)
            bare_replay(setup, records)  # warm-up of both paths (imports, registry caches)
            cold_times: list[float] = []
            bare_times: list[float] = []
            context_times: list[float] = []
            for _ in range(rounds):
                again: list[RequestRecord] = []
                elapsed, allowed = _timed(functools.partial(cold_verify, setup, again.append))
                if allowed is not True:
                    raise SystemExit("a cold verification did not allow the signed image")
                cold_times.append(elapsed)
                if [(r.method, r.url, r.status) for r in again] != [
                    (r.method, r.url, r.status) for r in records
                ]:
                    raise SystemExit("the cold path did not repeat the same requests")
                elapsed, context_build = _timed(functools.partial(bare_replay, setup, records))
                assert isinstance(context_build, float)
                bare_times.append(elapsed)
                context_times.append(context_build)
    cold = statistics.median(cold_times)
    bare = statistics.median(bare_times)
    context = statistics.median(context_times)
    ratio = cold / bare
    print(f"requests per verification: {len(records)}")
    for record in records:
        print(f"  {record.method} {record.url} -> {record.status} ({record.size} bytes)")
    print(f"cold verification   median {cold * 1000:8.2f} ms over {rounds} rounds")
    print(f"bare request replay median {bare * 1000:8.2f} ms")
    print(f"ratio cold / bare: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    # Both sides build a TLS context from the system roots plus the CA (containerd semantics:
    # ``ca`` adds to the system pool); that dominates here, so show the ratio without it too.
    print(
        f"for context: TLS context build median {context * 1000:.2f} ms in both; "
        f"ratio without it: {(cold - context) / (bare - context):.2f}x (informational)"
    )
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 when the ratio meets the target, 1 when not, 2 without a registry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    if not registry_available():
        print("docker-registry is not installed (apt-get install docker-registry)")
        return 2
    ratio = run(args.rounds)
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
