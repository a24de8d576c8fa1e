"""Named trust stores (docs/notation.md §7)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pullgate.errors import ConfigError, Reason
from pullgate.verification.truststore import (
    StoreProblem,
    StoreType,
    TrustStore,
    TrustStoreError,
    TrustStoreRef,
    parse_certificates,
)
from tests.support.pki import (
    CertSpec,
    Pki,
    ca_spec,
    eku_relabelled_as_key_usage,
    issue,
    reissue_edited,
    write_store,
)

CONFORMANCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "notation"


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _der(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)


def _store_dir(trust_dir: Path, store_type: str, name: str) -> Path:
    path = trust_dir / "truststore" / "x509" / store_type / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _problem(store: TrustStore, store_type: StoreType, name: str) -> StoreProblem:
    with pytest.raises(TrustStoreError) as info:
        store.load(store_type, name)
    assert isinstance(info.value, ConfigError)
    assert info.value.reason is Reason.CONFIG
    assert info.value.store_type is store_type
    assert info.value.name == name
    return info.value.problem


# ----------------------------------------------------------------------------- happy paths


def test_loads_root_and_caches(tmp_path: Path) -> None:
    chain = Pki().chain()
    write_store(tmp_path, "ca", "acme", [chain.root.cert])
    store = TrustStore(tmp_path)
    first = store.load(StoreType.CA, "acme")
    assert first == (chain.root.cert,)
    (tmp_path / "truststore" / "x509" / "ca" / "acme" / "cert0.pem").unlink()
    assert store.load(StoreType.CA, "acme") is first  # cached per instance
    assert _problem(TrustStore(tmp_path), StoreType.CA, "acme") is StoreProblem.EMPTY


def test_intermediate_and_self_signed_leaf_are_allowed_in_ca(tmp_path: Path) -> None:
    chain = Pki().chain()
    self_signed = Pki().chain(depth=1).leaf.cert
    write_store(tmp_path, "ca", "pin", [chain.certs[1].cert, self_signed])
    assert len(TrustStore(tmp_path).load(StoreType.CA, "pin")) == 2


def test_formats_pem_bundle_der_and_concatenated_der(tmp_path: Path) -> None:
    chain = Pki().chain()
    root, mid = chain.root.cert, chain.certs[1].cert
    store = _store_dir(tmp_path, "signingAuthority", "mixed")
    (store / "bundle.pem").write_bytes(b"comment line\n" + _pem(root, mid) + b"trailer\n")
    (store / "one.der").write_bytes(_der(root))
    (store / "two.cer").write_bytes(_der(mid, root))
    certs = TrustStore(tmp_path).load(StoreType.SIGNING_AUTHORITY, "mixed")
    assert certs == (root, mid, root, mid, root)  # files in name order


def test_non_certificate_pem_blocks_are_ignored(tmp_path: Path) -> None:
    chain = Pki().chain()
    store = _store_dir(tmp_path, "ca", "withkey")
    (store / "root.pem").write_bytes(chain.root.key_pem() + _pem(chain.root.cert))
    assert TrustStore(tmp_path).load(StoreType.CA, "withkey") == (chain.root.cert,)


def test_load_many_loads_each_ref_once(tmp_path: Path) -> None:
    a, b = Pki("a").chain(), Pki("b").chain(root=ca_spec("b root"))
    write_store(tmp_path, "ca", "a", [a.root.cert])
    write_store(tmp_path, "ca", "b", [b.root.cert])
    store = TrustStore(tmp_path)
    refs = [
        TrustStoreRef(type=StoreType.CA, name="a"),
        TrustStoreRef(type=StoreType.CA, name="b"),
        TrustStoreRef(type=StoreType.CA, name="a"),
    ]
    assert store.load_many(refs) == (a.root.cert, b.root.cert)
    assert store.load_many([]) == ()


def test_list_stores(tmp_path: Path) -> None:
    root = Pki().chain().root.cert
    write_store(tmp_path, "ca", "x", [root])
    write_store(tmp_path, "tsa", "t", [root])
    (tmp_path / "truststore" / "x509" / "ca" / "stray-file").write_bytes(b"")
    assert TrustStore(tmp_path).list_stores() == [(StoreType.CA, "x"), (StoreType.TSA, "t")]
    assert TrustStore(tmp_path / "nowhere").list_stores() == []


def test_concurrent_loads_share_one_result(tmp_path: Path) -> None:
    write_store(tmp_path, "ca", "c", [Pki().chain().root.cert])
    store = TrustStore(tmp_path)
    results: list[tuple[x509.Certificate, ...]] = []
    lock = threading.Lock()

    def worker() -> None:
        got = store.load(StoreType.CA, "c")
        with lock:
            results.append(got)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    assert all(r is results[0] for r in results)


# ----------------------------------------------------------------------------- rule violations


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "a b", "ü", "a:b", "a\n"])
def test_invalid_store_names(tmp_path: Path, name: str) -> None:
    write_store(tmp_path, "ca", "real", [Pki().chain().root.cert])
    assert _problem(TrustStore(tmp_path), StoreType.CA, name) is StoreProblem.INVALID_NAME


def test_unknown_store_type(tmp_path: Path) -> None:
    with pytest.raises(TrustStoreError) as info:
        TrustStore(tmp_path).load("x509", "acme")  # type: ignore[arg-type]
    assert info.value.problem is StoreProblem.INVALID_TYPE
    assert TrustStore(tmp_path).load_many([]) == ()


def test_store_type_given_as_string(tmp_path: Path) -> None:
    root = Pki().chain().root.cert
    write_store(tmp_path, "signingAuthority", "sa", [root])
    assert TrustStore(tmp_path).load("signingAuthority", "sa") == (root,)  # type: ignore[arg-type]


def test_missing_store(tmp_path: Path) -> None:
    assert _problem(TrustStore(tmp_path), StoreType.CA, "nope") is StoreProblem.NOT_FOUND


def test_store_that_is_a_file(tmp_path: Path) -> None:
    base = tmp_path / "truststore" / "x509" / "ca"
    base.mkdir(parents=True)
    (base / "file").write_bytes(_pem(Pki().chain().root.cert))
    assert _problem(TrustStore(tmp_path), StoreType.CA, "file") is StoreProblem.NOT_DIRECTORY


def test_empty_store(tmp_path: Path) -> None:
    _store_dir(tmp_path, "ca", "empty")
    assert _problem(TrustStore(tmp_path), StoreType.CA, "empty") is StoreProblem.EMPTY


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"invalid\n",
        b"\x30\x03\x02\x01",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_unparsable_certificate_files(tmp_path: Path, content: bytes) -> None:
    store = _store_dir(tmp_path, "ca", "bad")
    (store / "root.pem").write_bytes(_pem(Pki().chain().root.cert))
    (store / "zz-bad.crt").write_bytes(content)
    assert _problem(TrustStore(tmp_path), StoreType.CA, "bad") is StoreProblem.BAD_CERTIFICATE


@pytest.mark.parametrize("store_type", ["ca", "signingAuthority", "tsa"])
@pytest.mark.parametrize("keep_key_usage", [True, False], ids=["duplicate", "malformed"])
def test_certificate_with_unreadable_extensions_is_a_bad_certificate(
    tmp_path: Path, store_type: str, keep_key_usage: bool
) -> None:
    # cryptography parses extensions lazily: such a root loads, then fails when first read. It
    # must be refused with its store (a typed problem), not crash policy checks or reloads.
    spec = ca_spec("hostile root").replace(eku=(ExtendedKeyUsageOID.CODE_SIGNING,))
    if not keep_key_usage:
        spec = spec.replace(key_usage=None)
    hostile = reissue_edited(issue(spec), None, eku_relabelled_as_key_usage)
    store = _store_dir(tmp_path, store_type, "bad")
    (store / "root.pem").write_bytes(_pem(hostile.cert))
    assert _problem(TrustStore(tmp_path), StoreType(store_type), "bad") is (
        StoreProblem.BAD_CERTIFICATE
    )


def test_certificate_with_unknown_version_is_a_bad_certificate(tmp_path: Path) -> None:
    # cryptography raises x509.InvalidVersion (not a ValueError) for a version other than v1/v3.
    der = Pki().chain().root.der
    assert der[8:13] == b"\xa0\x03\x02\x01\x02"  # SEQUENCE, SEQUENCE, [0] version v3
    store = _store_dir(tmp_path, "ca", "bad")
    (store / "root.der").write_bytes(der[:8] + b"\xa0\x03\x02\x01\x05" + der[13:])
    assert _problem(TrustStore(tmp_path), StoreType.CA, "bad") is StoreProblem.BAD_CERTIFICATE


def test_leaf_issued_by_ca_is_rejected(tmp_path: Path) -> None:
    chain = Pki().chain()
    write_store(tmp_path, "ca", "leafy", [chain.root.cert, chain.leaf.cert])
    problem = _problem(TrustStore(tmp_path), StoreType.CA, "leafy")
    assert problem is StoreProblem.NOT_CA_OR_SELF_SIGNED


def test_subdirectory_is_an_error_even_with_symlinks_allowed(tmp_path: Path) -> None:
    store = write_store(tmp_path, "ca", "withdir", [Pki().chain().root.cert])
    (store / "sub-dir").mkdir()
    assert _problem(TrustStore(tmp_path), StoreType.CA, "withdir") is StoreProblem.ENTRY_NOT_REGULAR
    relaxed = TrustStore(tmp_path, allow_symlinks=True)
    assert _problem(relaxed, StoreType.CA, "withdir") is StoreProblem.ENTRY_NOT_REGULAR


# ----------------------------------------------------------------------------- symlinks


def test_symlinked_certificate(tmp_path: Path) -> None:
    root = Pki().chain().root.cert
    store = write_store(tmp_path, "ca", "links", [root])
    os.symlink(store / "cert0.pem", store / "link.pem")
    assert _problem(TrustStore(tmp_path), StoreType.CA, "links") is StoreProblem.ENTRY_NOT_REGULAR
    assert TrustStore(tmp_path, allow_symlinks=True).load(StoreType.CA, "links") == (root, root)


def test_symlinked_store_directory(tmp_path: Path) -> None:
    root = Pki().chain().root.cert
    real = write_store(tmp_path, "ca", "real", [root])
    os.symlink(real, real.parent / "alias")
    assert _problem(TrustStore(tmp_path), StoreType.CA, "alias") is StoreProblem.NOT_DIRECTORY
    assert TrustStore(tmp_path, allow_symlinks=True).load(StoreType.CA, "alias") == (root,)


def test_symlink_leaving_trust_dir_is_rejected(tmp_path: Path) -> None:
    root = Pki().chain().root.cert
    outside = write_store(tmp_path / "elsewhere", "ca", "x", [root])
    trust_dir = tmp_path / "trust"
    base = trust_dir / "truststore" / "x509" / "ca"
    base.mkdir(parents=True)
    os.symlink(outside, base / "escape")
    store = _store_dir(trust_dir, "ca", "file-escape")
    os.symlink(outside / "cert0.pem", store / "root.pem")
    relaxed = TrustStore(trust_dir, allow_symlinks=True)
    assert _problem(relaxed, StoreType.CA, "escape") is StoreProblem.OUTSIDE_TRUST_DIR
    assert _problem(TrustStore(trust_dir), StoreType.CA, "escape") is StoreProblem.NOT_DIRECTORY
    assert _problem(relaxed, StoreType.CA, "file-escape") is StoreProblem.OUTSIDE_TRUST_DIR


def test_symlinked_ancestor_leaving_trust_dir(tmp_path: Path) -> None:
    root = Pki().chain().root.cert
    outside = tmp_path / "elsewhere"
    write_store(outside, "ca", "x", [root])
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    os.symlink(outside / "truststore", trust_dir / "truststore")
    # notation only looks at the last path component: the store itself is a real directory
    assert TrustStore(trust_dir).load(StoreType.CA, "x") == (root,)
    relaxed = TrustStore(trust_dir, allow_symlinks=True)
    assert _problem(relaxed, StoreType.CA, "x") is StoreProblem.OUTSIDE_TRUST_DIR


def test_configmap_style_mount(tmp_path: Path) -> None:
    """A kubelet atomic-writer volume mounted as the store: ..data -> ..<timestamp>/, links."""
    root = Pki().chain().root.cert
    store = _store_dir(tmp_path, "ca", "cm")
    stamp = store / "..2026_11_23_00_00_00.000000001"
    stamp.mkdir()
    (stamp / "root.pem").write_bytes(_pem(root))
    os.symlink(stamp.name, store / "..data")
    os.symlink("..data/root.pem", store / "root.pem")
    assert _problem(TrustStore(tmp_path), StoreType.CA, "cm") is StoreProblem.ENTRY_NOT_REGULAR
    assert TrustStore(tmp_path, allow_symlinks=True).load(StoreType.CA, "cm") == (root,)


# ----------------------------------------------------------------------------- tsa stores


def test_tsa_root_is_accepted(tmp_path: Path) -> None:
    tsa = Pki().tsa_chain()
    write_store(tmp_path, "tsa", "ts", [tsa.root.cert])
    assert TrustStore(tmp_path).load(StoreType.TSA, "ts") == (tsa.root.cert,)


def test_tsa_store_rejects_intermediate(tmp_path: Path) -> None:
    chain = Pki().chain()
    write_store(tmp_path, "tsa", "mid", [chain.certs[1].cert])
    assert _problem(TrustStore(tmp_path), StoreType.TSA, "mid") is StoreProblem.TSA_NOT_ROOT
    # the same certificate is fine as a ca anchor
    write_store(tmp_path, "ca", "mid", [chain.certs[1].cert])
    assert TrustStore(tmp_path).load(StoreType.CA, "mid")


def test_tsa_store_rejects_self_signed_non_ca(tmp_path: Path) -> None:
    leaf = Pki().chain(depth=1).leaf.cert
    write_store(tmp_path, "tsa", "leaf", [leaf])
    assert _problem(TrustStore(tmp_path), StoreType.TSA, "leaf") is StoreProblem.TSA_NOT_ROOT


def test_tsa_store_rejects_root_without_cert_sign(tmp_path: Path) -> None:
    spec = ca_spec("no certsign").replace(key_usage=frozenset({"crl_sign"}))
    cert = issue(spec).cert
    write_store(tmp_path, "tsa", "nosign", [cert])
    assert _problem(TrustStore(tmp_path), StoreType.TSA, "nosign") is StoreProblem.TSA_NOT_ROOT


def test_tsa_store_rejects_root_without_basic_constraints(tmp_path: Path) -> None:
    cert = issue(CertSpec(ca=None, key_usage=None, eku=None)).cert
    write_store(tmp_path, "ca", "nobc", [cert])
    assert TrustStore(tmp_path).load(StoreType.CA, "nobc")  # self-signed: fine as ca
    write_store(tmp_path, "tsa", "nobc", [cert])
    assert _problem(TrustStore(tmp_path), StoreType.TSA, "nobc") is StoreProblem.TSA_NOT_ROOT


def test_parse_certificates_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_certificates(b"")


# ----------------------------------------------------------------------------- conformance


def _truststore_cases() -> list[Any]:
    path = CONFORMANCE / "cases.json"
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} is absent"))]
    cases = json.loads(path.read_text())["cases"]
    return [pytest.param(c, id=c["id"]) for c in cases if c.get("layer") == "truststore"]


_EXPECTED_PROBLEM = {
    "store-ca-trust-store-with-invalid-certs": StoreProblem.BAD_CERTIFICATE,
    "store-ca-trust-store-with-leaf-certs": StoreProblem.NOT_CA_OR_SELF_SIGNED,
    "store-ca-trust-store-with-leaf-certs-in-single-file": StoreProblem.NOT_CA_OR_SELF_SIGNED,
    "store-tsa-test-nonCA": StoreProblem.TSA_NOT_ROOT,
    "store-tsa-test-nonSelfIssued": StoreProblem.TSA_NOT_ROOT,
    "store-ca-does-not-exist": StoreProblem.NOT_FOUND,
}


@pytest.mark.conformance
@pytest.mark.parametrize("case", _truststore_cases())
def test_conformance_truststore(case: dict[str, Any]) -> None:
    inputs = case["inputs"]
    store = TrustStore(CONFORMANCE / inputs["notation_config"])
    store_type = StoreType(inputs["store_type"])
    if case["expect"]["verdict"] == "ok":
        assert store.load(store_type, inputs["store_name"])
    else:
        problem = _problem(store, store_type, inputs["store_name"])
        assert problem is _EXPECTED_PROBLEM[case["id"]]
