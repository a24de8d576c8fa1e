"""Trust policy validation (docs/notation.md §8.2 table, §8.3 scopes, §8.4, §14 item 8).

Validation checks the **whole** decoded document and reports every problem, where notation
stops at the first; each problem is a typed
:class:`~pullgate.verification.policy.issues.PolicyIssue`. Deviation from notation, on purpose:
a blob statement with ``globalPolicy: true`` and level ``skip`` is rejected
(``PolicyRule.BLOB_GLOBAL_SKIP``), as the specification requires; notation's check for it never
fires (§8.4, §14 item 8).

Registry scopes follow the distribution reference grammar (§8.3), checked by
:mod:`pullgate.verification.policy.scope`, which statement selection shares.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pullgate.verification.outcome import LEVEL_CHECKS, CheckAction, CheckType, Level
from pullgate.verification.policy.document import (
    PolicyDecodeError,
    PolicyKind,
    RawDocument,
    RawStatement,
    decode_document,
)
from pullgate.verification.policy.issues import PolicyIssue, PolicyRule
from pullgate.verification.policy.scope import scope_problem
from pullgate.verification.truststore import STORE_NAME_PATTERN, StoreType, TrustStoreRef
from pullgate.verification.x509.identity import (
    WILDCARD,
    X509_SUBJECT,
    InvalidDistinguishedName,
    go_quote,
    is_subset_dn,
    parse_dn,
)

__all__ = [
    "POLICY_LINK",
    "SUPPORTED_VERSION",
    "VerifyTimestamp",
    "inspect_document",
    "store_refs",
]

SUPPORTED_VERSION = "1.0"
POLICY_LINK = "https://notaryproject.dev/docs/quickstart/#create-a-trust-policy"


class VerifyTimestamp(StrEnum):
    """``signatureVerification.verifyTimestamp``."""

    ALWAYS = "always"
    AFTER_CERT_EXPIRY = "afterCertExpiry"


class _Validator:
    """Collects every issue of one decoded document."""

    def __init__(self, kind: PolicyKind) -> None:
        self.kind = kind
        self.prefix = f"{kind.value} trust policy"
        self.issues: list[PolicyIssue] = []

    def add(self, rule: PolicyRule, message: str, statement: str | None = None, **kw: Any) -> None:
        self.issues.append(PolicyIssue(rule=rule, message=message, statement=statement, **kw))

    def document(self, doc: RawDocument) -> None:
        if not doc.version:
            self.add(
                PolicyRule.VERSION_MISSING,
                f"{self.prefix} document has empty version, version must be specified",
            )
        elif doc.version != SUPPORTED_VERSION:
            self.add(
                PolicyRule.VERSION_UNSUPPORTED,
                f"{self.prefix} document uses unsupported version {go_quote(doc.version)}",
                value=doc.version,
            )
        if not doc.statements:
            self.add(
                PolicyRule.NO_STATEMENTS,
                f"{self.prefix} document can not have zero trust policy statements",
            )
        seen: set[str] = set()
        reported: set[str] = set()
        for statement in doc.statements:
            if statement.name in seen and statement.name and statement.name not in reported:
                reported.add(statement.name)
                self.add(
                    PolicyRule.NAME_DUPLICATE,
                    f"multiple {self.prefix} statements use the same name "
                    f"{go_quote(statement.name)}, statement names must be unique",
                    statement.name,
                )
            seen.add(statement.name)
            self.statement(statement)
        if self.kind is PolicyKind.OCI:
            self.scopes(doc.statements)
        else:
            self.blob_globals(doc.statements)

    def statement(self, st: RawStatement) -> None:
        label = st.name or None
        where = f"{self.prefix}: trust policy statement {go_quote(st.name)}"
        if not st.name:
            self.add(
                PolicyRule.NAME_MISSING,
                f"{self.prefix}: trustPolicies[{st.index}]: a trust policy statement is missing "
                "a name, every statement requires a name",
            )
            where = f"{self.prefix}: trust policy statement trustPolicies[{st.index}]"
        invalid = f"{where} has invalid signatureVerification"
        level: Level | None = None
        if not st.level:
            self.add(
                PolicyRule.LEVEL_MISSING,
                f"{invalid}: signature verification level is empty or missing in the trust "
                "policy statement",
                label,
            )
        elif st.level not in Level.__members__.values():
            self.add(
                PolicyRule.LEVEL_INVALID,
                f"{invalid}: invalid signature verification level {go_quote(st.level)}",
                label,
                value=st.level,
            )
        else:
            level = Level(st.level)
        if st.override:
            if level is Level.SKIP:
                self.add(
                    PolicyRule.OVERRIDE_WITH_SKIP,
                    f'{invalid}: signature verification level "skip" can\'t be used to '
                    "customize signature verification",
                    label,
                )
            else:
                self.overrides(st, invalid, label)
        if st.verify_timestamp and st.verify_timestamp not in VerifyTimestamp.__members__.values():
            self.add(
                PolicyRule.VERIFY_TIMESTAMP_INVALID,
                f'{invalid}: verifyTimestamp must be "always" or "afterCertExpiry", but got '
                f"{go_quote(st.verify_timestamp)}",
                label,
                value=st.verify_timestamp,
            )
        if level is Level.SKIP:
            if st.stores or st.identities:
                self.add(
                    PolicyRule.SKIP_WITH_TRUST,
                    f"{where} is set to skip signature verification but configured with trust "
                    "stores and/or trusted identities, remove them if signature verification "
                    "needs to be skipped",
                    label,
                )
            return
        if level is not None and (not st.stores or not st.identities):
            self.add(
                PolicyRule.MISSING_TRUST,
                f"{where} is either missing trust stores or trusted identities, both must be "
                "specified",
                label,
            )
        for store in st.stores:
            self.store(store, where, label)
        self.identities(st.identities, where, label)

    def overrides(self, st: RawStatement, invalid: str, label: str | None) -> None:
        checks = {check.value for check in LEVEL_CHECKS}
        actions = {action.value for action in CheckAction}
        for key, action in st.override.items():
            if key not in checks:
                self.add(
                    PolicyRule.OVERRIDE_TYPE_UNSUPPORTED,
                    f"{invalid}: verification type {go_quote(key)} in custom signature "
                    f"verification is not supported, supported values are {sorted(checks)}",
                    label,
                    value=key,
                )
            elif action not in actions:
                self.add(
                    PolicyRule.OVERRIDE_ACTION_UNSUPPORTED,
                    f"{invalid}: verification action {go_quote(action)} in custom signature "
                    f"verification is not supported, supported values are {sorted(actions)}",
                    label,
                    value=action,
                )
            elif key == CheckType.INTEGRITY:
                self.add(
                    PolicyRule.OVERRIDE_INTEGRITY,
                    f'{invalid}: "integrity" verification can not be overridden in custom '
                    "signature verification",
                    label,
                    value=key,
                )
            elif action == CheckAction.SKIP and key != CheckType.REVOCATION:
                self.add(
                    PolicyRule.OVERRIDE_SKIP_FORBIDDEN,
                    f'{invalid}: "{key}" verification can not be skipped in custom signature '
                    "verification",
                    label,
                    value=key,
                )

    def store(self, value: str, where: str, label: str | None) -> None:
        store_type, sep, name = value.partition(":")
        if not sep:
            self.add(
                PolicyRule.STORE_MALFORMED,
                f"{where} has malformed trust store value {go_quote(value)}. The required format "
                "is <TrustStoreType>:<TrustStoreName>",
                label,
                value=value,
            )
        elif store_type not in StoreType.__members__.values():
            self.add(
                PolicyRule.STORE_TYPE,
                f"{where} uses an unsupported trust store type {go_quote(store_type)} in trust "
                f"store value {go_quote(value)}",
                label,
                value=value,
            )
        elif not STORE_NAME_PATTERN.fullmatch(name):
            self.add(
                PolicyRule.STORE_NAME,
                f"{where} uses an unsupported trust store name {go_quote(name)} in trust store "
                f"value {go_quote(value)}. Named store name needs to follow [a-zA-Z0-9_.-]+ format",
                label,
                value=value,
            )

    def identities(self, identities: tuple[str, ...], where: str, label: str | None) -> None:
        if len(identities) > 1 and WILDCARD in identities:
            self.add(
                PolicyRule.IDENTITY_WILDCARD_MIXED,
                f"{where} uses a wildcard trusted identity '*', a wildcard identity cannot be "
                "used in conjunction with other values",
                label,
            )
        parsed: list[tuple[str, dict[str, str]]] = []
        for identity in identities:
            if not identity:
                self.add(PolicyRule.IDENTITY_EMPTY, f"{where} has an empty trusted identity", label)
                continue
            if identity == WILDCARD:
                continue
            prefix, sep, value = identity.partition(":")
            if not sep:
                self.add(
                    PolicyRule.IDENTITY_NO_SEPARATOR,
                    f"{where} has trusted identity {go_quote(identity)} missing separator",
                    label,
                    value=identity,
                )
            elif prefix != X509_SUBJECT:
                continue  # other prefixes pass validation and are ignored when verifying
            elif not value:
                self.add(
                    PolicyRule.IDENTITY_NO_VALUE,
                    f"{where} has trusted identity {go_quote(identity)} without an identity value",
                    label,
                    value=identity,
                )
            else:
                try:
                    parsed.append((identity, parse_dn(value)))
                except InvalidDistinguishedName as exc:
                    self.add(
                        PolicyRule.IDENTITY_INVALID_DN,
                        f"{where} has trusted identity {go_quote(identity)} with invalid identity "
                        f"value: {exc}",
                        label,
                        value=exc.attribute or identity,
                        dn_problem=exc.problem,
                    )
        for i, (raw_a, dn_a) in enumerate(parsed):
            for raw_b, dn_b in parsed[i + 1 :]:
                if is_subset_dn(dn_a, dn_b) or is_subset_dn(dn_b, dn_a):
                    self.add(
                        PolicyRule.IDENTITY_OVERLAP,
                        f"{where} has overlapping x509 trustedIdentities, {go_quote(raw_a)} "
                        f"overlaps with {go_quote(raw_b)}",
                        label,
                        value=raw_b,
                    )

    def scopes(self, statements: tuple[RawStatement, ...]) -> None:
        counts: dict[str, int] = {}
        for st in statements:
            label = st.name or None
            name = st.name or f"trustPolicies[{st.index}]"
            if not st.scopes:
                self.add(
                    PolicyRule.SCOPES_EMPTY,
                    f"oci trust policy statement {go_quote(name)} has zero registry scopes, it "
                    "must specify registry scopes with at least one value",
                    label,
                )
            if len(st.scopes) > 1 and WILDCARD in st.scopes:
                self.add(
                    PolicyRule.SCOPE_WILDCARD_MIXED,
                    f"oci trust policy statement {go_quote(name)} uses wildcard registry scope "
                    "'*', a wildcard scope cannot be used in conjunction with other scope values",
                    label,
                )
            for scope in st.scopes:
                counts[scope] = counts.get(scope, 0) + 1
                if scope == WILDCARD:
                    continue
                problem = scope_problem(scope)
                if problem is not None:
                    self.add(problem[0], problem[1], label, value=scope)
        for scope, count in counts.items():
            if count > 1:
                self.add(
                    PolicyRule.SCOPE_DUPLICATE,
                    f"registry scope {go_quote(scope)} is present in multiple oci trust policy "
                    "statements, one registry scope value can only be associated with one "
                    "statement",
                    value=scope,
                )

    def blob_globals(self, statements: tuple[RawStatement, ...]) -> None:
        globals_ = [st for st in statements if st.global_policy]
        if len(globals_) > 1:
            self.add(
                PolicyRule.BLOB_GLOBAL_DUPLICATE,
                "multiple blob trust policy statements have globalPolicy set to true. Only one "
                "trust policy statement should be marked as global policy",
            )
        for st in globals_:
            if st.level == Level.SKIP:
                self.add(
                    PolicyRule.BLOB_GLOBAL_SKIP,
                    f"blob trust policy: global trust policy statement {go_quote(st.name)} can "
                    "not have "
                    '"skip" as the signature verification level',
                    st.name or None,
                )


def inspect_document(data: bytes, kind: PolicyKind) -> tuple[RawDocument | None, list[PolicyIssue]]:
    """Decode and validate; the raw document (None when undecodable) plus every issue."""
    try:
        doc = decode_document(data, kind)
    except PolicyDecodeError as exc:
        issue = PolicyIssue(
            rule=PolicyRule.MALFORMED,
            message=f"malformed trust policy ({exc}). To create a trust policy, see: {POLICY_LINK}",
        )
        return None, [issue]
    validator = _Validator(kind)
    validator.document(doc)
    return doc, validator.issues


def store_refs(doc: RawDocument) -> list[tuple[TrustStoreRef, str]]:
    """Well-formed store references of a (possibly invalid) document, with their statement."""
    out: list[tuple[TrustStoreRef, str]] = []
    for st in doc.statements:
        for value in st.stores:
            store_type, sep, name = value.partition(":")
            if (
                sep
                and store_type in StoreType.__members__.values()
                and STORE_NAME_PATTERN.fullmatch(name)
            ):
                out.append((TrustStoreRef(type=StoreType(store_type), name=name), st.name))
    return out
