"""The vocabulary of named trust stores: types, references, problems, loaded entries.

The rules themselves are applied by :class:`pullgate.verification.truststore.TrustStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509

from pullgate.errors import ConfigError

__all__ = [
    "StoreEntry",
    "StoreKey",
    "StoreProblem",
    "StoreType",
    "TrustStoreError",
    "TrustStoreRef",
]


class StoreType(StrEnum):
    """Trust store types (the directory names under ``truststore/x509``)."""

    CA = "ca"
    SIGNING_AUTHORITY = "signingAuthority"
    TSA = "tsa"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustStoreRef:
    """One ``<type>:<name>`` entry of a statement's ``trustStores``."""

    type: StoreType
    name: str

    def __str__(self) -> str:
        return f"{self.type.value}:{self.name}"


StoreKey = tuple[StoreType, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreEntry:
    """One file of a loaded store: its path, the sha256 hex of the bytes read, its certificates."""

    path: Path
    sha256: str
    certs: tuple[x509.Certificate, ...]


class StoreProblem(StrEnum):
    """Which trust store rule was broken."""

    INVALID_TYPE = "invalid-type"
    INVALID_NAME = "invalid-name"
    NOT_FOUND = "not-found"
    NOT_DIRECTORY = "not-directory"
    OUTSIDE_TRUST_DIR = "outside-trust-dir"
    UNREADABLE = "unreadable"
    ENTRY_NOT_REGULAR = "entry-not-regular"
    BAD_CERTIFICATE = "bad-certificate"
    NOT_CA_OR_SELF_SIGNED = "not-ca-or-self-signed"
    TSA_NOT_ROOT = "tsa-not-root"
    EMPTY = "empty"
    WITHDRAWN = "withdrawn"  # its files changed since the configuration in force loaded them


class TrustStoreError(ConfigError):
    """A named trust store cannot be used. Carries the store and the broken rule."""

    def __init__(
        self, detail: str, *, store_type: StoreType | str, name: str, problem: StoreProblem
    ) -> None:
        super().__init__(detail)
        self.store_type = store_type
        self.name = name
        self.problem = problem
