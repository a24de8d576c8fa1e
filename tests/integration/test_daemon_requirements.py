"""Index + platform requirements through the real daemon against the real mTLS docker-registry.

With a 2-platform index, index + platform signed → allow (both
subjects reported); index-only signed with ``both`` → deny, with ``index`` → allow; platform-only
signed with ``either`` → allow; a platform absent from the index → ``PLATFORM_NOT_FOUND``. Each
requirement is the setting of its own trust-policy statement in the daemon's config.toml.
"""

from __future__ import annotations

import json

import pytest

from pullgate.common.descriptor import Descriptor
from tests.integration.test_daemon import (  # fixtures are used by name
    Node,
    _verify,
    needs_registry,
    node,
    registries,
)
from tests.support.docker_registry import RegistryFactory
from tests.support.grpc_harness import run_daemon
from tests.support.pki import Chain
from tests.support.push import MT_JWS, Pusher
from tests.support.signing import sign_jws

__all__ = ["node", "registries"]  # re-exported fixtures

pytestmark = [pytest.mark.integration, needs_registry]

REQUIREMENTS = ("both", "index", "either")


def _push_index(pusher: Pusher, repo: str, tag: str = "multi") -> tuple[Descriptor, Descriptor]:
    amd64 = pusher.push_image(repo, None, "linux/amd64", f"{repo}:{tag} amd64".encode())
    arm64 = pusher.push_image(repo, None, "linux/arm64/v8", f"{repo}:{tag} arm64".encode())
    index = pusher.push_index(repo, tag, {"linux/amd64": amd64, "linux/arm64/v8": arm64})
    return index, amd64


def _sign(pusher: Pusher, chain: Chain, repo: str, subject: Descriptor) -> None:
    pusher.push_signature(repo, subject, sign_jws(chain, subject), MT_JWS, certificates=chain.x509)


def configure_requirements(
    node: Node, host: str, requirements: tuple[str, ...] = REQUIREMENTS
) -> None:
    """One statement per requirement, scoped to ``<host>/req/<requirement>``, with that
    ``require`` in the daemon's config.toml."""
    statements = [
        {
            "name": req,
            "registryScopes": [f"{host}/req/{req}"],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:prod"],
            "trustedIdentities": ["*"],
        }
        for req in requirements
    ]
    node.write_policy(json.dumps({"version": "1.0", "trustPolicies": statements}))
    node.write_config()
    with node.config_path.open("a") as fh:
        for req in requirements:
            fh.write(f'[statements."{req}"]\nrequire = "{req}"\n')


def test_requirements_against_the_real_registry(node: Node, registries: RegistryFactory) -> None:
    registry = registries.start()
    node.trust_registry(registry)
    configure_requirements(node, registry.host)
    with Pusher.for_registry(registry) as pusher:
        # req/both: a fully signed image, and an image whose index alone is signed.
        full_index, full_amd64 = _push_index(pusher, "req/both")
        _sign(pusher, node.chain, "req/both", full_index)
        _sign(pusher, node.chain, "req/both", full_amd64)
        both_only, _ = _push_index(pusher, "req/both", tag="index-only")
        _sign(pusher, node.chain, "req/both", both_only)
        # req/index: the index alone is signed.
        index_only, _ = _push_index(pusher, "req/index", tag="index-only")
        _sign(pusher, node.chain, "req/index", index_only)
        # req/either: only the linux/amd64 manifest is signed.
        either_index, either_amd64 = _push_index(pusher, "req/either")
        _sign(pusher, node.chain, "req/either", either_amd64)

    with run_daemon(node.config_path) as client:
        host = registry.host
        full = _verify(client, f"{host}/req/both:multi")
        assert (full.allowed, full.reason, full.requirement) == (True, "VERIFIED", "both")
        assert sorted(s.role for s in full.subjects) == ["index", "platform"]
        assert all(s.verified for s in full.subjects)

        both = _verify(client, f"{host}/req/both:index-only")
        assert (both.allowed, both.requirement) == (False, "both")
        assert both.reason == "NO_SIGNATURE"
        assert {s.role: s.verified for s in both.subjects} == {"index": True, "platform": False}

        index = _verify(client, f"{host}/req/index:index-only")
        assert (index.allowed, index.reason, index.requirement) == (True, "VERIFIED", "index")

        either = _verify(client, f"{host}/req/either:multi")
        assert (either.allowed, either.reason, either.requirement) == (True, "VERIFIED", "either")
        assert either.digest == either_index.digest

        absent = _verify(client, f"{host}/req/both:multi", platform="linux/s390x")
        assert (absent.allowed, absent.reason) == (False, "PLATFORM_NOT_FOUND")
