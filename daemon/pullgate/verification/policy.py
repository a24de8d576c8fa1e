"""Trust policy documents: load, validate, select (notary-verification.md §8, §14).

Files (§8.1): ``trustpolicy.oci.json``, falling back to ``trustpolicy.json`` only when the former
does not exist at all, and ``trustpolicy.blob.json``. Each must be a regular file, not a symlink
(see :mod:`pullgate.verification.truststore` for the opt-in ``allow_symlinks`` mode).

Decoding is Go-lenient like notation's ``encoding/json``: unknown fields are ignored, keys match
field names ASCII-case-insensitively (last occurrence wins, ``override`` maps merge), JSON
``null`` leaves a field at its zero value, only the first JSON value of the file is read, and
any type mismatch makes the document malformed.

Validation (§8.2 table, §8.4) checks the **whole** document and reports every problem, where
notation stops at the first; each problem is a :class:`PolicyIssue` with a typed
:class:`PolicyRule`. Deviation from notation, on purpose: a blob statement with
``globalPolicy: true`` and level ``skip`` is rejected (:attr:`PolicyRule.BLOB_GLOBAL_SKIP`), as
the specification requires; notation's check for it never fires (§8.4, §14 item 8).

Selection (§8.3): the artifact path is the reference up to its last ``@``; an exact,
case-sensitive scope match wins over the ``*`` statement.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pullgate.errors import ConfigError, MalformedInput, NoApplicablePolicy
from pullgate.verification.identity import (
    WILDCARD,
    X509_SUBJECT,
    DnProblem,
    InvalidDistinguishedName,
    go_quote,
    is_subset_dn,
    parse_dn,
)
from pullgate.verification.outcome import LEVEL_ACTIONS, LEVEL_CHECKS, CheckAction, CheckType, Level
from pullgate.verification.truststore import (
    STORE_NAME_PATTERN,
    StoreType,
    TrustStore,
    TrustStoreError,
    TrustStoreRef,
    resolves_inside,
)

__all__ = [
    "BlobTrustPolicy",
    "InvalidTrustPolicy",
    "OciTrustPolicy",
    "PolicyIssue",
    "PolicyKind",
    "PolicyRule",
    "TrustPolicyStatement",
    "TrustStoreRef",
    "VerifyTimestamp",
    "check_trust_dir",
    "load_blob_policy",
    "load_oci_policy",
    "parse_blob_policy",
    "parse_oci_policy",
]

OCI_POLICY_FILE = "trustpolicy.oci.json"
LEGACY_POLICY_FILE = "trustpolicy.json"
BLOB_POLICY_FILE = "trustpolicy.blob.json"
SUPPORTED_VERSION = "1.0"
POLICY_LINK = "https://notaryproject.dev/docs/quickstart/#create-a-trust-policy"

# Distribution reference grammar (notation's registry scope check), written without nested
# quantifiers so that Python's backtracking engine stays linear-ish on hostile input.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


class VerifyTimestamp(StrEnum):
    """``signatureVerification.verifyTimestamp``."""

    ALWAYS = "always"
    AFTER_CERT_EXPIRY = "afterCertExpiry"


class PolicyKind(StrEnum):
    """Which trust policy document."""

    OCI = "oci"
    BLOB = "blob"


class PolicyRule(StrEnum):
    """The rule a policy problem broke (tests and tools assert on these, not on text)."""

    FILE_MISSING = "file-missing"
    FILE_NOT_REGULAR = "file-not-regular"
    FILE_UNREADABLE = "file-unreadable"
    MALFORMED = "malformed"
    VERSION_MISSING = "version-missing"
    VERSION_UNSUPPORTED = "version-unsupported"
    NO_STATEMENTS = "no-statements"
    NAME_MISSING = "name-missing"
    NAME_DUPLICATE = "name-duplicate"
    LEVEL_MISSING = "level-missing"
    LEVEL_INVALID = "level-invalid"
    OVERRIDE_WITH_SKIP = "override-with-skip"
    OVERRIDE_TYPE_UNSUPPORTED = "override-type-unsupported"
    OVERRIDE_ACTION_UNSUPPORTED = "override-action-unsupported"
    OVERRIDE_INTEGRITY = "override-integrity"
    OVERRIDE_SKIP_FORBIDDEN = "override-skip-forbidden"
    VERIFY_TIMESTAMP_INVALID = "verify-timestamp-invalid"
    SKIP_WITH_TRUST = "skip-with-trust"
    MISSING_TRUST = "missing-trust"
    STORE_MALFORMED = "store-malformed"
    STORE_TYPE = "store-type"
    STORE_NAME = "store-name"
    IDENTITY_WILDCARD_MIXED = "identity-wildcard-mixed"
    IDENTITY_EMPTY = "identity-empty"
    IDENTITY_NO_SEPARATOR = "identity-no-separator"
    IDENTITY_NO_VALUE = "identity-no-value"
    IDENTITY_INVALID_DN = "identity-invalid-dn"
    IDENTITY_OVERLAP = "identity-overlap"
    SCOPES_EMPTY = "scopes-empty"
    SCOPE_WILDCARD_MIXED = "scope-wildcard-mixed"
    SCOPE_WILDCARD_IN_VALUE = "scope-wildcard-in-value"
    SCOPE_INVALID = "scope-invalid"
    SCOPE_DUPLICATE = "scope-duplicate"
    BLOB_GLOBAL_DUPLICATE = "blob-global-duplicate"
    BLOB_GLOBAL_SKIP = "blob-global-skip"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyIssue:
    """One problem of a policy document.

    ``value`` is the offending value (scope, store, identity, DN attribute…) when there is one;
    ``dn_problem`` says which DN rule failed for :attr:`PolicyRule.IDENTITY_INVALID_DN`.
    """

    rule: PolicyRule
    message: str
    statement: str | None = None
    value: str = ""
    dn_problem: DnProblem | None = None


class InvalidTrustPolicy(ConfigError):
    """A trust policy document is unusable. ``issues`` holds every problem found, typed."""

    def __init__(self, source: str, issues: Iterable[PolicyIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        problems = tuple(f"{source}: {issue.message}" for issue in self.issues)
        count = len(problems)
        summary = f"{count} problem{'s' if count != 1 else ''}"
        super().__init__(f"{source}: {summary}: " + "; ".join(problems), problems)

    @property
    def rules(self) -> frozenset[PolicyRule]:
        """The distinct rules broken."""
        return frozenset(issue.rule for issue in self.issues)


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustPolicyStatement:
    """One validated statement. ``actions`` is the level's table with ``override`` applied."""

    name: str
    level: Level
    actions: Mapping[CheckType, CheckAction] = field(hash=False)
    overrides: Mapping[CheckType, CheckAction] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    verify_timestamp: VerifyTimestamp = VerifyTimestamp.ALWAYS
    registry_scopes: tuple[str, ...] = ()
    trust_stores: tuple[TrustStoreRef, ...] = ()
    trusted_identities: tuple[str, ...] = ()
    global_policy: bool = False

    @property
    def level_name(self) -> str:
        """notation's name for the effective level: the preset, or ``custom`` with overrides."""
        return "custom" if self.overrides else self.level.value

    def stores_of(self, store_type: StoreType) -> tuple[TrustStoreRef, ...]:
        """The statement's stores of one type, in policy order."""
        return tuple(ref for ref in self.trust_stores if ref.type is store_type)


@dataclass(frozen=True, slots=True, kw_only=True)
class OciTrustPolicy:
    """A validated ``trustpolicy.oci.json``."""

    statements: tuple[TrustPolicyStatement, ...]
    source: str = OCI_POLICY_FILE

    def select(self, reference: str) -> TrustPolicyStatement:
        """The statement that applies to ``reference`` (``registry/repo@digest``).

        Raises:
            MalformedInput: the reference has no ``@`` or its path is not a valid scope.
            NoApplicablePolicy: no exact scope matches and there is no ``*`` statement.
        """
        at = reference.rfind("@")
        if at < 0:
            raise MalformedInput(
                f"artifact URI {go_quote(reference)} could not be parsed, make sure it is the "
                "fully "
                "qualified oci artifact URI without the scheme/protocol. e.g "
                "domain.com:80/my/repository@sha256:digest"
            )
        path = reference[:at]
        problem = _scope_problem(path)
        if problem is not None:
            raise MalformedInput(problem[1])
        wildcard: TrustPolicyStatement | None = None
        for statement in self.statements:
            if WILDCARD in statement.registry_scopes:
                wildcard = statement
            elif path in statement.registry_scopes:
                return statement
        if wildcard is not None:
            return wildcard
        raise NoApplicablePolicy(
            f"artifact {go_quote(reference)} has no applicable oci trust policy statement. Trust "
            "policy "
            "applicability for a given artifact is determined by registryScopes. To create a "
            f"trust policy, see: {POLICY_LINK}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobTrustPolicy:
    """A validated ``trustpolicy.blob.json``."""

    statements: tuple[TrustPolicyStatement, ...]
    source: str = BLOB_POLICY_FILE

    def select(self, policy_name: str | None) -> TrustPolicyStatement:
        """The statement named ``policy_name``, or the global statement when it is None.

        Raises:
            NoApplicablePolicy: no such statement (or no global statement).
        """
        if policy_name is None:
            for statement in self.statements:
                if statement.global_policy:
                    return statement
            raise NoApplicablePolicy("no global blob trust policy")
        if not policy_name.strip():
            raise NoApplicablePolicy("policy name cannot be empty")
        for statement in self.statements:
            if statement.name == policy_name:
                return statement
        raise NoApplicablePolicy(
            f"no applicable blob trust policy with name {go_quote(policy_name)}"
        )


# ----------------------------------------------------------------------------- Go-lenient JSON


class _Malformed(Exception):
    """Internal: the document does not decode into notation's structs."""


class _JsonObject:
    """A JSON object as its ordered (key, value) pairs."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_string(value: str) -> str:
    """Go replaces invalid UTF-16 escapes with U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", value)


def _reject_constant(name: str) -> Any:
    raise _Malformed(f"invalid JSON constant {name}")


def _decode_json(data: bytes) -> Any:
    """The first JSON value of ``data`` (trailing bytes are ignored, as by Go's Decoder)."""
    text = data.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    decoder = json.JSONDecoder(object_pairs_hook=_JsonObject, parse_constant=_reject_constant)
    try:
        value, _end = decoder.raw_decode(text, start)
    except (ValueError, RecursionError) as exc:
        raise _Malformed(str(exc)) from exc
    return value


def _fields(value: Any, names: Iterable[str], where: str) -> dict[str, Any]:
    """Struct decoding: pick known fields by ASCII-case-insensitive key; last one wins."""
    if value is None:
        return {}
    if not isinstance(value, _JsonObject):
        raise _Malformed(f"{where}: expected an object")
    by_fold = {name.lower(): name for name in names}
    out: dict[str, Any] = {}
    for key, item in value.pairs:
        name = by_fold.get(_ascii_lower(_go_string(key)))
        if name is None:
            continue
        if name == "override" and isinstance(item, _JsonObject):
            previous = out.get(name)
            if isinstance(previous, _JsonObject):  # Go decodes into the existing map
                item = _JsonObject(previous.pairs + item.pairs)
        out[name] = item
    return out


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{where}: expected a string")
    return _go_string(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Malformed(f"{where}: expected an array of strings")
    return tuple(_string(item, where) for item in value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, _JsonObject):
        raise _Malformed(f"{where}: expected an object")
    return {_go_string(k): _string(v, where) for k, v in value.pairs}


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Malformed(f"{where}: expected a boolean")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class _RawStatement:
    """A statement exactly as decoded, before validation."""

    index: int
    name: str
    level: str
    override: Mapping[str, str]
    verify_timestamp: str
    scopes: tuple[str, ...]
    stores: tuple[str, ...]
    identities: tuple[str, ...]
    global_policy: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _RawDocument:
    version: str
    statements: tuple[_RawStatement, ...]


_STATEMENT_FIELDS = (
    "name",
    "signatureVerification",
    "trustStores",
    "trustedIdentities",
)


def _decode_document(data: bytes, kind: PolicyKind) -> _RawDocument:
    top = _fields(_decode_json(data), ("version", "trustPolicies"), "document")
    version = _string(top.get("version"), "version")
    raw_statements = top.get("trustPolicies")
    if raw_statements is not None and not isinstance(raw_statements, list):
        raise _Malformed("trustPolicies: expected an array")
    extra = ("registryScopes",) if kind is PolicyKind.OCI else ("globalPolicy",)
    statements: list[_RawStatement] = []
    for index, item in enumerate(raw_statements or ()):
        where = f"trustPolicies[{index}]"
        fields = _fields(item, _STATEMENT_FIELDS + extra, where)
        verification = _fields(
            fields.get("signatureVerification"),
            ("level", "override", "verifyTimestamp"),
            f"{where}.signatureVerification",
        )
        statements.append(
            _RawStatement(
                index=index,
                name=_string(fields.get("name"), f"{where}.name"),
                level=_string(verification.get("level"), f"{where}.level"),
                override=_string_map(verification.get("override"), f"{where}.override"),
                verify_timestamp=_string(
                    verification.get("verifyTimestamp"), f"{where}.verifyTimestamp"
                ),
                scopes=_strings(fields.get("registryScopes"), f"{where}.registryScopes"),
                stores=_strings(fields.get("trustStores"), f"{where}.trustStores"),
                identities=_strings(fields.get("trustedIdentities"), f"{where}.trustedIdentities"),
                global_policy=_bool(fields.get("globalPolicy"), f"{where}.globalPolicy"),
            )
        )
    return _RawDocument(version=version, statements=tuple(statements))


# ----------------------------------------------------------------------------- validation


def _scope_problem(scope: str) -> tuple[PolicyRule, str] | None:
    """Why ``scope`` (not ``*``) is not a valid registry scope, or None."""
    ensure = (
        "make sure it is a fully qualified repository without the scheme, protocol or tag. "
        "For example domain.com/my/repository or a local scope like local/myOCILayout"
    )
    if len(scope) > 1 and "*" in scope:
        return (
            PolicyRule.SCOPE_WILDCARD_IN_VALUE,
            f"registry scope {go_quote(scope)} with wild card(s) is not valid, {ensure}",
        )
    domain, sep, repository = scope.partition("/")
    if (
        not sep
        or not domain
        or not repository
        or _DOMAIN.fullmatch(domain) is None
        or _REPOSITORY.fullmatch(repository) is None
    ):
        return PolicyRule.SCOPE_INVALID, f"registry scope {go_quote(scope)} is not valid, {ensure}"
    return None


class _Validator:
    """Collects every issue of one decoded document."""

    def __init__(self, kind: PolicyKind) -> None:
        self.kind = kind
        self.prefix = f"{kind.value} trust policy"
        self.issues: list[PolicyIssue] = []

    def add(self, rule: PolicyRule, message: str, statement: str | None = None, **kw: Any) -> None:
        self.issues.append(PolicyIssue(rule=rule, message=message, statement=statement, **kw))

    def document(self, doc: _RawDocument) -> None:
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
                    f"{go_quote(statement.name)}, "
                    "statement names must be unique",
                    statement.name,
                )
            seen.add(statement.name)
            self.statement(statement)
        if self.kind is PolicyKind.OCI:
            self.scopes(doc.statements)
        else:
            self.blob_globals(doc.statements)

    def statement(self, st: _RawStatement) -> None:
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

    def overrides(self, st: _RawStatement, invalid: str, label: str | None) -> None:
        checks = {check.value for check in LEVEL_CHECKS}
        actions = {action.value for action in CheckAction}
        for key, action in st.override.items():
            if key not in checks:
                self.add(
                    PolicyRule.OVERRIDE_TYPE_UNSUPPORTED,
                    f"{invalid}: verification type {go_quote(key)} in custom signature "
                    "verification is "
                    f"not supported, supported values are {sorted(checks)}",
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
                "is "
                "<TrustStoreType>:<TrustStoreName>",
                label,
                value=value,
            )
        elif store_type not in StoreType.__members__.values():
            self.add(
                PolicyRule.STORE_TYPE,
                f"{where} uses an unsupported trust store type {go_quote(store_type)} in trust "
                "store "
                f"value {go_quote(value)}",
                label,
                value=value,
            )
        elif not STORE_NAME_PATTERN.fullmatch(name):
            self.add(
                PolicyRule.STORE_NAME,
                f"{where} uses an unsupported trust store name {go_quote(name)} in trust store "
                "value "
                f"{go_quote(value)}. Named store name needs to follow [a-zA-Z0-9_.-]+ format",
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
                        "overlaps "
                        f"with {go_quote(raw_b)}",
                        label,
                        value=raw_b,
                    )

    def scopes(self, statements: tuple[_RawStatement, ...]) -> None:
        counts: dict[str, int] = {}
        for st in statements:
            label = st.name or None
            name = st.name or f"trustPolicies[{st.index}]"
            if not st.scopes:
                self.add(
                    PolicyRule.SCOPES_EMPTY,
                    f"oci trust policy statement {go_quote(name)} has zero registry scopes, it "
                    "must "
                    "specify registry scopes with at least one value",
                    label,
                )
            if len(st.scopes) > 1 and WILDCARD in st.scopes:
                self.add(
                    PolicyRule.SCOPE_WILDCARD_MIXED,
                    f"oci trust policy statement {go_quote(name)} uses wildcard registry scope "
                    "'*', a "
                    "wildcard scope cannot be used in conjunction with other scope values",
                    label,
                )
            for scope in st.scopes:
                counts[scope] = counts.get(scope, 0) + 1
                if scope == WILDCARD:
                    continue
                problem = _scope_problem(scope)
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

    def blob_globals(self, statements: tuple[_RawStatement, ...]) -> None:
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


def _build_statement(st: _RawStatement) -> TrustPolicyStatement:
    """A validated raw statement as the public model."""
    level = Level(st.level)
    overrides = {CheckType(k): CheckAction(v) for k, v in st.override.items()}
    actions = dict(LEVEL_ACTIONS[level])
    actions.update(overrides)
    refs: list[TrustStoreRef] = []
    for value in st.stores:
        store_type, _sep, name = value.partition(":")
        ref = TrustStoreRef(type=StoreType(store_type), name=name)
        if ref not in refs:
            refs.append(ref)
    return TrustPolicyStatement(
        name=st.name,
        level=level,
        actions=MappingProxyType(actions),
        overrides=MappingProxyType(overrides),
        verify_timestamp=VerifyTimestamp(st.verify_timestamp or VerifyTimestamp.ALWAYS),
        registry_scopes=st.scopes,
        trust_stores=tuple(refs),
        trusted_identities=st.identities,
        global_policy=st.global_policy,
    )


def _inspect(data: bytes, kind: PolicyKind) -> tuple[_RawDocument | None, list[PolicyIssue]]:
    """Decode and validate; the raw document (None when undecodable) plus every issue."""
    try:
        doc = _decode_document(data, kind)
    except _Malformed as exc:
        issue = PolicyIssue(
            rule=PolicyRule.MALFORMED,
            message=f"malformed trust policy ({exc}). To create a trust policy, see: {POLICY_LINK}",
        )
        return None, [issue]
    validator = _Validator(kind)
    validator.document(doc)
    return doc, validator.issues


def parse_oci_policy(data: bytes, source: str = OCI_POLICY_FILE) -> OciTrustPolicy:
    """Decode and validate an OCI trust policy document.

    Raises:
        InvalidTrustPolicy: (a ConfigError) with every problem of the document.
    """
    doc, issues = _inspect(data, PolicyKind.OCI)
    if issues or doc is None:
        raise InvalidTrustPolicy(source, issues)
    return OciTrustPolicy(
        statements=tuple(_build_statement(st) for st in doc.statements), source=source
    )


def parse_blob_policy(data: bytes, source: str = BLOB_POLICY_FILE) -> BlobTrustPolicy:
    """Decode and validate a blob trust policy document.

    Raises:
        InvalidTrustPolicy: (a ConfigError) with every problem of the document.
    """
    doc, issues = _inspect(data, PolicyKind.BLOB)
    if issues or doc is None:
        raise InvalidTrustPolicy(source, issues)
    return BlobTrustPolicy(
        statements=tuple(_build_statement(st) for st in doc.statements), source=source
    )


# ----------------------------------------------------------------------------- files


def _file_issue(rule: PolicyRule, message: str) -> list[PolicyIssue]:
    return [PolicyIssue(rule=rule, message=message)]


def _read_policy_file(path: Path, trust_dir: Path, allow_symlinks: bool) -> bytes:
    """Bytes of one policy file under notation's file rules.

    Raises:
        InvalidTrustPolicy: missing, not a regular file, a symlink or unreadable.
    """
    source = str(path)
    not_regular = (
        "trust policy is not a regular file (symlinks are not supported). To create a trust "
        f"policy, see: {POLICY_LINK}"
    )
    try:
        info = path.lstat()
        if allow_symlinks:
            if not resolves_inside(path, trust_dir):
                outside = f"trust policy {path} is dangling or resolves outside {trust_dir}"
                raise InvalidTrustPolicy(source, _file_issue(PolicyRule.FILE_NOT_REGULAR, outside))
            info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InvalidTrustPolicy(source, _file_issue(PolicyRule.FILE_NOT_REGULAR, not_regular))
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidTrustPolicy(
            source,
            _file_issue(
                PolicyRule.FILE_MISSING,
                f"trust policy is not present. To create a trust policy, see: {POLICY_LINK}",
            ),
        ) from exc
    except OSError as exc:
        raise InvalidTrustPolicy(
            source,
            _file_issue(PolicyRule.FILE_UNREADABLE, f"unable to read trust policy: {exc}"),
        ) from exc


def _oci_policy_path(trust_dir: Path) -> Path:
    """``trustpolicy.oci.json`` unless it does not exist at all (then ``trustpolicy.json``)."""
    primary = trust_dir / OCI_POLICY_FILE
    if not os.path.lexists(primary):
        legacy = trust_dir / LEGACY_POLICY_FILE
        if os.path.lexists(legacy):
            return legacy
    return primary


def load_oci_policy(trust_dir: Path, *, allow_symlinks: bool = False) -> OciTrustPolicy:
    """Load and validate the OCI trust policy of a notation configuration directory.

    Raises:
        InvalidTrustPolicy: (a ConfigError) the file is missing, not regular, or invalid.
    """
    path = _oci_policy_path(trust_dir)
    return parse_oci_policy(_read_policy_file(path, trust_dir, allow_symlinks), str(path))


def load_blob_policy(trust_dir: Path, *, allow_symlinks: bool = False) -> BlobTrustPolicy:
    """Load and validate ``trustpolicy.blob.json``.

    Raises:
        InvalidTrustPolicy: (a ConfigError) the file is missing, not regular, or invalid.
    """
    path = trust_dir / BLOB_POLICY_FILE
    return parse_blob_policy(_read_policy_file(path, trust_dir, allow_symlinks), str(path))


def _refs_of(doc: _RawDocument) -> list[tuple[TrustStoreRef, str]]:
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


def check_trust_dir(
    trust_dir: Path, *, allow_symlinks: bool = False, include_warnings: bool = False
) -> list[str]:
    """Everything wrong with a trust directory, in one pass (``pullgate policy check``).

    Reports every problem of the OCI policy (required) and of the blob policy (when present),
    then every trust store referenced by any statement, of either document, that fails to
    load. With ``include_warnings`` it also lists, prefixed ``warning:``, stores on disk that no
    statement references and statements that skip verification.

    Returns:
        Human-readable problems; empty means the directory is usable.
    """
    if not trust_dir.is_dir():
        return [f"{trust_dir}: trust directory does not exist or is not a directory"]
    problems: list[str] = []
    warnings: list[str] = []
    referenced: list[tuple[TrustStoreRef, str, str]] = []
    documents = [(PolicyKind.OCI, _oci_policy_path(trust_dir))]
    blob_path = trust_dir / BLOB_POLICY_FILE
    if os.path.lexists(blob_path):
        documents.append((PolicyKind.BLOB, blob_path))
    for kind, path in documents:
        try:
            data = _read_policy_file(path, trust_dir, allow_symlinks)
        except InvalidTrustPolicy as exc:
            problems.extend(exc.problems)
            continue
        doc, issues = _inspect(data, kind)
        problems.extend(f"{path}: {issue.message}" for issue in issues)
        if doc is None:
            continue
        referenced.extend((ref, name, str(path)) for ref, name in _refs_of(doc))
        warnings.extend(
            f"warning: {path}: statement {go_quote(st.name)} skips signature verification"
            for st in doc.statements
            if st.level == Level.SKIP
        )
    store = TrustStore(trust_dir, allow_symlinks=allow_symlinks)
    checked: set[TrustStoreRef] = set()
    for ref, statement, source in referenced:
        if ref in checked:
            continue
        checked.add(ref)
        try:
            store.load(ref.type, ref.name)
        except TrustStoreError as exc:
            problems.append(
                f"{source}: statement {go_quote(statement)} uses trust store {ref}: {exc}"
            )
    if include_warnings:
        for store_type, name in store.list_stores():
            if TrustStoreRef(type=store_type, name=name) not in checked:
                warnings.append(
                    f"warning: trust store {store_type.value}:{name} is not referenced by any "
                    "trust policy statement"
                )
        problems.extend(warnings)
    return problems
