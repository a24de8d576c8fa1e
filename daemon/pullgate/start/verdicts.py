"""Verdicts bound to content: what each allow covered, kept for the container-start gate.

A runtime starts a container from an image ID (the config digest of the manifest it stored),
not from the reference a pull verified. Every allow the decision layer makes is recorded here as
one :class:`CoveredImage` per manifest it covered: the top-level digest, the manifest digest,
its config digest, the repository (``registry/repository``, registry in canonical form), the
trust-policy statement, the platform and the digest of the trust snapshot that decided.

Records survive reloads as history, but a record is *current* only under the snapshot that made
it: after a CA is removed or a statement changes, nothing recorded before counts until the
image is verified again. A lookup may also bound a record's age (the decision cache's
``max_ttl``): a certificate revoked since, with no reload, is then seen at the next decision.
A record keeps the time its evidence was gathered: an allow the decision layer computed
records (or refreshes) it, while a cache hit of that allow, which carries no newer evidence,
writes nothing when an identical record is already held (it only keeps it most recently used),
so a warm decision costs a lookup, not a record (docs/decisions.md, "A cache hit does not
re-record an allow").
The store is a bounded LRU over config digests (``max_images``), each
with at most ``max_repositories`` repositories (the same bytes pushed to several repositories
are judged per repository: another statement may govern each). Thread-safe; every operation is
an in-memory lookup under one short lock, so a create-time check never waits on I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pullgate.common.descriptor import is_digest
from pullgate.common.lru import Lru
from pullgate.decision.model import Content, Decision
from pullgate.errors import MalformedInput, Reason
from pullgate.registry.reference import parse_reference

__all__ = ["CoveredImage", "Lookup", "VerdictStore", "repository_of"]


def repository_of(reference: str) -> str | None:
    """The canonical ``registry/repository`` of ``reference``, or None when it names none
    (an image ID, a bare digest, anything unparsable)."""
    if is_digest(reference):
        return None
    try:
        return parse_reference(reference).policy_locator
    except MalformedInput:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CoveredImage:
    """One manifest an allow covered, and under what it was allowed."""

    config_digest: str  # the image ID
    manifest_digest: str
    top_digest: str  # index or manifest digest the pull resolved to
    repository: str
    reference: str  # as the front end asked
    statement: str | None
    platform: str | None
    snapshot: str  # trust snapshot digest that decided
    reason: Reason  # VERIFIED, SKIPPED_BY_POLICY, AUDIT_ONLY
    recorded_at: float  # POSIX seconds


def _same(record: CoveredImage, decision: Decision, content: Content, snapshot: str) -> bool:
    """Whether ``record`` is what recording ``content`` of ``decision`` would write (its
    repository follows from the reference; its time is not compared)."""
    return (
        record.snapshot == snapshot
        and record.reference == decision.reference
        and record.top_digest == decision.digest
        and record.manifest_digest == content.manifest_digest
        and record.statement == decision.statement
        and record.platform == content.platform
        and record.reason is decision.reason
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    """What the store knows about an image ID in a repository."""

    current: CoveredImage | None  # an allow under the snapshot in force, fresh enough
    previous: CoveredImage | None  # the latest other allow (another snapshot, or too old)


class VerdictStore:
    """Bounded store of :class:`CoveredImage` records (see the module docstring)."""

    def __init__(
        self,
        *,
        max_images: int = 10_000,
        max_repositories: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._images: Lru[str, Lru[str, CoveredImage]] = Lru(
            max_images, name="start verdicts", on_evict=self._dropped_image
        )
        self._max_images = max_images
        self._max_repositories = max_repositories
        self._clock = clock
        self._recorded = 0
        self._evicted = 0

    def record(self, decision: Decision, snapshot: str) -> int:
        """Record what allowed ``decision`` covered under ``snapshot``; the number of records
        written (0 for a deny, a fail-open allow, an allow that bound no content, and a cache
        hit whose records are all held already)."""
        if not decision.allowed or decision.fail_open or not decision.content:
            return 0
        if decision.cache_hit and self._held(decision, snapshot):
            return 0
        repository = repository_of(decision.reference)
        if repository is None:
            return 0
        now = self._clock()
        records = [
            CoveredImage(
                config_digest=content.config_digest,
                manifest_digest=content.manifest_digest,
                top_digest=decision.digest,
                repository=repository,
                reference=decision.reference,
                statement=decision.statement,
                platform=content.platform,
                snapshot=snapshot,
                reason=decision.reason,
                recorded_at=now,
            )
            for content in decision.content
        ]
        with self._lock:
            for record in records:
                self._put(record)
        return len(records)

    def _held(self, decision: Decision, snapshot: str) -> bool:
        """Whether every record ``decision`` would write is held as it would be written (bar
        its time); each one looked at is marked most recently used."""
        with self._lock:
            for content in decision.content:
                repos = self._images.get(content.config_digest)
                if repos is None:
                    return False
                held = repos.items()  # least recently used first; usually one
                for position, (repository, record) in enumerate(reversed(held)):
                    if record.reference == decision.reference:
                        if not _same(record, decision, content, snapshot):
                            return False
                        if position:
                            repos.get(repository)
                        break
                else:
                    return False
        return True

    def _put(self, record: CoveredImage) -> None:
        repos = self._images.get(record.config_digest)
        if repos is None:
            repos = Lru(self._max_repositories, on_evict=self._dropped_record)
            self._images.put(record.config_digest, repos)
        repos.put(record.repository, record)
        self._recorded += 1

    def _dropped_image(self, _digest: str, repos: Lru[str, CoveredImage]) -> None:
        self._evicted += len(repos)

    def _dropped_record(self, _repository: str, _record: CoveredImage) -> None:
        self._evicted += 1

    def lookup(
        self,
        config_digest: str,
        repository: str | None,
        snapshot: str,
        max_age: float | None = None,
    ) -> Lookup:
        """The allows recorded for ``config_digest`` in ``repository`` (None: any repository,
        for a container asked for by image ID, which names no repository). With ``max_age``,
        a record older than that many seconds is not current (it is history): an allow's
        evidence (revocation status, certificate validity) is only as fresh as its decision."""
        with self._lock:
            repos = self._images.get(config_digest)
            if repos is None:
                return Lookup(current=None, previous=None)
            if repository is None:
                candidates = [record for _, record in repos.items()]
            else:
                found = repos.peek(repository)
                candidates = [found] if found is not None else []
        oldest = None if max_age is None else self._clock() - max_age
        # newest first: the first current record, and the first other one
        current = previous = None
        for record in reversed(candidates):
            if (
                current is None
                and record.snapshot == snapshot
                and (oldest is None or record.recorded_at >= oldest)
            ):
                current = record
            elif previous is None:
                previous = record
            if current is not None and previous is not None:
                break
        return Lookup(current=current, previous=previous)

    def records(self) -> list[CoveredImage]:
        """Every record, least recently used first (for the node audit)."""
        with self._lock:
            return [r for _, repos in self._images.items() for _, r in repos.items()]

    def stats(self) -> dict[str, int]:
        """``images`` held, ``recorded`` and ``evicted`` so far."""
        with self._lock:
            return {
                "images": len(self._images),
                "recorded": self._recorded,
                "evicted": self._evicted,
            }
