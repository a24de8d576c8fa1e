"""Watch the configuration's directories and reload on change (docs/architecture.md §3.6).

What is watched, always as **directories** (never single files, whose inode a ConfigMap
``..data`` swap or an editor's write-temp-then-rename replaces):

* the config file's directory (not recursive);
* the directory of ``[registry] config_json``, the docker credentials (not recursive);
* the trust directory (recursive: policy files and ``truststore/x509/...``);
* every certs.d root (recursive).

Events that only read (``opened``, ``closed_no_write``) are ignored, or the reload's own reads
would trigger the next reload. Events are debounced: a reload runs once no event has arrived for
``debounce`` seconds (``config.reload_debounce``, default 0.2 s), and at the latest ``5 x
debounce`` after the first event of a burst, so a burst of writes costs one or two reloads and a
single change takes effect well within a second.

Changes made before :meth:`ConfigWatcher.start` (after the snapshot in force was loaded) raised
no event: once the watches exist, the watcher compares the files' digest with the snapshot's
(:meth:`TrustState.differs_on_disk`) and, when they differ or no snapshot is in force, reloads
once through the debounced path.

Directories that do not exist (yet) are handled by watching their nearest existing ancestor
(not recursively): the creation of the missing directory is an event there, after which the
watch set is recomputed. The watch set is recomputed before every reload and after every
successful swap, so a reload that moves ``trust_dir`` or ``hosts_dir`` moves the watches too,
and a watched directory that was deleted and re-created is watched again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from pullgate.config import DaemonConfig, load_config
from pullgate.errors import ConfigError
from pullgate.trust.snapshot import Snapshot
from pullgate.trust.state import TrustState

_LOG = logging.getLogger(__name__)

_MAX_DELAY_FACTOR = 5.0
_DEFAULT_DEBOUNCE = DaemonConfig().reload_debounce
_CHANGE_EVENTS: tuple[type[FileSystemEvent], ...] = (
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
)
_CHANGE_TYPES = frozenset(event.event_type for event in _CHANGE_EVENTS)


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchTarget:
    """A directory to watch."""

    path: Path
    recursive: bool


def watch_targets(config_path: Path | None, config: DaemonConfig) -> tuple[WatchTarget, ...]:
    """The directories whose changes can change a snapshot built from ``config``."""
    targets: list[WatchTarget] = []
    if config_path is not None:
        targets.append(WatchTarget(path=config_path.absolute().parent, recursive=False))
    if config.registry.config_json is not None:
        targets.append(
            WatchTarget(path=config.registry.config_json.absolute().parent, recursive=False)
        )
    targets.append(WatchTarget(path=config.trust_dir.absolute(), recursive=True))
    targets.extend(WatchTarget(path=root.absolute(), recursive=True) for root in config.hosts_dirs)
    merged: dict[Path, bool] = {}
    for target in targets:
        merged[target.path] = merged.get(target.path, False) or target.recursive
    return tuple(WatchTarget(path=path, recursive=rec) for path, rec in merged.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class _Effective:
    """Where a target is really watched: itself, or its nearest existing ancestor."""

    path: Path
    recursive: bool
    identity: tuple[int, int]  # (st_dev, st_ino): a re-created directory is watched again


def _effective(target: WatchTarget) -> _Effective | None:
    path = target.path
    recursive = target.recursive
    while True:
        try:
            info = os.stat(path)
        except OSError:
            info = None
        if info is not None and os.path.isdir(path):
            return _Effective(path=path, recursive=recursive, identity=(info.st_dev, info.st_ino))
        if path.parent == path:
            return None
        path = path.parent
        recursive = False


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ConfigWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGE_TYPES:
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if self._watcher.relevant(os.fsdecode(p) for p in paths if p):
            self._watcher.notify()


class ConfigWatcher:
    """Reloads ``state`` (debounced) when anything under the watched directories changes."""

    def __init__(
        self,
        state: TrustState,
        paths: Sequence[WatchTarget] | None = None,
        *,
        debounce: float | None = None,
        reload: Callable[[str], object] | None = None,
    ) -> None:
        """Create a stopped watcher.

        Args:
            state: the state to reload (``state.reload("watch")``).
            paths: fixed directories to watch; None follows the state: the config file's
                directory plus the trust dir and certs.d roots of the snapshot in force (or of
                ``state.base``/the defaults before the first valid snapshot).
            debounce: quiet period in seconds; None uses the snapshot's
                ``config.reload_debounce``.
            reload: runs one reload, blocking (the daemon's coalescing queue); None calls
                ``state.reload`` directly.
        """
        self._state = state
        self._reload = reload if reload is not None else state.reload
        self._fixed = tuple(paths) if paths is not None else None
        self._debounce = debounce
        self._cond = threading.Condition()
        self._schedule_lock = threading.Lock()
        self._first_event: float | None = None
        self._last_event = 0.0
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None
        self._watches: dict[_Effective, ObservedWatch] = {}
        self._pending: dict[Path, Path] = {}  # missing target -> the ancestor watched for it
        self._handler = _Handler(self)
        self.reloads = 0  # reloads this watcher triggered (diagnostics, tests)

    # ------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start watching (idempotent)."""
        if self._worker is not None:
            return
        self._stopping = False
        self._observer = Observer()
        self._refresh_schedule()
        self._observer.start()
        self._state.add_listener(self._on_swap)
        self._worker = threading.Thread(
            target=self._run, name="pullgate-reload-debounce", daemon=True
        )
        self._worker.start()

    def stop(self) -> None:
        """Stop watching and join every thread this watcher started (idempotent)."""
        self._state.remove_listener(self._on_swap)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        observer = self._observer
        if observer is not None:
            observer.stop()
            observer.join()
            self._observer = None
        with self._schedule_lock:
            self._watches.clear()

    def __enter__(self) -> ConfigWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def watched(self) -> tuple[Path, ...]:
        """The directories being watched right now (diagnostics, tests)."""
        with self._schedule_lock:
            return tuple(effective.path for effective in self._watches)

    # ------------------------------------------------------------------------- events

    def relevant(self, paths: Iterable[str]) -> bool:
        """Whether a change at any of ``paths`` can change the snapshot.

        Inside a recursive target (trust dir, certs.d roots) everything counts. In the config
        file's directory and the docker ``config.json``'s, only the file itself and Kubernetes
        ConfigMap/Secret internals (``..data``, ``..<timestamp>``) count — not the logs,
        backups or other files an operator keeps there. An ancestor of a target that does not
        exist yet counts, so its creation is seen.
        """
        config = self._config()  # may read the config file: once per call
        targets = self._targets(config)
        with self._schedule_lock:
            pending = dict(self._pending)
        files = self._files(config)
        for raw in paths:
            path = Path(raw)
            for file in files:
                if path == file or (path.parent == file.parent and path.name.startswith("..")):
                    return True
            for target in targets:
                if target.recursive and (path == target.path or target.path in path.parents):
                    return True
            for target_path, watched_at in pending.items():
                # A target that does not exist yet is watched through an ancestor: only entries
                # below that ancestor on the way to the target count (not the ancestor itself).
                if path != watched_at and (path == target_path or path in target_path.parents):
                    return True
        return False

    def notify(self) -> None:
        """Record a change; the reload follows once things are quiet."""
        now = time.monotonic()
        with self._cond:
            if self._first_event is None:
                self._first_event = now
            self._last_event = now
            self._cond.notify_all()

    def _on_swap(self, _snapshot: Snapshot) -> None:
        self._refresh_schedule()

    def _current_debounce(self) -> float:
        if self._debounce is not None:
            return self._debounce
        snapshot = self._state.current()
        if snapshot is not None:
            return snapshot.config.reload_debounce
        return _DEFAULT_DEBOUNCE

    def _wait_for_burst(self) -> bool:
        """Block until a debounced burst is due; False when stopping."""
        with self._cond:
            while not self._stopping and self._first_event is None:
                self._cond.wait()
            while not self._stopping and self._first_event is not None:
                debounce = self._current_debounce()
                due = min(
                    self._last_event + debounce,
                    self._first_event + _MAX_DELAY_FACTOR * debounce,
                )
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._stopping:
                return False
            self._first_event = None
            return True

    def _run(self) -> None:
        # Catch up: a change made after the snapshot in force was loaded but before the watches
        # existed (start-up load -> start()) raised no event; reload once through the debounce.
        if self._state.differs_on_disk():
            self.notify()
        while self._wait_for_burst():
            self._refresh_schedule()
            self.reloads += 1
            self._reload("watch")

    # ------------------------------------------------------------------------- schedule

    def _targets(self, config: DaemonConfig) -> tuple[WatchTarget, ...]:
        if self._fixed is not None:
            return self._fixed
        return watch_targets(self._state.config_path, config)

    def _files(self, config: DaemonConfig) -> tuple[Path, ...]:
        """The single files whose changes count: the config file and the docker config."""
        files: list[Path] = []
        if self._state.config_path is not None:
            files.append(self._state.config_path.absolute())
        config_json = config.registry.config_json
        if config_json is not None:
            files.append(config_json.absolute())
        return tuple(files)

    def _config(self) -> DaemonConfig:
        """The configuration whose paths are watched: the snapshot's in force; before any, the
        config file's as it reads now (its trust_dir may be missing: that is why no snapshot
        loaded, and creating it must be seen); else the base or the defaults."""
        snapshot = self._state.current()
        if snapshot is not None:
            return snapshot.config
        if self._state.config_path is not None:
            try:
                return load_config(self._state.config_path)
            except ConfigError:
                pass  # a broken config file: its own changes are watched (see _files)
        return self._state.base or DaemonConfig()

    def _refresh_schedule(self) -> None:
        """Make the observer watch exactly the effective directories of the targets."""
        with self._schedule_lock:
            observer = self._observer
            if observer is None:
                return
            targets = self._targets(self._config())
            effectives = [(t, _effective(t)) for t in targets]
            self._pending = {
                t.path: e.path for t, e in effectives if e is not None and e.path != t.path
            }
            wanted = {e for _, e in effectives if e is not None}
            for effective in set(self._watches) - wanted:
                try:
                    observer.unschedule(self._watches.pop(effective))
                except (KeyError, OSError):
                    _LOG.debug("watch on %s was already gone", effective.path)
            for effective in wanted - set(self._watches):
                try:
                    self._watches[effective] = observer.schedule(
                        self._handler,
                        effective.path,
                        recursive=effective.recursive,
                        event_filter=list(_CHANGE_EVENTS),
                    )
                except OSError as exc:
                    _LOG.error("cannot watch %s: %s", effective.path, exc)
