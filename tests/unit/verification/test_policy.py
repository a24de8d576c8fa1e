"""Trust policy documents: decoding, every validation rule, selection, files, ``check_trust_dir``.

docs/notation.md §8 (and §14 for the deliberate deviations).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pullgate.errors import ConfigError, MalformedInput, NoApplicablePolicy, Reason
from pullgate.verification.outcome import CheckAction, CheckType, Level
from pullgate.verification.policy import (
    InvalidTrustPolicy,
    PolicyRule,
    TrustStoreRef,
    VerifyTimestamp,
    check_trust_dir,
    load_blob_policy,
    load_oci_policy,
    parse_blob_policy,
    parse_oci_policy,
)
from pullgate.verification.truststore import StoreType
from pullgate.verification.x509.identity import DnProblem
from tests.support.pki import Pki, write_store

CONFORMANCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "notation"
DIGEST = "sha256:" + "ab" * 32

Doc = dict[str, Any]


def _statement(name: str = "s", scopes: list[str] | None = None, **extra: Any) -> Doc:
    statement: Doc = {
        "name": name,
        "registryScopes": scopes if scopes is not None else ["registry.example/app"],
        "signatureVerification": {"level": "strict"},
        "trustStores": ["ca:acme"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme"],
    }
    statement.update(extra)
    return statement


def _doc(*statements: Doc) -> Doc:
    return {"version": "1.0", "trustPolicies": list(statements or [_statement()])}


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _rules(data: bytes, *, blob: bool = False) -> frozenset[PolicyRule]:
    parse = parse_blob_policy if blob else parse_oci_policy
    with pytest.raises(InvalidTrustPolicy) as info:
        parse(data)
    assert isinstance(info.value, ConfigError)
    assert info.value.reason is Reason.CONFIG
    assert len(info.value.problems) == len(info.value.issues) >= 1
    return info.value.rules


# ----------------------------------------------------------------------------- the model


def test_valid_document_builds_statements() -> None:
    policy = parse_oci_policy(
        _bytes(
            _doc(
                _statement(
                    "strict",
                    trustStores=["ca:acme", "tsa:ts", "ca:acme", "signingAuthority:sa"],
                ),
                _statement(
                    "custom",
                    scopes=["registry.example/other"],
                    signatureVerification={
                        "level": "permissive",
                        "override": {"expiry": "enforce", "revocation": "skip"},
                        "verifyTimestamp": "afterCertExpiry",
                    },
                ),
                _statement(
                    "skipped",
                    scopes=["*"],
                    signatureVerification={"level": "skip"},
                    trustStores=[],
                    trustedIdentities=[],
                ),
            )
        )
    )
    strict, custom, skipped = policy.statements
    assert strict.level is Level.STRICT
    assert set(strict.actions.values()) == {CheckAction.ENFORCE}
    assert strict.level_name == "strict"
    assert strict.verify_timestamp is VerifyTimestamp.ALWAYS
    assert strict.trust_stores == (
        TrustStoreRef(type=StoreType.CA, name="acme"),
        TrustStoreRef(type=StoreType.TSA, name="ts"),
        TrustStoreRef(type=StoreType.SIGNING_AUTHORITY, name="sa"),
    )
    assert strict.stores_of(StoreType.TSA) == (TrustStoreRef(type=StoreType.TSA, name="ts"),)
    assert strict.registry_scopes == ("registry.example/app",)
    assert strict.trusted_identities == ("x509.subject: C=US, ST=WA, O=Acme",)

    assert custom.level is Level.PERMISSIVE
    assert custom.level_name == "custom"
    assert custom.verify_timestamp is VerifyTimestamp.AFTER_CERT_EXPIRY
    assert dict(custom.actions) == {
        CheckType.INTEGRITY: CheckAction.ENFORCE,
        CheckType.AUTHENTICITY: CheckAction.ENFORCE,
        CheckType.AUTHENTIC_TIMESTAMP: CheckAction.LOG,
        CheckType.EXPIRY: CheckAction.ENFORCE,
        CheckType.REVOCATION: CheckAction.SKIP,
    }
    assert skipped.level is Level.SKIP
    assert set(skipped.actions.values()) == {CheckAction.SKIP}
    assert not skipped.global_policy


# ----------------------------------------------------------------------------- every rule

Mutation = Callable[[Doc], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(doc: Doc) -> None:
        target: Any = doc
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return apply


_DELETE = object()
_SV = "trustPolicies.0.signatureVerification"
_TP0 = "trustPolicies.0"

RULE_CASES: list[tuple[str, Mutation, PolicyRule]] = [
    ("no version", _set("version", _DELETE), PolicyRule.VERSION_MISSING),
    ("bad version", _set("version", "1.1"), PolicyRule.VERSION_UNSUPPORTED),
    ("no statements", _set("trustPolicies", []), PolicyRule.NO_STATEMENTS),
    ("null statements", _set("trustPolicies", None), PolicyRule.NO_STATEMENTS),
    ("no name", _set(f"{_TP0}.name", ""), PolicyRule.NAME_MISSING),
    ("no level", _set(f"{_SV}.level", ""), PolicyRule.LEVEL_MISSING),
    (
        "no signatureVerification",
        _set(f"{_TP0}.signatureVerification", _DELETE),
        PolicyRule.LEVEL_MISSING,
    ),
    ("bad level", _set(f"{_SV}.level", "STRICT"), PolicyRule.LEVEL_INVALID),
    (
        "override type",
        _set(f"{_SV}.override", {"plugin": "log"}),
        PolicyRule.OVERRIDE_TYPE_UNSUPPORTED,
    ),
    (
        "override action",
        _set(f"{_SV}.override", {"expiry": "warn"}),
        PolicyRule.OVERRIDE_ACTION_UNSUPPORTED,
    ),
    (
        "override integrity",
        _set(f"{_SV}.override", {"integrity": "enforce"}),
        PolicyRule.OVERRIDE_INTEGRITY,
    ),
    (
        "override skip expiry",
        _set(f"{_SV}.override", {"expiry": "skip"}),
        PolicyRule.OVERRIDE_SKIP_FORBIDDEN,
    ),
    (
        "override skip authenticity",
        _set(f"{_SV}.override", {"authenticity": "skip"}),
        PolicyRule.OVERRIDE_SKIP_FORBIDDEN,
    ),
    (
        "verifyTimestamp",
        _set(f"{_SV}.verifyTimestamp", "never"),
        PolicyRule.VERIFY_TIMESTAMP_INVALID,
    ),
    ("no stores", _set(f"{_TP0}.trustStores", []), PolicyRule.MISSING_TRUST),
    ("no identities", _set(f"{_TP0}.trustedIdentities", None), PolicyRule.MISSING_TRUST),
    ("store no colon", _set(f"{_TP0}.trustStores", ["*"]), PolicyRule.STORE_MALFORMED),
    ("null store", _set(f"{_TP0}.trustStores", [None]), PolicyRule.STORE_MALFORMED),
    ("store type", _set(f"{_TP0}.trustStores", ["x509:acme"]), PolicyRule.STORE_TYPE),
    ("store type case", _set(f"{_TP0}.trustStores", ["CA:acme"]), PolicyRule.STORE_TYPE),
    ("store empty name", _set(f"{_TP0}.trustStores", ["ca:"]), PolicyRule.STORE_NAME),
    ("store bad name", _set(f"{_TP0}.trustStores", ["ca:a/b"]), PolicyRule.STORE_NAME),
    ("store name newline", _set(f"{_TP0}.trustStores", ["ca:a\n"]), PolicyRule.STORE_NAME),
    (
        "wildcard identity mixed",
        _set(f"{_TP0}.trustedIdentities", ["*", "x509.subject: C=US, ST=WA, O=A"]),
        PolicyRule.IDENTITY_WILDCARD_MIXED,
    ),
    ("empty identity", _set(f"{_TP0}.trustedIdentities", [""]), PolicyRule.IDENTITY_EMPTY),
    (
        "identity no colon",
        _set(f"{_TP0}.trustedIdentities", ["x509.subject C=US"]),
        PolicyRule.IDENTITY_NO_SEPARATOR,
    ),
    (
        "identity no value",
        _set(f"{_TP0}.trustedIdentities", ["x509.subject:"]),
        PolicyRule.IDENTITY_NO_VALUE,
    ),
    (
        "identity bad dn",
        _set(f"{_TP0}.trustedIdentities", ["x509.subject: C=US"]),
        PolicyRule.IDENTITY_INVALID_DN,
    ),
    (
        "identity overlap",
        _set(
            f"{_TP0}.trustedIdentities",
            ["x509.subject: C=US, ST=WA, O=A", "x509.subject: C=US, ST=WA, O=A, CN=x"],
        ),
        PolicyRule.IDENTITY_OVERLAP,
    ),
    (
        "identity duplicate",
        _set(
            f"{_TP0}.trustedIdentities",
            ["x509.subject: C=US, ST=WA, O=A", "x509.subject:C=US,S=WA,O=A"],
        ),
        PolicyRule.IDENTITY_OVERLAP,
    ),
    ("no scopes", _set(f"{_TP0}.registryScopes", []), PolicyRule.SCOPES_EMPTY),
    ("scopes missing", _set(f"{_TP0}.registryScopes", _DELETE), PolicyRule.SCOPES_EMPTY),
    (
        "wildcard scope mixed",
        _set(f"{_TP0}.registryScopes", ["*", "a.io/b"]),
        PolicyRule.SCOPE_WILDCARD_MIXED,
    ),
    (
        "wildcard in scope",
        _set(f"{_TP0}.registryScopes", ["a.io/*"]),
        PolicyRule.SCOPE_WILDCARD_IN_VALUE,
    ),
    ("scope no repo", _set(f"{_TP0}.registryScopes", ["a.io"]), PolicyRule.SCOPE_INVALID),
    (
        "scope uppercase repo",
        _set(f"{_TP0}.registryScopes", ["a.io/App"]),
        PolicyRule.SCOPE_INVALID,
    ),
    ("scope with tag", _set(f"{_TP0}.registryScopes", ["a.io/app:v1"]), PolicyRule.SCOPE_INVALID),
    (
        "scope with scheme",
        _set(f"{_TP0}.registryScopes", ["https://a.io/app"]),
        PolicyRule.SCOPE_INVALID,
    ),
    (
        "scope trailing newline",
        _set(f"{_TP0}.registryScopes", ["a.io/app\n"]),
        PolicyRule.SCOPE_INVALID,
    ),
    (
        "scope backslash",
        _set(f"{_TP0}.registryScopes", ["localhost:5000\\app"]),
        PolicyRule.SCOPE_INVALID,
    ),
    (
        "scope repeated in statement",
        _set(f"{_TP0}.registryScopes", ["a.io/b", "a.io/b"]),
        PolicyRule.SCOPE_DUPLICATE,
    ),
]


@pytest.mark.parametrize(("mutate", "rule"), [pytest.param(m, r, id=i) for i, m, r in RULE_CASES])
def test_each_rule(mutate: Mutation, rule: PolicyRule) -> None:
    doc = _doc()
    mutate(doc)
    assert rule in _rules(_bytes(doc))


@pytest.mark.parametrize(
    "statements",
    [
        pytest.param([_statement("a"), _statement("a", ["b.io/x"])], id="same name"),
        pytest.param([_statement("a", ["*"]), _statement("b", ["*"])], id="two wildcards"),
        pytest.param([_statement("a", ["c.io/x"]), _statement("b", ["c.io/x"])], id="same scope"),
    ],
)
def test_document_level_duplicates(statements: list[Doc]) -> None:
    rules = _rules(_bytes(_doc(*statements)))
    assert rules & {PolicyRule.NAME_DUPLICATE, PolicyRule.SCOPE_DUPLICATE}


def test_skip_rules() -> None:
    with_stores = _statement(signatureVerification={"level": "skip"})
    assert PolicyRule.SKIP_WITH_TRUST in _rules(_bytes(_doc(with_stores)))
    with_override = _statement(
        signatureVerification={"level": "skip", "override": {"revocation": "log"}},
        trustStores=[],
        trustedIdentities=[],
    )
    assert _rules(_bytes(_doc(with_override))) == {PolicyRule.OVERRIDE_WITH_SKIP}


def test_skip_with_global_scope_is_accepted() -> None:
    # §8.2 deviation kept: notation accepts skip + "*".
    skip = _statement(
        scopes=["*"], signatureVerification={"level": "skip"}, trustStores=[], trustedIdentities=[]
    )
    assert parse_oci_policy(_bytes(_doc(skip))).statements[0].level is Level.SKIP


def test_every_problem_is_reported_at_once() -> None:
    doc = {
        "version": "2.0",
        "trustPolicies": [
            _statement("a", ["bad scope"], trustStores=["nope"]),
            _statement("b", ["x.io/y"], signatureVerification={"level": "paranoid"}),
            _statement("b", ["x.io/y"], trustedIdentities=["x509.subject: O=only"]),
        ],
    }
    with pytest.raises(InvalidTrustPolicy) as info:
        parse_oci_policy(_bytes(doc), source="/etc/notation/trustpolicy.oci.json")
    assert info.value.rules == {
        PolicyRule.VERSION_UNSUPPORTED,
        PolicyRule.SCOPE_INVALID,
        PolicyRule.STORE_MALFORMED,
        PolicyRule.LEVEL_INVALID,
        PolicyRule.NAME_DUPLICATE,
        PolicyRule.IDENTITY_INVALID_DN,
        PolicyRule.SCOPE_DUPLICATE,
    }
    assert all(p.startswith("/etc/notation/trustpolicy.oci.json: ") for p in info.value.problems)
    by_rule = {issue.rule: issue for issue in info.value.issues}
    assert by_rule[PolicyRule.STORE_MALFORMED].statement == "a"
    assert by_rule[PolicyRule.IDENTITY_INVALID_DN].dn_problem is DnProblem.MISSING_MANDATORY
    assert by_rule[PolicyRule.SCOPE_DUPLICATE].value == "x.io/y"


def test_unknown_identity_prefix_passes_validation() -> None:
    doc = _doc(_statement(trustedIdentities=["x509.sans: foo", "x509.subject : not parsed"]))
    assert parse_oci_policy(_bytes(doc)).statements[0].trusted_identities[0] == "x509.sans: foo"


@pytest.mark.parametrize(
    "scope",
    [
        "localhost:5000/app",
        "a.b-c.io/x/y/z",
        "local/myocilayout",
        "REGISTRY.io/x",
        "r.io/a__b",
        "r.io/a---b.c_d",
        "127.0.0.1:5000/x",
    ],
)
def test_valid_scopes(scope: str) -> None:
    policy = parse_oci_policy(_bytes(_doc(_statement(scopes=[scope]))))
    assert policy.select(f"{scope}@{DIGEST}").name == "s"


# ----------------------------------------------------------------------------- Go-lenient JSON


def test_unknown_fields_and_key_case_are_tolerated() -> None:
    doc = {
        "VERSION": "1.0",
        "comment": {"anything": [1, 2, 3]},
        "trustpolicies": [
            {
                "NAME": "s",
                "registryscopes": ["r.io/x"],
                "SignatureVerification": {"LEVEL": "audit", "extra": True},
                "truststores": ["ca:acme"],
                "TrustedIdentities": ["*"],
                "globalPolicy": "ignored for oci",
            }
        ],
    }
    statement = parse_oci_policy(_bytes(doc)).statements[0]
    assert statement.level is Level.AUDIT
    assert statement.registry_scopes == ("r.io/x",)


def test_last_duplicate_key_wins_and_override_maps_merge() -> None:
    raw = (
        b'{"version":"0.9","version":"1.0","trustPolicies":[{"name":"s",'
        b'"registryScopes":["r.io/x"],"trustStores":["ca:a"],"trustedIdentities":["*"],'
        b'"signatureVerification":{"level":"strict","override":{"expiry":"log"},'
        b'"override":{"revocation":"log"}}}]} trailing bytes are never read'
    )
    statement = parse_oci_policy(raw).statements[0]
    assert statement.actions[CheckType.EXPIRY] is CheckAction.LOG
    assert statement.actions[CheckType.REVOCATION] is CheckAction.LOG


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"[]",
        b'"1.0"',
        b"\xef\xbb\xbf{}",
        b'{"version": 1.0}',
        b'{"version": "1.0", "trustPolicies": {}}',
        b'{"version": "1.0", "trustPolicies": ["x"]}',
        b'{"version": "1.0", "trustPolicies": [{"name": 5}]}',
        b'{"version": "1.0", "trustPolicies": [{"trustStores": "ca:a"}]}',
        b'{"version": "1.0", "trustPolicies": [{"signatureVerification": []}]}',
        b'{"version": "1.0", "trustPolicies": [{"signatureVerification": {"override": 1}}]}',
        b'{"version": NaN}',
        b'{"version": "1.0",',
        b"[" * 100_000,
    ],
)
def test_malformed_json(raw: bytes) -> None:
    assert _rules(raw) == {PolicyRule.MALFORMED}


def test_null_top_level_is_an_empty_document() -> None:
    assert _rules(b"null") == {PolicyRule.VERSION_MISSING, PolicyRule.NO_STATEMENTS}


def test_blob_global_policy_must_be_boolean() -> None:
    doc = _doc(_statement(globalPolicy="yes"))
    assert _rules(_bytes(doc), blob=True) == {PolicyRule.MALFORMED}


# ----------------------------------------------------------------------------- OCI selection


def _selection_policy() -> Any:
    return parse_oci_policy(
        _bytes(
            _doc(
                _statement("exact", ["r.io/app", "localhost:5000/app"]),
                _statement("wild", ["*"]),
            )
        )
    )


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (f"r.io/app@{DIGEST}", "exact"),
        (f"localhost:5000/app@{DIGEST}", "exact"),
        (f"r.io/other@{DIGEST}", "wild"),
        (f"R.io/app@{DIGEST}", "wild"),  # case-sensitive, no normalization
        (f"docker.io/library/app@{DIGEST}", "wild"),
    ],
)
def test_select(reference: str, expected: str) -> None:
    assert _selection_policy().select(reference).name == expected


def test_select_without_wildcard() -> None:
    policy = parse_oci_policy(_bytes(_doc(_statement("only", ["r.io/app"]))))
    with pytest.raises(NoApplicablePolicy) as info:
        policy.select(f"r.io/other@{DIGEST}")
    assert info.value.reason is Reason.NO_POLICY


@pytest.mark.parametrize(
    "reference",
    ["r.io/app:v1", "r.io/app", f"app@{DIGEST}", f"r.io/App@{DIGEST}", f"r.io/a@b@{DIGEST}", ""],
)
def test_select_rejects_unparsable_references(reference: str) -> None:
    with pytest.raises(MalformedInput) as info:
        _selection_policy().select(reference)
    assert info.value.reason is Reason.MALFORMED


# ----------------------------------------------------------------------------- blob policies


def _blob(*statements: Doc) -> Doc:
    for statement in statements:
        statement.pop("registryScopes", None)
    return _doc(*statements)


def test_blob_selection() -> None:
    policy = parse_blob_policy(
        _bytes(_blob(_statement("named"), _statement("global", globalPolicy=True)))
    )
    assert policy.select("named").name == "named"
    assert policy.select(None).name == "global"
    assert policy.select(None).global_policy
    with pytest.raises(NoApplicablePolicy):
        policy.select("missing")
    with pytest.raises(NoApplicablePolicy):
        policy.select("  ")
    no_global = parse_blob_policy(_bytes(_blob(_statement("named"))))
    with pytest.raises(NoApplicablePolicy):
        no_global.select(None)


def test_blob_ignores_registry_scopes() -> None:
    doc = _doc(_statement("s", scopes=["not a scope"]))
    assert parse_blob_policy(_bytes(doc)).statements[0].registry_scopes == ()


def test_blob_rules() -> None:
    two_globals = _blob(_statement("a", globalPolicy=True), _statement("b", globalPolicy=True))
    assert _rules(_bytes(two_globals), blob=True) == {PolicyRule.BLOB_GLOBAL_DUPLICATE}
    # Decision: the spec's "global blob policy must not be skip" is enforced (notation's check
    # never fires; see policy.py module docstring).
    global_skip = _blob(
        _statement(
            "g",
            globalPolicy=True,
            signatureVerification={"level": "skip"},
            trustStores=[],
            trustedIdentities=[],
        )
    )
    assert _rules(_bytes(global_skip), blob=True) == {PolicyRule.BLOB_GLOBAL_SKIP}
    named_skip = copy.deepcopy(global_skip)
    named_skip["trustPolicies"][0]["globalPolicy"] = False
    assert parse_blob_policy(_bytes(named_skip)).statements[0].level is Level.SKIP
    bad = _blob(_statement("a", trustStores=["ca"]))
    assert _rules(_bytes(bad), blob=True) == {PolicyRule.STORE_MALFORMED}


# ----------------------------------------------------------------------------- files


def _write_policy(trust_dir: Path, name: str, doc: Any) -> Path:
    trust_dir.mkdir(parents=True, exist_ok=True)
    path = trust_dir / name
    path.write_bytes(doc if isinstance(doc, bytes) else _bytes(doc))
    return path


def _load_rule(trust_dir: Path, *, blob: bool = False, allow: bool = False) -> PolicyRule:
    loader = load_blob_policy if blob else load_oci_policy
    with pytest.raises(InvalidTrustPolicy) as info:
        loader(trust_dir, allow_symlinks=allow)
    (rule,) = info.value.rules
    return rule


def test_oci_file_precedence(tmp_path: Path) -> None:
    _write_policy(tmp_path, "trustpolicy.json", _doc(_statement("legacy")))
    assert load_oci_policy(tmp_path).statements[0].name == "legacy"
    _write_policy(tmp_path, "trustpolicy.oci.json", _doc(_statement("current")))
    policy = load_oci_policy(tmp_path)
    assert policy.statements[0].name == "current"
    assert policy.source == str(tmp_path / "trustpolicy.oci.json")


def test_no_fallback_when_oci_file_is_broken(tmp_path: Path) -> None:
    _write_policy(tmp_path, "trustpolicy.json", _doc(_statement("legacy")))
    _write_policy(tmp_path, "trustpolicy.oci.json", b"{")
    assert _load_rule(tmp_path) is PolicyRule.MALFORMED
    (tmp_path / "trustpolicy.oci.json").unlink()
    (tmp_path / "trustpolicy.oci.json").mkdir()
    assert _load_rule(tmp_path) is PolicyRule.FILE_NOT_REGULAR


def test_missing_policy_files(tmp_path: Path) -> None:
    assert _load_rule(tmp_path) is PolicyRule.FILE_MISSING
    assert _load_rule(tmp_path, blob=True) is PolicyRule.FILE_MISSING


def test_symlinked_policy(tmp_path: Path) -> None:
    real = _write_policy(tmp_path / "..data", "trustpolicy.oci.json", _doc())
    os.symlink(real, tmp_path / "trustpolicy.oci.json")
    _write_policy(tmp_path, "trustpolicy.json", _doc(_statement("legacy")))
    assert _load_rule(tmp_path) is PolicyRule.FILE_NOT_REGULAR  # no fallback either
    assert load_oci_policy(tmp_path, allow_symlinks=True).statements[0].name == "s"


def test_symlinked_policy_outside_trust_dir(tmp_path: Path) -> None:
    real = _write_policy(tmp_path / "outside", "p.json", _blob(_statement()))
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    os.symlink(real, trust_dir / "trustpolicy.blob.json")
    assert _load_rule(trust_dir, blob=True, allow=True) is PolicyRule.FILE_NOT_REGULAR
    os.symlink(trust_dir / "dangling", trust_dir / "trustpolicy.oci.json")
    assert _load_rule(trust_dir, allow=True) is PolicyRule.FILE_NOT_REGULAR


def test_blob_file(tmp_path: Path) -> None:
    _write_policy(tmp_path, "trustpolicy.blob.json", _blob(_statement("b")))
    assert load_blob_policy(tmp_path).select("b").name == "b"


# ----------------------------------------------------------------------------- check_trust_dir


def test_check_trust_dir_ok(tmp_path: Path) -> None:
    write_store(tmp_path, "ca", "acme", [Pki().chain().root.cert])
    _write_policy(tmp_path, "trustpolicy.oci.json", _doc())
    assert check_trust_dir(tmp_path) == []


def test_check_trust_dir_reports_everything(tmp_path: Path) -> None:
    write_store(tmp_path, "ca", "acme", [Pki().chain().root.cert])
    write_store(tmp_path, "ca", "unused", [Pki().chain().root.cert])
    leafy = Pki().chain()
    write_store(tmp_path, "ca", "leafy", [leafy.leaf.cert])
    _write_policy(
        tmp_path,
        "trustpolicy.oci.json",
        _doc(
            _statement("a", ["not valid"], trustStores=["ca:acme", "ca:missing"]),
            _statement("b", ["r.io/b"], trustStores=["ca:leafy", "ca:missing"]),
            _statement(
                "c",
                ["*"],
                signatureVerification={"level": "skip"},
                trustStores=[],
                trustedIdentities=[],
            ),
        ),
    )
    _write_policy(tmp_path, "trustpolicy.blob.json", _blob(_statement("x", trustStores=["tsa:t"])))
    problems = check_trust_dir(tmp_path)
    assert len(problems) == 4  # bad scope, ca:missing (once), ca:leafy, tsa:t
    assert sum("missing" in p for p in problems) == 1
    assert not any(p.startswith("warning:") for p in problems)
    with_warnings = check_trust_dir(tmp_path, include_warnings=True)
    warnings = [p for p in with_warnings if p.startswith("warning:")]
    assert len(warnings) == 2  # "c" skips; ca:unused is not referenced
    assert with_warnings[: len(problems)] == problems


def test_check_trust_dir_missing_things(tmp_path: Path) -> None:
    assert len(check_trust_dir(tmp_path / "absent")) == 1
    assert len(check_trust_dir(tmp_path)) == 1  # no OCI policy
    _write_policy(tmp_path, "trustpolicy.oci.json", b"not json")
    assert len(check_trust_dir(tmp_path)) == 1


def test_check_trust_dir_symlinked_configmap(tmp_path: Path) -> None:
    data = tmp_path / "..2026_11_23"
    write_store(data, "ca", "acme", [Pki().chain().root.cert])
    _write_policy(data, "trustpolicy.oci.json", _doc())
    os.symlink(data.name, tmp_path / "..data")
    os.symlink("..data/truststore", tmp_path / "truststore")
    os.symlink("..data/trustpolicy.oci.json", tmp_path / "trustpolicy.oci.json")
    assert len(check_trust_dir(tmp_path)) == 1  # the policy file is a symlink
    assert check_trust_dir(tmp_path, allow_symlinks=True) == []


# ----------------------------------------------------------------------------- conformance


def _policy_cases() -> list[Any]:
    path = CONFORMANCE / "cases.json"
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} is absent"))]
    cases = json.loads(path.read_text())["cases"]
    return [pytest.param(c, id=c["id"]) for c in cases if c.get("layer") == "policy"]


# The rule each invalid conformance document must trip (typed, instead of message text).
EXPECTED_RULE = {
    "pol-empty-scope": PolicyRule.SCOPES_EMPTY,
    "pol-malformed-scope": PolicyRule.SCOPE_INVALID,
    "pol-overlapped-scope-same-statement": PolicyRule.SCOPE_DUPLICATE,
    "pol-wildcard-plus-other-scope": PolicyRule.SCOPE_WILDCARD_MIXED,
    "pol-same-scope-two-statements": PolicyRule.SCOPE_DUPLICATE,
    "pol-two-wildcards": PolicyRule.SCOPE_DUPLICATE,
    "pol-same-name": PolicyRule.NAME_DUPLICATE,
    "pol-unset-store": PolicyRule.MISSING_TRUST,
    "pol-unset-identity": PolicyRule.MISSING_TRUST,
    "pol-malformed-store": PolicyRule.STORE_NAME,
    "pol-wildcard-store": PolicyRule.STORE_MALFORMED,
    "pol-empty-identity": PolicyRule.IDENTITY_EMPTY,
    "pol-identity-no-separator": PolicyRule.IDENTITY_NO_SEPARATOR,
    "pol-overlapping-identities": PolicyRule.IDENTITY_OVERLAP,
    "pol-wildcard-plus-identity": PolicyRule.IDENTITY_WILDCARD_MIXED,
    "pol-dn-missing-O": PolicyRule.IDENTITY_INVALID_DN,
    "pol-dn-missing-ST": PolicyRule.IDENTITY_INVALID_DN,
    "pol-dn-missing-C": PolicyRule.IDENTITY_INVALID_DN,
    "pol-override-integrity": PolicyRule.OVERRIDE_INTEGRITY,
    "pol-invalid-json": PolicyRule.MALFORMED,
    "pol-scope-with-wildcard-suffix": PolicyRule.SCOPE_WILDCARD_IN_VALUE,
    "pol-lowercase-dn-attr": PolicyRule.IDENTITY_INVALID_DN,
    "pol-override-skip-expiry": PolicyRule.OVERRIDE_SKIP_FORBIDDEN,
    "pol-skip-with-override": PolicyRule.OVERRIDE_WITH_SKIP,
    "pol-skip-with-stores": PolicyRule.SKIP_WITH_TRUST,
    "pol-bad-version": PolicyRule.VERSION_UNSUPPORTED,
    "pol-bad-verifytimestamp": PolicyRule.VERIFY_TIMESTAMP_INVALID,
    "pol-blob-global-skip": PolicyRule.BLOB_GLOBAL_SKIP,  # our decision: the spec's rule
}


@pytest.mark.conformance
@pytest.mark.parametrize("case", _policy_cases())
def test_conformance_policy(case: dict[str, Any]) -> None:
    inputs, expect = case["inputs"], case["expect"]
    data = (CONFORMANCE / inputs["trust_policy"]).read_bytes()
    parse = parse_blob_policy if inputs["kind"] == "blob" else parse_oci_policy
    verdict = expect["verdict"]
    if case["id"] == "pol-blob-global-skip":
        verdict = "invalid"  # "valid (notation bug) / invalid (spec)": we follow the spec
    if verdict == "invalid":
        with pytest.raises(InvalidTrustPolicy) as info:
            parse(data)
        assert EXPECTED_RULE[case["id"]] in info.value.rules
        return
    assert verdict == "valid"
    policy = parse(data)
    assert policy.statements
    reference = inputs.get("artifact_reference")
    if reference is None:
        return
    oci = parse_oci_policy(data)
    if "selected_statement" in expect:
        assert oci.select(reference).name == expect["selected_statement"]
    else:
        with pytest.raises(NoApplicablePolicy):
            oci.select(reference)


def test_registry_spellings_cannot_dodge_a_strict_scope() -> None:
    from pullgate.registry.reference import parse_reference

    doc = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "strict-app",
                "registryScopes": ["registry.example.com/app"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:acme"],
                "trustedIdentities": ["*"],
            },
            {"name": "rest", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}},
        ],
    }
    policy = parse_oci_policy(json.dumps(doc).encode())
    digest = "sha256:" + "b" * 64
    for spelling in ("REGISTRY.example.com/app", "registry.example.com:443/app"):
        ref = parse_reference(f"{spelling}@{digest}")
        assert policy.select(f"{ref.policy_locator}@{digest}").name == "strict-app"
