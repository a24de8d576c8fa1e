"""Loading a notation configuration directory (:mod:`pullgate.trust.files`; docs/notation.md §8.1).

A Kubernetes ConfigMap mount presents every file as a symlink into ``..data``; with
``allow_symlinks`` the policy documents must load through such links just like the stores do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from pullgate.errors import ConfigError
from pullgate.trust.files import load_blob_trust, load_trust_config
from pullgate.verification.policy import InvalidTrustPolicy, PolicyRule

_STATEMENT = {
    "name": "s",
    "signatureVerification": {"level": "strict"},
    "trustStores": ["ca:acme"],
    "trustedIdentities": ["*"],
}


def _configmap_dir(tmp_path: Path, name: str, statement: Mapping[str, object]) -> Path:
    """A trust dir whose policy ``name`` is a ConfigMap-style link into ``..data``."""
    trust_dir = tmp_path / "trust"
    data = trust_dir / "..data"
    data.mkdir(parents=True)
    doc = {"version": "1.0", "trustPolicies": [statement]}
    (data / name).write_text(json.dumps(doc))
    os.symlink(Path("..data") / name, trust_dir / name)
    return trust_dir


def _rule(exc: pytest.ExceptionInfo[InvalidTrustPolicy]) -> PolicyRule:
    (rule,) = exc.value.rules
    return rule


def test_oci_policy_symlink_follows_allow_symlinks(tmp_path: Path) -> None:
    statement = {**_STATEMENT, "registryScopes": ["registry.example/app"]}
    trust_dir = _configmap_dir(tmp_path, "trustpolicy.oci.json", statement)
    trust = load_trust_config(trust_dir, allow_symlinks=True)
    assert [st.name for st in trust.oci_policy.statements] == ["s"]
    assert trust.store.allow_symlinks
    with pytest.raises(InvalidTrustPolicy) as info:
        load_trust_config(trust_dir)
    assert _rule(info) is PolicyRule.FILE_NOT_REGULAR


def test_blob_policy_symlink_follows_allow_symlinks(tmp_path: Path) -> None:
    trust_dir = _configmap_dir(tmp_path, "trustpolicy.blob.json", dict(_STATEMENT))
    policy, store = load_blob_trust(trust_dir, allow_symlinks=True)
    assert policy.select("s").name == "s"
    assert store.allow_symlinks
    with pytest.raises(InvalidTrustPolicy) as info:
        load_blob_trust(trust_dir)
    assert _rule(info) is PolicyRule.FILE_NOT_REGULAR


@pytest.mark.parametrize("loader", [load_trust_config, load_blob_trust])
def test_missing_trust_dir(tmp_path: Path, loader: Callable[[Path], object]) -> None:
    with pytest.raises(ConfigError):
        loader(tmp_path / "absent")
