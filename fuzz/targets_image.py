"""The end-to-end target: one image verified against a registry whose every answer comes from
the input, under a strict trust policy whose trust store holds a root that signed nothing the
registry can serve. Whatever the registry sends, the outcome must be a deny.

Seeds carry a complete signed image (manifest, referrers listing, signature manifest, JWS
envelope) signed by another, untrusted root, so the fuzzer starts deep in verification.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.support.parts import build_engine
from tests.support.pki import NOW, KeySpec, Pki, write_store

from fuzz.oracle import FuzzTarget, check
from fuzz.scripted import REGISTRY, REPOSITORY, by_digest, client, path_parts, reference
from fuzz.targets_registry import _content
from fuzz.wire import Reply, parse_reply, split_fields
from pullgate.common.clock import FixedClock
from pullgate.config import DaemonConfig, VerificationConfig
from pullgate.decision.model import DecisionRequest
from pullgate.trust.snapshot import Snapshot, build_snapshot

FIELDS = 8  # HEAD, GET, referrers page, next page, tag schema, three content-addressed blobs


class _NoRevocationFetches:
    """OCSP/CRL transport of the target: every fetch fails (revocation unknown, a deny)."""

    def get(self, url: str, *, timeout: float, max_bytes: int) -> bytes:
        raise OSError(f"no revocation fetches in the fuzz target ({url})")

    def post(
        self, url: str, body: bytes, *, content_type: str, timeout: float, max_bytes: int
    ) -> bytes:
        raise OSError(f"no revocation fetches in the fuzz target ({url})")


@functools.cache
def snapshot() -> Snapshot:
    """Built once per process: a strict policy for the fuzz registry, one trusted root."""
    root = Path(tempfile.mkdtemp(prefix="pullgate-fuzz-trust-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    chain = Pki(name="fuzz-trusted").chain(key=KeySpec.ec(256))
    write_store(root, "ca", "fuzz", [chain.root.cert])
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "fuzz",
                "registryScopes": [f"{REGISTRY}/{REPOSITORY}"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:fuzz"],
                "trustedIdentities": ["*"],
            }
        ],
    }
    (root / "trustpolicy.json").write_text(json.dumps(policy))
    config = DaemonConfig(
        trust_dir=root,
        hosts_dirs=(),
        platform="linux/amd64",
        verification=VerificationConfig(crl_cache_dir=root / "crl"),
    )
    return build_snapshot(None, 1, clock=FixedClock(NOW), base=config)


def image(data: bytes) -> None:
    """The decision engine (resolve, index, discover, fetch, verify) over a registry client whose
    every answer comes from the input: never an allow."""
    fields = [parse_reply(f) for f in split_fields(data, FIELDS)]
    head, get, first, following, tag = fields[:5]
    store = by_digest(fields)

    def route(method: str, url: str, headers: Mapping[str, str]) -> Reply:
        parts = path_parts(url)
        if parts[-2:] == ["manifests", "v1"]:
            return head if method == "HEAD" else get
        content = _content(store, method, url)
        if content is not None:
            return content
        if len(parts) >= 2 and parts[-2] == "manifests":
            return tag
        if len(parts) >= 2 and parts[-2] == "referrers" and "artifactType=" in url:
            return first
        return following

    snap = snapshot()
    decider = build_engine(
        lambda: snap,
        clock=FixedClock(NOW),
        fetcher=_NoRevocationFetches(),
        stores=lambda _snap, _creds: client(route)[0],
        max_workers=2,
        max_flights=1,
    )
    try:
        decision = decider.decide(DecisionRequest(reference=str(reference())))
    finally:
        decider.close()
    check(not decision.allowed, "an image no trusted key signed was allowed")


TARGETS = (FuzzTarget("image", "pullgate.decision.decider.Decider.decide (end to end)", image),)
