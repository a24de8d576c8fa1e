"""Trust policy documents: load and select (docs/notation.md §8.1, §8.3).

Files (§8.1): ``trustpolicy.oci.json``, falling back to ``trustpolicy.json`` only when the former
does not exist at all, and ``trustpolicy.blob.json``. Each must be a regular file, not a symlink
(see :mod:`pullgate.verification.truststore` for the opt-in ``allow_symlinks`` mode).

A document is decoded Go-leniently by :mod:`pullgate.verification.policy.document`, then judged as a
whole by :mod:`pullgate.verification.policy.rules`, which reports every problem as a typed
:class:`PolicyIssue`; only a document without issues becomes an :class:`OciTrustPolicy` or a
:class:`BlobTrustPolicy`.

Selection (§8.3): the artifact path is the reference up to its last ``@``; an exact,
case-sensitive scope match wins over the ``*`` statement.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pullgate.errors import MalformedInput, NoApplicablePolicy
from pullgate.verification.outcome import LEVEL_ACTIONS, CheckAction, CheckType, Level
from pullgate.verification.policy.document import PolicyKind, RawStatement
from pullgate.verification.policy.issues import InvalidTrustPolicy, PolicyIssue, PolicyRule
from pullgate.verification.policy.rules import (
    POLICY_LINK,
    VerifyTimestamp,
    inspect_document,
    store_refs,
)
from pullgate.verification.policy.scope import ipv6_locator, scope_problem
from pullgate.verification.truststore import (
    StoreType,
    TrustStore,
    TrustStoreError,
    TrustStoreRef,
    resolves_inside,
)
from pullgate.verification.x509.identity import WILDCARD, go_quote

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
                "fully qualified oci artifact URI without the scheme/protocol. e.g "
                "domain.com:80/my/repository@sha256:digest"
            )
        path = reference[:at]
        problem = scope_problem(path)
        if problem is not None and not ipv6_locator(path):
            raise MalformedInput(problem[1])
        wildcard: TrustPolicyStatement | None = None
        for statement in self.statements:
            if WILDCARD in statement.registry_scopes:
                wildcard = statement
            elif problem is None and path in statement.registry_scopes:
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


def _build_statement(st: RawStatement) -> TrustPolicyStatement:
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


def _statements(data: bytes, kind: PolicyKind, source: str) -> tuple[TrustPolicyStatement, ...]:
    """The statements of a document without issues.

    Raises:
        InvalidTrustPolicy: (a ConfigError) with every problem of the document.
    """
    doc, issues = inspect_document(data, kind)
    if issues or doc is None:
        raise InvalidTrustPolicy(source, issues)
    return tuple(_build_statement(st) for st in doc.statements)


def parse_oci_policy(data: bytes, source: str = OCI_POLICY_FILE) -> OciTrustPolicy:
    """Decode and validate an OCI trust policy document.

    Raises:
        InvalidTrustPolicy: (a ConfigError) with every problem of the document.
    """
    return OciTrustPolicy(statements=_statements(data, PolicyKind.OCI, source), source=source)


def parse_blob_policy(data: bytes, source: str = BLOB_POLICY_FILE) -> BlobTrustPolicy:
    """Decode and validate a blob trust policy document.

    Raises:
        InvalidTrustPolicy: (a ConfigError) with every problem of the document.
    """
    return BlobTrustPolicy(statements=_statements(data, PolicyKind.BLOB, source), source=source)


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
        doc, issues = inspect_document(data, kind)
        problems.extend(f"{path}: {issue.message}" for issue in issues)
        if doc is None:
            continue
        referenced.extend((ref, name, str(path)) for ref, name in store_refs(doc))
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
