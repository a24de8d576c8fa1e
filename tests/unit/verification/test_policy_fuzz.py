"""Property tests: any input yields a valid policy or a ConfigError, never another exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pullgate.errors import ConfigError, PullgateError
from pullgate.verification.policy import (
    BlobTrustPolicy,
    OciTrustPolicy,
    parse_blob_policy,
    parse_oci_policy,
)
from pullgate.verification.x509.identity import InvalidDistinguishedName, parse_dn

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, Any] = {
    "version": "1.0",
    "trustPolicies": [
        {
            "name": "strict",
            "registryScopes": ["registry.example/app", "localhost:5000/x"],
            "signatureVerification": {
                "level": "strict",
                "override": {"revocation": "log"},
                "verifyTimestamp": "afterCertExpiry",
            },
            "trustStores": ["ca:acme", "tsa:ts"],
            "trustedIdentities": ["x509.subject: C=US, ST=WA, O=Acme, CN=signer"],
            "globalPolicy": True,
        },
        {
            "name": "any",
            "registryScopes": ["*"],
            "signatureVerification": {"level": "audit"},
            "trustStores": ["signingAuthority:sa"],
            "trustedIdentities": ["*"],
        },
    ],
}

# Values that exercise the validators: near-miss enums, scopes, stores, DNs, odd types.
_INTERESTING = st.sampled_from(
    [
        "",
        "*",
        "1.0",
        "2.0",
        "skip",
        "strict",
        "permissive",
        "custom",
        "integrity",
        "expiry",
        "revocation",
        "enforce",
        "log",
        "always",
        "never",
        "ca:",
        "ca:a",
        "tsa:../x",
        "x509.subject:",
        "x509.subject: C=US, ST=WA, O=A",
        "x509.subject: C=US+ST=WA, O=A",
        "x509.subject: C=US, ST=WA, O=#00",
        "x509.subject: C=US, ST=WA, O=\\",
        "r.io/a",
        "r.io/*",
        "R.IO:99/a/b__c",
        "a\n",
        "\ud800",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    _INTERESTING,
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), _INTERESTING), children, max_size=4),
    ),
    max_leaves=20,
)


def _check(data: bytes) -> None:
    for parse in (parse_oci_policy, parse_blob_policy):
        try:
            policy = parse(data)
        except ConfigError:
            continue
        _check_policy(policy)


def _check_policy(policy: OciTrustPolicy | BlobTrustPolicy) -> None:
    assert policy.statements
    names = [s.name for s in policy.statements]
    assert len(set(names)) == len(names)
    for statement in policy.statements:
        assert statement.name
        assert len(statement.actions) == 5
    try:
        if isinstance(policy, OciTrustPolicy):
            policy.select("registry.example/app@sha256:" + "0" * 64)
            policy.select("no-at-sign")
        else:
            policy.select(None)
            policy.select(names[0])
    except PullgateError:
        pass


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(_JSON)
def test_arbitrary_json(value: Any) -> None:
    _check(json.dumps(value).encode())


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            out.extend(_paths(child, (*prefix, index)))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "upper" and isinstance(last, str):
        parent[last.upper()] = parent.pop(last)
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[last])))
    else:
        parent[last] = value
    return doc


@st.composite
def _mutated_valid(draw: st.DrawFn) -> Any:
    doc = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "upper", "duplicate"]))
        doc = _mutate(doc, path, action, draw(_JSON))
        if not isinstance(doc, dict | list):
            break
    return doc


@SETTINGS
@given(_mutated_valid())
def test_mutated_valid_policy(doc: Any) -> None:
    _check(json.dumps(doc).encode())


@SETTINGS
@given(_mutated_valid(), st.integers(min_value=0, max_value=2000), st.binary(max_size=8))
def test_byte_level_corruption(doc: Any, position: int, junk: bytes) -> None:
    raw = json.dumps(doc).encode()
    position %= len(raw) + 1
    _check(raw[:position] + junk + raw[position + len(junk) :])


def test_unmutated_document_is_valid() -> None:
    _check_policy(parse_oci_policy(json.dumps(VALID).encode()))
    _check_policy(parse_blob_policy(json.dumps(VALID).encode()))


@SETTINGS
@given(st.one_of(st.text(max_size=60), st.text(alphabet=' ,;+=\\#"<>CSTOUNa0f', max_size=40)))
def test_parse_dn_never_crashes(text: str) -> None:
    try:
        parsed = parse_dn(text)
    except InvalidDistinguishedName:
        return
    assert parsed["C"]
    assert parsed["ST"]
    assert parsed["O"]
