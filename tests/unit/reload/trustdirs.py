"""Helpers that lay out notation trust directories, plain or ConfigMap-style (tests only)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.pki import Pki, ca_spec

STATEMENT = "prod"


def root_pem(name: str) -> bytes:
    """A self-signed CA certificate (PEM); a different ``name`` gives a different certificate."""
    return Pki(name=name).root(ca_spec(f"{name} root")).pem


def policy_bytes(*, store: str = "ca:acme", name: str = STATEMENT) -> bytes:
    """A valid trustpolicy.oci.json with one ``*`` statement trusting ``store``."""
    doc = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": name,
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": [store],
                "trustedIdentities": ["*"],
            }
        ],
    }
    return json.dumps(doc).encode()


def write_trust_dir(trust_dir: Path, *, ca: bytes | None = None, store: str = "acme") -> Path:
    """A plain trust dir: policy + ``truststore/x509/ca/<store>/root.pem``."""
    trust_dir.mkdir(parents=True, exist_ok=True)
    (trust_dir / "trustpolicy.oci.json").write_bytes(policy_bytes(store=f"ca:{store}"))
    store_dir = trust_dir / "truststore" / "x509" / "ca" / store
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / "root.pem").write_bytes(ca if ca is not None else root_pem("acme"))
    return trust_dir


def write_configmap_generation(mount: Path, stamp: str, files: dict[str, bytes]) -> Path:
    """Write one kubelet-style generation directory ``..<stamp>`` holding ``files``."""
    generation = mount / f"..{stamp}"
    for rel, data in files.items():
        target = generation / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return generation


def configmap_mount(mount: Path, stamp: str, files: dict[str, bytes]) -> None:
    """A ConfigMap volume: ``..data -> ..<stamp>`` and top-level links ``x -> ..data/x``."""
    mount.mkdir(parents=True, exist_ok=True)
    write_configmap_generation(mount, stamp, files)
    os.symlink(f"..{stamp}", mount / "..data")
    for top in {rel.split("/", 1)[0] for rel in files}:
        os.symlink(f"..data/{top}", mount / top)


def configmap_swap(mount: Path, stamp: str, files: dict[str, bytes]) -> None:
    """Atomically re-point ``..data`` at a new generation, as the kubelet does."""
    write_configmap_generation(mount, stamp, files)
    tmp = mount / "..data_tmp"
    os.symlink(f"..{stamp}", tmp)
    os.replace(tmp, mount / "..data")


def trust_files(ca: bytes, *, store: str = "acme") -> dict[str, bytes]:
    """The files of a trust dir as a ConfigMap would carry them."""
    return {
        "trustpolicy.oci.json": policy_bytes(store=f"ca:{store}"),
        f"truststore/x509/ca/{store}/root.pem": ca,
    }
