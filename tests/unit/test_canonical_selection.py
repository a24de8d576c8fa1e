"""Trust-policy selection over canonical references: every spelling of one registry selects one
statement, and scopes no reference can select are reported."""

from __future__ import annotations

import json

import pytest

from pullgate.errors import NoApplicablePolicy, Reason
from pullgate.registry.reference import parse_reference
from pullgate.trust.files import dead_scope_warnings
from pullgate.verification.policy import OciTrustPolicy, parse_oci_policy

DIGEST = "sha256:" + "ab" * 32


def _policy(*statements: tuple[str, list[str], str]) -> OciTrustPolicy:
    doc = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": name,
                "registryScopes": scopes,
                "signatureVerification": {"level": level},
                **(
                    {"trustStores": ["ca:main"], "trustedIdentities": ["*"]}
                    if level != "skip"
                    else {}
                ),
            }
            for name, scopes, level in statements
        ],
    }
    return parse_oci_policy(json.dumps(doc).encode())


POLICY = _policy(
    ("strict", ["registry.example.com/app", "localhost:5000/x", "127.0.0.1:5000/app"], "strict"),
    ("open", ["*"], "skip"),
)


def _selected(policy: OciTrustPolicy, reference: str) -> str:
    ref = parse_reference(reference)
    return policy.select(f"{ref.policy_locator}@{DIGEST}").name


@pytest.mark.parametrize(
    "reference",
    [
        "registry.example.com/app:v1",
        "registry.example.com:443/app:v1",
        "registry.example.com:0443/app:v1",
        "REGISTRY.Example.COM:00443/app:v1",
        "localhost:5000/x:v1",
        "localhost:05000/x:v1",
        "LOCALHOST:005000/x:v1",
        "[::ffff:7f00:1]:5000/app:v1",  # IPv4-mapped: Go dials 127.0.0.1
    ],
)
def test_every_spelling_selects_the_strict_statement(reference: str) -> None:
    assert _selected(POLICY, reference) == "strict"


@pytest.mark.parametrize(
    "reference", ["[::1]:5000/app:v1", "[0:0::1]:5000/app:v1", "[::0:1]:05000/app:v1"]
)
def test_ipv6_spellings_select_the_wildcard_statement(reference: str) -> None:
    # notation's scope grammar cannot name an IPv6 registry: only "*" applies, to every spelling.
    assert _selected(POLICY, reference) == "open"


def test_ipv6_without_a_wildcard_statement_has_no_policy() -> None:
    policy = _policy(("strict", ["registry.example.com/app"], "strict"))
    with pytest.raises(NoApplicablePolicy) as info:
        _selected(policy, "[0:0::1]:5000/app:v1")
    assert info.value.reason is Reason.NO_POLICY


def test_dead_scopes_are_warned_with_the_spelling_to_write() -> None:
    policy = _policy(
        (
            "s",
            [
                "registry.example.com:443/app",
                "localhost:05000/x",
                "index.docker.io/library/nginx",
                "Registry.example.com/other",
                "docker.io/nginx",
                "registry.example.com/fine",
            ],
            "strict",
        ),
        ("open", ["*"], "skip"),
    )
    warnings = dead_scope_warnings(policy)
    assert len(warnings) == 5
    for dead, fixed in [
        ("registry.example.com:443/app", "registry.example.com/app"),
        ("localhost:05000/x", "localhost:5000/x"),
        ("index.docker.io/library/nginx", "docker.io/library/nginx"),
        ("Registry.example.com/other", "registry.example.com/other"),
        ("docker.io/nginx", "docker.io/library/nginx"),
    ]:
        assert any(f'"{dead}"' in w and f'write "{fixed}"' in w for w in warnings), dead
    assert not any('"registry.example.com/fine"' in w for w in warnings)
    assert dead_scope_warnings(POLICY) == []
