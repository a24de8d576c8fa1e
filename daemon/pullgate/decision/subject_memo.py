"""Subject verdicts reused across decisions of one configuration snapshot, per manifest digest.

A bindir-verifier decision for an index verifies every platform manifest; the node's CRI
decision, other tags of the same content and the next decision for the index verify many of the
same digests again. A subject's verdict depends only on the snapshot (trust policy, stores,
bounds), the repository its signatures are read from, the statement that judges it and its
digest, so it is memoised under exactly those (the memo belongs to one snapshot).

Lifetimes follow the decision cache (:mod:`pullgate.decision.cache`): a verified subject lives
``min(max_ttl, valid_until - now)``; a definitive failure ``negative_ttl``; an inconclusive one is
never kept (the next decision retries). The memo is a bounded LRU (``[cache] max_entries``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from pullgate.common.clock import Clock
from pullgate.common.lru import Lru
from pullgate.config import CacheConfig
from pullgate.decision.combine import Subject

__all__ = ["SubjectKey", "SubjectMemo"]

SubjectKey = tuple[str, str, str]  # repository, statement, digest


class SubjectMemo:
    """Definitive subject verdicts of one snapshot (thread-safe)."""

    def __init__(self, config: CacheConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._memo: Lru[SubjectKey, tuple[datetime, Subject]] = Lru(
            config.max_entries, name="subjects"
        )

    def get(self, key: SubjectKey, role: str, platform: str | None) -> Subject | None:
        """The live verdict for ``key``, labelled with ``role`` and ``platform``, or None."""
        found = self._memo.get(key)
        if found is None or found[0] <= self._clock.now():
            return None
        subject = found[1]
        return replace(subject, decision=replace(subject.decision, role=role, platform=platform))

    def put(self, key: SubjectKey, subject: Subject) -> None:
        """Keep ``subject`` for as long as its kind may be reused (inconclusive: not at all)."""
        if subject.inconclusive:
            return
        now = self._clock.now()
        if subject.decision.verified:
            expires = now + timedelta(seconds=self._config.max_ttl)
            if subject.valid_until is not None:
                expires = min(expires, subject.valid_until)
        else:
            expires = now + timedelta(seconds=self._config.negative_ttl)
        if expires > now:
            slim = replace(subject, decision=replace(subject.decision, outcome=None))
            self._memo.put(key, (expires, slim))

    def __len__(self) -> int:
        """Entries held (live or expired)."""
        return len(self._memo)
