"""Pieces shared by the registry benches (``bench/daemon.py``, ``bench/pull.py``,
``bench/registry_verify.py``): the trust policy they all verify under and the TLS setup and
Accept header of their bare-replay clients. Nothing here measures.

Imported after the bench script has put ``daemon/`` and the repository root on ``sys.path``.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import urllib3
from tests.support.docker_registry import DockerRegistry
from tests.support.statements import policy_document

from pullgate.registry.client import MANIFEST_ACCEPT
from pullgate.registry.transport import USER_AGENT, RequestRecord

POLICY: dict[str, Any] = policy_document(name="bench", stores=("ca:bench",))
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


def replay(manager: urllib3.PoolManager, records: Sequence[RequestRecord]) -> None:
    """Send ``records`` again, in order, as pullgate's client sent them (method, URL, Accept).

    Raises:
        SystemExit: a replayed status differs from the recorded one (the replay would not be
            the same work).
    """
    for record in records:
        headers = {"User-Agent": USER_AGENT}
        accept = accept_for(urlsplit(record.url).path)
        if accept:
            headers["Accept"] = accept
        response = manager.request(record.method, record.url, headers=headers)
        if response.status != record.status:
            raise SystemExit(
                f"replay of {record.method} {record.url} got {response.status}, "
                f"recorded {record.status}"
            )
