"""Registry scopes of trust policy statements (docs/notation.md §8.3): the distribution
reference grammar notation checks a scope against, and the IPv6 locators no scope can name."""

from __future__ import annotations

import re

from pullgate.verification.policy.issues import PolicyRule
from pullgate.verification.x509.identity import go_quote

__all__ = ["ipv6_locator", "scope_problem"]

# Distribution reference grammar (notation's registry scope check), written without nested
# quantifiers so that Python's backtracking engine stays linear-ish on hostile input.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


_IPV6_DOMAIN = re.compile(r"\[[0-9a-fA-F:]+\](?::[0-9]+)?")


def ipv6_locator(path: str) -> bool:
    """Whether ``path`` is ``[ipv6]:port/repository``: a repository an image reference can
    name (containerd accepts IPv6 registries) that no registry scope can (notation's scope
    grammar has no IPv6), so only the ``*`` statement applies to it."""
    domain, sep, repository = path.partition("/")
    return (
        bool(sep)
        and bool(_IPV6_DOMAIN.fullmatch(domain))
        and bool(_REPOSITORY.fullmatch(repository))
    )


def scope_problem(scope: str) -> tuple[PolicyRule, str] | None:
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
