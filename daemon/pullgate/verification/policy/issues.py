"""Typed trust policy problems (docs/notation.md §8.1 file errors, §8.2 table, §8.4).

Every problem found in a trust policy file or document is a :class:`PolicyIssue` naming the
:class:`PolicyRule` it broke; :class:`InvalidTrustPolicy` carries all of them at once. Tools
and tests assert on the rules, never on the messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pullgate.errors import ConfigError
from pullgate.verification.x509.identity import DnProblem

__all__ = ["InvalidTrustPolicy", "PolicyIssue", "PolicyRule"]


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
