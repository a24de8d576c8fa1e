"""The certificate-check memos of one trust snapshot.

Why per snapshot: docs/decisions.md, "Certificate memos are per trust snapshot".

Supports docs/notation.md §6.2 (code-signing chain rules) and §8.5 (trusted identities): every
result memoised here is a pure function of its key, and every key is derived from content alone
(certificate DER bytes or their SHA-256, a distinguished-name string; the per-object facts are
keyed by the object and confirmed by identity), never from the trust material. Only *successful*
outcomes of the expensive checks are stored; a failure is always recomputed, so a memo can never
turn a failure into a success.

A :class:`CertMemo` belongs to one :class:`~pullgate.trust.snapshot.Snapshot` and is handed
explicitly to the verification functions that use it (their ``memo`` argument; None computes
without memoising). Dropping the snapshot drops its memos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509

from pullgate.common.lru import Lru, LruStats

__all__ = ["DEFAULT_CERTIFICATES", "CertFacts", "CertMemo"]

DEFAULT_CERTIFICATES = 256
"""Default ``[cache] certificate_entries``: distinct certificates (and DN texts) remembered."""

# Entries per certificate: the facts memo also holds the trust store's certificate objects;
# the passed-checks memo holds a self-signature, a CA link and a profile check per certificate.
_FACTS_PER_CERT = 2
_CHECKS_PER_CERT = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFacts:
    """What the chain rules need from one certificate object, derived once.

    ``cert`` is held so that the object stays alive (and its ``id`` unique) while memoised
    (:attr:`CertMemo.facts`).
    """

    cert: x509.Certificate
    der: bytes
    digest: bytes
    tbs: bytes
    names: tuple[bytes, bytes] | None


class CertMemo:
    """The five bounded certificate-check memos, each a :class:`~pullgate.common.lru.Lru`.

    Args:
        certificates: Distinct certificates remembered (> 0); the facts memo holds twice as
            many entries and the passed-checks memo four times as many.
    """

    __slots__ = ("__weakref__", "certificates", "checks", "dns", "facts", "loaded", "subjects")

    def __init__(self, certificates: int = DEFAULT_CERTIFICATES) -> None:
        if certificates <= 0:
            raise ValueError("certificates must be > 0")
        self.certificates = certificates
        # Facts per live certificate object, keyed by ``id`` and confirmed with ``is``.
        self.facts: Lru[int, CertFacts] = Lru(
            _FACTS_PER_CERT * certificates, name="certificate facts (by object)"
        )
        # DER -> parsed certificate, for certificates that passed ``load_certificate``.
        self.loaded: Lru[bytes, x509.Certificate] = Lru(
            certificates, name="loaded certificates (by DER)"
        )
        # (check kind, child DER SHA-256, parent DER SHA-256) of checks that passed.
        self.checks: Lru[tuple[str, bytes, bytes], bool] = Lru(
            _CHECKS_PER_CERT * certificates, name="passed certificate checks (by DER digests)"
        )
        # DN text -> parsed attribute map, for texts that parsed.
        self.dns: Lru[str, Mapping[str, str]] = Lru(certificates, name="parsed distinguished names")
        # Certificate DER SHA-256 -> its subject rendered by Go's ``pkix.Name.String()``.
        self.subjects: Lru[bytes, str] = Lru(certificates, name="rendered certificate subjects")

    def fresh(self) -> CertMemo:
        """A new, empty memo of the same size."""
        return CertMemo(self.certificates)

    def clear(self) -> None:
        """Empty every memo (as if no certificate or identity had been seen)."""
        for each in self._all():
            each.clear()

    def stats(self) -> tuple[LruStats, ...]:
        """Statistics of every memo (name, hits, misses, evictions, size, capacity)."""
        return tuple(each.stats() for each in self._all())

    def _all(self) -> tuple[Lru[object, object], ...]:
        memos = (self.facts, self.loaded, self.checks, self.dns, self.subjects)
        return memos  # type: ignore[return-value]
