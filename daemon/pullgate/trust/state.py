"""The daemon's current trust snapshot: atomic swap, last-good kept (docs/architecture.md §3.6).

:class:`TrustState` holds one reference to the current :class:`Snapshot`. A reload (from the
file watcher, SIGHUP or the ``Reload`` RPC) builds a complete new snapshot and only then swaps
the reference; on any error the last good snapshot stays in force, the error is recorded,
logged and counted, and the state reports itself *degraded* until a reload succeeds. What stays
in force never trusts a certificate whose file was deleted or changed since it was loaded:
after a failed reload the last good snapshot is put in force without those files
(:func:`pullgate.trust.withdrawal.withdraw_changed`). Reloads are serialised; readers never
block (``current()`` is one attribute read).

Listeners registered with :meth:`TrustState.add_listener` run after every successful swap (and
after a failed reload that withdrew trust files from the snapshot in force), in
the reloading thread (the server flips its health status there; the decision cache needs
nothing, because the snapshot digest is part of its key).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from pullgate.common.clock import Clock
from pullgate.config import DaemonConfig
from pullgate.errors import ConfigError, PullgateError, Reason
from pullgate.trust.snapshot import Snapshot, build_snapshot, disk_digest
from pullgate.trust.withdrawal import HASH_WITHDRAWN, withdraw_changed

_LOG = logging.getLogger(__name__)

Listener = Callable[[Snapshot], None]
SnapshotBuilder = Callable[[Path | None, int], Snapshot]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadResult:
    """The outcome of one reload attempt."""

    ok: bool
    trigger: str  # "startup" | "watch" | "sighup" | "rpc" | …
    generation: int  # the generation in force after the attempt (0 = none)
    finished_at: datetime
    error: str = ""
    reason: Reason | None = None  # CONFIG for bad configuration, INTERNAL for a bug
    problems: tuple[str, ...] = ()  # every problem (failure) or non-fatal problems (success)
    digest: str = ""  # the digest in force after the attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class StateStatus:
    """What ``Status`` and health details report about the configuration."""

    generation: int
    hashes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    digest: str = ""
    last_reload: ReloadResult | None = None
    degraded: bool = True
    degraded_reason: str = ""
    problems: tuple[str, ...] = ()  # non-fatal problems of the snapshot in force
    certs_d_problems: tuple[str, ...] = ()  # the broken certs.d entries among them
    reloads_ok: int = 0
    reloads_failed: int = 0


class TrustState:
    """The current snapshot, swapped atomically; thread-safe, reloads serialised."""

    def __init__(
        self,
        config_path: Path | None,
        *,
        clock: Clock,
        base: DaemonConfig | None = None,
        builder: SnapshotBuilder | None = None,
    ) -> None:
        """Create an empty state (no snapshot until the first successful :meth:`reload`).

        Args:
            config_path: the daemon config file; None uses ``base`` (or the defaults).
            clock: time source for snapshots and reload results.
            base: the configuration used when there is no config file.
            builder: builds a snapshot from (config path, generation); defaults to
                :func:`build_snapshot` with ``clock`` and ``base`` (a seam for tests).
        """
        self.config_path = config_path
        self.base = base
        self._clock = clock
        self._builder = builder
        self._snapshot: Snapshot | None = None
        self._good: Snapshot | None = None  # the last snapshot a reload built
        self._reload_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._last: ReloadResult | None = None
        self._ok = 0
        self._failed = 0
        self._listeners: list[Listener] = []

    def current(self) -> Snapshot | None:
        """The snapshot in force (None until a configuration has loaded successfully)."""
        return self._snapshot

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(snapshot)`` after every change of the snapshot in force."""
        with self._status_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (no-op when it is not registered)."""
        with self._status_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def differs_on_disk(self) -> bool:
        """Whether the files differ from what the snapshot in force was built from.

        True as well when no snapshot is in force, when the config file is unusable and with a
        custom ``builder`` (whose digests this cannot recompute): a reload then decides.
        """
        snapshot = self._snapshot
        if snapshot is None or self._builder is not None:
            return True
        try:
            return disk_digest(self.config_path, base=self.base) != snapshot.digest
        except PullgateError:
            return True

    def _build(self, generation: int) -> Snapshot:
        if self._builder is not None:
            return self._builder(self.config_path, generation)
        return build_snapshot(self.config_path, generation, clock=self._clock, base=self.base)

    def reload(self, reason: str) -> ReloadResult:
        """Build a complete new snapshot and swap it in; keep the last good one on any error.

        Args:
            reason: what triggered the reload (``startup``, ``watch``, ``sighup``, ``rpc``).

        Returns:
            The result (also kept as :attr:`StateStatus.last_reload`). Never raises for a bad
            configuration: failures are results.
        """
        with self._reload_lock:
            previous = self._snapshot
            generation = previous.generation if previous is not None else 0
            try:
                snapshot = self._build(generation + 1)
            except PullgateError as exc:
                problems = exc.problems if isinstance(exc, ConfigError) else (exc.detail,)
                previous = self._withdraw_changed()
                return self._failed_result(reason, previous, exc.reason, str(exc), problems)
            except Exception as exc:  # noqa: BLE001  (a bug must not cost the last good one)
                _LOG.exception("configuration reload (%s) crashed", reason)
                detail = f"internal error while loading the configuration: {exc!r}"
                previous = self._withdraw_changed()
                return self._failed_result(reason, previous, Reason.INTERNAL, detail, (detail,))
            self._snapshot = self._good = snapshot
            result = ReloadResult(
                ok=True,
                trigger=reason,
                generation=snapshot.generation,
                finished_at=self._clock.now(),
                problems=snapshot.problems,
                digest=snapshot.digest,
            )
            with self._status_lock:
                self._last = result
                self._ok += 1
            _LOG.info(
                "configuration generation %d loaded (%s), digest %s",
                snapshot.generation,
                reason,
                snapshot.digest,
            )
            for problem in snapshot.problems:
                _LOG.warning("configuration problem (not fatal): %s", problem)
            self._notify(snapshot)
            return result

    def _notify(self, snapshot: Snapshot) -> None:
        """Call every listener with the snapshot now in force."""
        with self._status_lock:
            listeners = tuple(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception:  # noqa: BLE001  (one listener must not stop the others)
                _LOG.exception("reload listener %r failed", listener)

    def _withdraw_changed(self) -> Snapshot | None:
        """Put the last good snapshot in force without the trust files changed since it loaded
        them (called with the reload lock held); the snapshot now in force."""
        good = self._good
        if good is None:
            return self._snapshot
        try:
            kept = withdraw_changed(good)
        except Exception:  # noqa: BLE001  (cannot tell what changed: trust nothing of it)
            _LOG.exception("checking the trust files in force failed; withdrawing every store")
            kept = withdraw_changed(good, everything=True)
        current = self._snapshot
        if current is None or current.digest != kept.digest:
            self._snapshot = kept
            for note in kept.problems[len(good.problems) :]:
                _LOG.error("after the failed reload: %s", note)
            # A withdrawal changes what is trusted: audits of running containers must rerun.
            self._notify(kept)
        return kept

    def _failed_result(
        self,
        trigger: str,
        previous: Snapshot | None,
        reason: Reason,
        error: str,
        problems: tuple[str, ...],
    ) -> ReloadResult:
        result = ReloadResult(
            ok=False,
            trigger=trigger,
            generation=previous.generation if previous is not None else 0,
            finished_at=self._clock.now(),
            error=error,
            reason=reason,
            problems=tuple(problems),
            digest=previous.digest if previous is not None else "",
        )
        with self._status_lock:
            self._last = result
            self._failed += 1
        kept = f"keeping generation {previous.generation}" if previous else "no valid configuration"
        _LOG.error("configuration reload (%s) failed, %s: %s", trigger, kept, error)
        return result

    def status(self) -> StateStatus:
        """Generation, hashes, last reload result and whether the daemon is degraded."""
        with self._status_lock:
            snapshot = self._snapshot
            last = self._last
            ok, failed = self._ok, self._failed
        if snapshot is None:
            degraded, why = True, "no valid configuration has been loaded"
            if last is not None and not last.ok:
                why = f"{why}: {last.error}"
        elif last is not None and not last.ok:
            degraded = True
            why = f"last reload failed, generation {snapshot.generation} still in force: "
            why += last.error
            if HASH_WITHDRAWN in snapshot.hashes:
                why += "; trust-store files changed since it loaded are withdrawn (see problems)"
        else:
            degraded, why = False, ""
        return StateStatus(
            generation=snapshot.generation if snapshot is not None else 0,
            hashes=snapshot.hashes if snapshot is not None else MappingProxyType({}),
            digest=snapshot.digest if snapshot is not None else "",
            last_reload=last,
            degraded=degraded,
            degraded_reason=why,
            problems=snapshot.problems if snapshot is not None else (),
            certs_d_problems=snapshot.certs_d_problems if snapshot is not None else (),
            reloads_ok=ok,
            reloads_failed=failed,
        )
