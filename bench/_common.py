"""Pieces shared by the registry benches (``bench/daemon.py``, ``bench/pull.py``,
``bench/registry_verify.py``): the trust policy they all verify under and the TLS setup and
Accept header of their bare-replay clients (issue 5/6 acceptance benches). Nothing here measures.

Imported after the bench script has put ``daemon/`` and the repository root on ``sys.path``.
"""

from __future__ import annotations

import ssl
from typing import Any

from tests.support.docker_registry import DockerRegistry

from pullgate.registry.client import MANIFEST_ACCEPT

POLICY: dict[str, Any] = {
    "version": "1.0",
    "trustPolicies": [
        {
            "name": "bench",
            "registryScopes": ["*"],
            "signatureVerification": {"level": "strict"},
            "trustStores": ["ca:bench"],
            "trustedIdentities": ["*"],
        }
    ],
}
"""Level strict, any identity, trust store ``ca:bench`` (the benches' only policy)."""


def replay_context(registry: DockerRegistry) -> ssl.SSLContext:
    """The TLS setup of the daemon's client for ``registry``: system roots + CA, client cert."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=str(registry.ca_pem))
    context.load_cert_chain(str(registry.client_pem), str(registry.client_key))
    return context


def accept_for(path: str) -> str | None:
    """The Accept header pullgate's client sends for a request to URL path ``path``, if any."""
    if "/manifests/" in path or "/referrers/" in path:
        return MANIFEST_ACCEPT
    return None
