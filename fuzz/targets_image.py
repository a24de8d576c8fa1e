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
from dataclasses import dataclass
from pathlib import Path

from tests.support.pki import NOW, KeySpec, Pki, write_store

from fuzz.oracle import FuzzTarget, check
from fuzz.scripted import REGISTRY, REPOSITORY, by_digest, client, path_parts, reference
from fuzz.targets_registry import _content
from fuzz.wire import Reply, parse_reply, split_fields
from pullgate.clock import FixedClock
from pullgate.pipeline import verify_image
from pullgate.trust import TrustConfig, load_trust_config
from pullgate.verification.revocation import RevocationStatus, StaticRevocationChecker
from pullgate.verification.verifier import Verifier

FIELDS = 8  # HEAD, GET, referrers page, next page, tag schema, three content-addressed blobs


@dataclass(frozen=True, slots=True)
class Trust:
    """The trust directory of the target and the verifier built on it."""

    config: TrustConfig
    verifier: Verifier


@functools.cache
def trust() -> Trust:
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
    config = load_trust_config(root)
    verifier = Verifier(
        trust_store=config.store,
        revocation=StaticRevocationChecker(RevocationStatus.GOOD),
        clock=FixedClock(NOW),
    )
    return Trust(config, verifier)


def image(data: bytes) -> None:
    """``pipeline.verify_image`` (resolve, discover, fetch, verify): never an allow."""
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

    registry, _ = client(route)
    setup = trust()
    outcome = verify_image(
        trust=setup.config, client=registry, verifier=setup.verifier, reference=reference()
    )
    check(not outcome.allowed, "an image no trusted key signed was allowed")


TARGETS = (FuzzTarget("image", "pullgate.pipeline.verify_image (end to end)", image),)
