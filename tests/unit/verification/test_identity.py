"""Trusted identity parsing, Go subject rendering and matching (docs/notation.md §8.5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pullgate.errors import Reason, VerificationFailed
from pullgate.verification.x509.identity import (
    DnProblem,
    InvalidDistinguishedName,
    go_dn_list,
    go_name_string,
    go_quote,
    is_subset_dn,
    match_trusted_identities,
    parse_dn,
)
from tests.support.pki import CertSpec, Pki

VECTORS = (
    Path(__file__).resolve().parents[3]
    / ".."
    / "shared"
    / "conformance"
    / "notation"
    / "notation-go"
    / "verifier"
    / "testdata"
    / "verifier"
)


# ----------------------------------------------------------------------------- parse_dn


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C=US,ST=WA,O=Notary", {"C": "US", "ST": "WA", "O": "Notary"}),
        ("  C = US ,  ST=WA , O = Notary  ", {"C": "US", "ST": "WA", "O": "Notary"}),
        ("C=US;ST=WA;O=Notary", {"C": "US", "ST": "WA", "O": "Notary"}),
        ("C=US, S=WA, O=Notary", {"C": "US", "ST": "WA", "O": "Notary"}),
        (r"C=US,ST=WA,O=Acme\, Inc.", {"C": "US", "ST": "WA", "O": "Acme, Inc."}),
        (r"C=US,ST=WA,O=Acme\2C Inc.", {"C": "US", "ST": "WA", "O": "Acme, Inc."}),
        (r"C=US,ST=WA,O=caf\C3\A9", {"C": "US", "ST": "WA", "O": "café"}),
        (r"C=US,ST=WA,O=x\ ", {"C": "US", "ST": "WA", "O": "x "}),
        (r"C=US,ST=WA,O=\ x", {"C": "US", "ST": "WA", "O": " x"}),
        (r"C=US,ST=WA,O=a\\ ", {"C": "US", "ST": "WA", "O": "a\\"}),
        (r"C=US,ST=WA,O=a\=b\+c\;d\<e\>f\"g\#", {"C": "US", "ST": "WA", "O": 'a=b+c;d<e>f"g#'}),
        ("C=US,ST=WA,O=a=b", {"C": "US", "ST": "WA", "O": "a=b"}),
        (
            "CN=e2e,OU=x,O=Notary,L=Seattle,ST=WA,C=US",
            {"CN": "e2e", "OU": "x", "O": "Notary", "L": "Seattle", "ST": "WA", "C": "US"},
        ),
        ("C=US,ST=WA,O=Notary,L=", {"C": "US", "ST": "WA", "O": "Notary", "L": ""}),
        (
            "C=US,ST=WA,O=Notary,x-custom=Zz",
            {"C": "US", "ST": "WA", "O": "Notary", "x-custom": "Zz"},
        ),
    ],
)
def test_parse_dn_accepts(text: str, expected: dict[str, str]) -> None:
    assert parse_dn(text) == expected


@pytest.mark.parametrize(
    ("text", "problem", "attribute"),
    [
        ("C=US,ST=WA,O=#0403", DnProblem.HEX_VALUE, ""),
        ("C=US,ST=WA,O=a=#b", DnProblem.HEX_VALUE, ""),
        ("C=US+ST=WA,O=Notary", DnProblem.MULTI_VALUED, ""),
        ("C=US,ST=WA,O=a,O=b", DnProblem.DUPLICATE, "O"),
        ("C=US,ST=WA,S=WA,O=a", DnProblem.DUPLICATE, "ST"),
        ("c=US,st=WA,o=Notary", DnProblem.MISSING_MANDATORY, "C"),
        ("C=US,O=Notary", DnProblem.MISSING_MANDATORY, "ST"),
        ("C=US,ST=WA", DnProblem.MISSING_MANDATORY, "O"),
        ("C=US,ST=WA,O=", DnProblem.MISSING_MANDATORY, "O"),
        ("", DnProblem.MISSING_MANDATORY, "C"),
        ("   ", DnProblem.MISSING_MANDATORY, "C"),
        ("C=US,,ST=WA,O=x", DnProblem.SYNTAX, ""),
        ("C=US,ST=WA,O=x,", DnProblem.SYNTAX, ""),
        ("C=US,ST=WA,O", DnProblem.SYNTAX, ""),
        ("C=US,ST=WA,O=x\\", DnProblem.SYNTAX, ""),
        (r"C=US,ST=WA,O=\zz", DnProblem.SYNTAX, ""),
        (r"C=US,ST=WA,O=\4", DnProblem.SYNTAX, ""),
        ('C=US,ST=WA,O=a"b', DnProblem.SYNTAX, ""),
        ("C=US,ST=WA,O=a<b", DnProblem.SYNTAX, ""),
        ("C=US,ST=WA,O=a\0b", DnProblem.SYNTAX, ""),
    ],
)
def test_parse_dn_rejects(text: str, problem: DnProblem, attribute: str) -> None:
    with pytest.raises(InvalidDistinguishedName) as info:
        parse_dn(text)
    assert info.value.problem is problem
    assert info.value.reason is Reason.CONFIG
    if attribute:
        assert info.value.attribute == attribute


def test_empty_earlier_value_is_not_a_duplicate() -> None:
    # notation checks `map[type] == ""`, so an empty first value is silently replaced.
    assert parse_dn("C=US,ST=WA,O=,O=Notary")["O"] == "Notary"


def test_subset_treats_missing_as_empty() -> None:
    assert is_subset_dn({"C": "US"}, {"C": "US", "O": "x"})
    assert not is_subset_dn({"C": "US", "L": "x"}, {"C": "US"})
    assert is_subset_dn({"C": "US", "L": ""}, {"C": "US"})


def test_go_quote_matches_go_percent_q() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("x\ny\x01\u200b") == '"x\\ny\\x01\\u200b"'
    assert go_quote("café") == '"café"'
    assert go_dn_list([{"O": "x", "C": "US"}]) == '[map["C":"US" "O":"x"]]'


# ----------------------------------------------------------------------------- Go rendering


def _name(*attrs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            _name(
                (NameOID.COUNTRY_NAME, "US"),
                (NameOID.STATE_OR_PROVINCE_NAME, "WA"),
                (NameOID.LOCALITY_NAME, "Seattle"),
                (NameOID.ORGANIZATION_NAME, "Notary"),
                (NameOID.COMMON_NAME, "e2e"),
            ),
            "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US",
        ),
        (
            # Go's fixed order, whatever the certificate's order.
            _name(
                (NameOID.COMMON_NAME, "e2e"),
                (NameOID.SERIAL_NUMBER, "42"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "u"),
                (NameOID.POSTAL_CODE, "98101"),
                (NameOID.STREET_ADDRESS, "Main St"),
                (NameOID.ORGANIZATION_NAME, "Notary"),
                (NameOID.STATE_OR_PROVINCE_NAME, "WA"),
                (NameOID.COUNTRY_NAME, "US"),
            ),
            "SERIALNUMBER=42,CN=e2e,OU=u,O=Notary,POSTALCODE=98101,STREET=Main St,ST=WA,C=US",
        ),
        (
            _name(
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "a"),
                (NameOID.COUNTRY_NAME, "US"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "b"),
            ),
            "OU=a+OU=b,C=US",
        ),
        (
            _name((NameOID.COMMON_NAME, "first"), (NameOID.COMMON_NAME, "last")),
            "CN=last",
        ),
        (
            _name((NameOID.COUNTRY_NAME, "US"), (NameOID.EMAIL_ADDRESS, "a@b.c")),
            "C=US,1.2.840.113549.1.9.1=#0c056140622e63",
        ),
        (
            _name(
                (NameOID.DOMAIN_COMPONENT, "example"),
                (NameOID.COUNTRY_NAME, "US"),
                (NameOID.DOMAIN_COMPONENT, "com"),
            ),
            # non-standard attributes go last, in reverse certificate order
            "C=US,0.9.2342.19200300.100.1.25=#1303636f6d,"
            "0.9.2342.19200300.100.1.25=#13076578616d706c65",
        ),
        (
            _name((NameOID.ORGANIZATION_NAME, '#a,b+c"d\\e<f>g;h')),
            'O=\\#a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h',
        ),
        (_name((NameOID.ORGANIZATION_NAME, " x y ")), "O=\\ x y\\ "),
        (_name((NameOID.ORGANIZATION_NAME, "a=#b")), "O=a=#b"),
        (_name(), ""),
    ],
)
def test_go_name_string(name: x509.Name, expected: str) -> None:
    assert go_name_string(name) == expected


def test_go_rendering_round_trips_through_parse_dn() -> None:
    name = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        (NameOID.ORGANIZATION_NAME, ' Acme, "Inc" + co; #1 '),
        (NameOID.COMMON_NAME, "#signer\\"),
    )
    assert parse_dn(go_name_string(name)) == {
        "C": "US",
        "ST": "WA",
        "O": ' Acme, "Inc" + co; #1 ',
        "CN": "#signer\\",
    }


# ----------------------------------------------------------------------------- matching


def _leaf(**changes: object) -> x509.Certificate:
    return Pki().chain(leaf=CertSpec().replace(**changes), depth=1).leaf.cert


def test_wildcard_matches_anything() -> None:
    match_trusted_identities(_leaf(), ["*"], "p")


@pytest.mark.parametrize(
    "identities",
    [
        ["x509.subject: C=US, ST=WA, O=pullgate"],
        ["x509.subject: C=US, S=WA, O=pullgate, CN=pullgate test signer"],
        ["x509.subject: C=XX, ST=WA, O=pullgate", "x509.subject: C=US, ST=WA, O=pullgate"],
        ["custom.prefix: anything", "x509.subject: C=US, ST=WA, O=pullgate"],
    ],
)
def test_subset_match_passes(identities: list[str]) -> None:
    match_trusted_identities(_leaf(), identities, "p")


@pytest.mark.parametrize(
    "identities",
    [
        ["x509.subject: C=US, ST=WA, O=other"],
        ["x509.subject: C=US, ST=WA, O=PULLGATE"],  # values are case-sensitive
        ["x509.subject: C=US, ST=WA, O=pullgate, L=Seattle"],  # leaf has no L
        ["custom.prefix: anything"],  # no x509 identity left
        [],
    ],
)
def test_mismatch_is_identity_failure(identities: list[str]) -> None:
    with pytest.raises(VerificationFailed) as info:
        match_trusted_identities(_leaf(), identities, "p")
    assert info.value.reason is Reason.IDENTITY_MISMATCH


def test_leaf_with_two_ous_only_matches_wildcard() -> None:
    pki = Pki()
    issued = pki.chain(depth=1).leaf
    name = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        (NameOID.ORGANIZATION_NAME, "pullgate"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "a"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "b"),
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(issued.key.public_key())
        .serial_number(7)
        .not_valid_before(issued.cert.not_valid_before_utc)
        .not_valid_after(issued.cert.not_valid_after_utc)
        .sign(issued.key, issued.cert.signature_hash_algorithm)  # type: ignore[arg-type]
    )
    match_trusted_identities(cert, ["*"], "p")
    with pytest.raises(VerificationFailed) as info:
        match_trusted_identities(cert, ["x509.subject: C=US, ST=WA, O=pullgate"], "p")
    assert info.value.reason is Reason.IDENTITY_MISMATCH


def test_leaf_without_mandatory_attributes_fails() -> None:
    leaf = _leaf(organization="")
    with pytest.raises(VerificationFailed) as info:
        match_trusted_identities(leaf, ["x509.subject: C=US, ST=WA, O=x"], "p")
    assert info.value.reason is Reason.IDENTITY_MISMATCH


def test_unparsable_configured_identity_fails() -> None:
    with pytest.raises(VerificationFailed) as info:
        match_trusted_identities(_leaf(), ["x509.subject: C=US"], "p")
    assert info.value.reason is Reason.IDENTITY_MISMATCH


# ----------------------------------------------------------------------------- notation vectors


def _vector(name: str) -> x509.Certificate:
    path = VECTORS / name
    if not path.exists():
        pytest.skip(f"notation vector {path} is absent")
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_notation_signing_cert_rendering() -> None:
    cert = _vector("signing-cert.pem")
    assert go_name_string(cert.subject) == "CN=SomeCN,OU=SomeOU,O=SomeOrg,L=Seattle,ST=WA,C=US"


@pytest.mark.parametrize(
    ("identities", "ok"),
    [
        (["x509.subject: C=US, ST=WA, O=SomeOrg"], True),
        (["x509.subject: C=US, ST=WA, L=Seattle, O=SomeOrg, OU=SomeOU, CN=SomeCN"], True),
        (["x509.subject: C=US, ST=WA, O=SomeOrg, CN=OtherCN"], False),
        (["x509.subject: C=US, ST=OR, O=SomeOrg"], False),
        (["*"], True),
    ],
)
def test_notation_signing_cert_identities(identities: list[str], ok: bool) -> None:
    cert = _vector("signing-cert.pem")
    if ok:
        match_trusted_identities(cert, identities, "test")
    else:
        with pytest.raises(VerificationFailed) as info:
            match_trusted_identities(cert, identities, "test")
        assert info.value.reason is Reason.IDENTITY_MISMATCH


def test_notation_bad_cert_needs_wildcard() -> None:
    cert = _vector("bad-cert.pem")
    assert "CN=Bad=#CN" in go_name_string(cert.subject)
    match_trusted_identities(cert, ["*"], "test")
    with pytest.raises(VerificationFailed) as info:
        match_trusted_identities(cert, ["x509.subject: C=US, ST=WA, O=SomeOrg"], "test")
    assert info.value.reason is Reason.IDENTITY_MISMATCH
