"""Which failure to report when every endpoint failed, containerd's way
(docs/containerd.md §1.7): transport < 404 < other HTTP error < content error.
"""

from __future__ import annotations

from collections.abc import Sequence

from pullgate.errors import PullgateError, Reason, VerificationFailed
from pullgate.registry.model import RegistryError
from pullgate.registry.transport import HttpStatusError, Response

__all__ = [
    "NotFoundEverywhere",
    "error_rank",
    "is_not_found",
    "media_type_of",
    "most_relevant",
]

_TRANSPORT_REASONS = frozenset({Reason.REGISTRY_UNREACHABLE, Reason.REGISTRY_TLS, Reason.TIMEOUT})


def media_type_of(response: Response) -> str:
    """``Content-Type`` without parameters, lower-cased (``""`` when absent)."""
    value = response.header("Content-Type") or ""
    return value.split(";", 1)[0].strip().lower()


def error_rank(err: PullgateError) -> int:
    """containerd's "most advanced error" order: transport < 404 < other HTTP < content."""
    if isinstance(err, VerificationFailed):
        return 3
    if isinstance(err, HttpStatusError):
        return 1 if err.status == 404 else 2
    if err.reason in _TRANSPORT_REASONS:
        return 0
    return 2


def most_relevant(errors: Sequence[PullgateError], what: str) -> PullgateError:
    """The error to report when every endpoint failed (first of the highest rank)."""
    if not errors:
        return RegistryError(Reason.REGISTRY_ERROR, f"{what}: no endpoint to try")
    return max(errors, key=error_rank)  # max() keeps the first of equal rank


def is_not_found(err: PullgateError) -> bool:
    """True for an endpoint's definite "no such content" answer (404 Not Found, 410 Gone)."""
    return isinstance(err, HttpStatusError) and err.status in (404, 410)


class NotFoundEverywhere(VerificationFailed):
    """Every endpoint asked answered 404 Not Found or 410 Gone: ``NOT_FOUND``, definitive.

    containerd fails such a pull with "not found" too; a retry asks the same endpoints.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.NOT_FOUND, detail)
