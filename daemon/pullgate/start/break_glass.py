"""Break-glass: a file that turns denials into audited allows, for a bounded time.

A broken trust configuration (a CA rotated too early, a registry's signatures gone) must never
brick a node without a way out, and the way out must leave a trail. While the file named by
``[break_glass] file`` exists and is valid, a container start or a pull that would be denied is
allowed with reason ``BREAK_GLASS``: logged at WARNING every time, audited and counted. The file
is TOML (https://toml.io/en/v1.0.0)::

    expires = 2026-12-07T18:00:00Z          # required: a date-time with an offset
    references = ["registry.example.com/team/*"]   # optional; absent = every image
    note = "INC-1234 trust store rollout"   # optional, repeated in every log line

``references`` entries are written like ``[cri] critical_images`` (a digest, a reference, or a
pattern where ``*`` matches within one path component: :mod:`pullgate.oci.critical`).
A container asked for by image ID is covered only by an unrestricted file or by a digest entry
naming that image ID.

The file is refused -- denials stay denials, and the refusal is logged at ERROR with its
cause -- when it is not a regular file owned by root (or the daemon's user) and writable by its
owner only, when it is not valid TOML, has unknown keys, has no offset on ``expires``, when
``expires`` is in the past, or when it is more than 24 hours ahead (a forgotten file must not
switch enforcement off for good). It is re-read whenever it changes (size, mtime, inode, mode,
owner).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pullgate.common.clock import Clock
from pullgate.common.descriptor import is_digest
from pullgate.errors import ConfigError, MalformedInput
from pullgate.oci.critical import CriticalImages
from pullgate.registry.reference import parse_reference

__all__ = ["MAX_AHEAD", "BreakGlass", "BreakGlassFile", "parse_break_glass"]

log = logging.getLogger(__name__)

MAX_AHEAD = timedelta(hours=24)
_MAX_BYTES = 64 * 1024
_KEYS = frozenset({"expires", "references", "note"})


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakGlassFile:
    """A parsed break-glass file (not yet checked against the clock)."""

    expires: datetime
    references: CriticalImages | None  # None: every image
    note: str = ""

    def check(self, now: datetime) -> None:
        """Refuse a file whose expiry is past or more than :data:`MAX_AHEAD` ahead.

        Raises:
            ConfigError: the expiry is outside (now, now + 24 h].
        """
        if self.expires <= now:
            raise ConfigError(f"break-glass file expired at {self.expires.isoformat()}")
        if self.expires - now > MAX_AHEAD:
            raise ConfigError(
                f"break-glass expiry {self.expires.isoformat()} is more than 24 h ahead: "
                "refused (set an expiry within the next 24 hours)"
            )

    def covers(self, reference: str) -> bool:
        """Whether the file applies to ``reference`` (any image when it lists none)."""
        if self.references is None:
            return True
        if is_digest(reference):  # an image ID: would parse as docker.io/library/sha256:<hex>
            return reference in self.references.digests
        try:
            ref = parse_reference(reference)
        except MalformedInput:
            return False
        return self.references.match(ref) is not None


def parse_break_glass(data: bytes) -> BreakGlassFile:
    """Parse a break-glass file's bytes.

    Raises:
        ConfigError: not TOML, unknown keys, a missing or offset-less ``expires``, bad entries.
    """
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"break-glass file is not valid TOML: {exc}") from exc
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise ConfigError(f"break-glass file: unknown keys {unknown}")
    expires = document.get("expires")
    if not isinstance(expires, datetime) or expires.tzinfo is None:
        raise ConfigError(
            "break-glass file: 'expires' must be a TOML date-time with an offset "
            "(e.g. 2026-12-07T18:00:00Z)"
        )
    raw_refs = document.get("references")
    references: CriticalImages | None = None
    if raw_refs is not None:
        if not isinstance(raw_refs, list) or not raw_refs:
            raise ConfigError("break-glass file: 'references' must be a non-empty list")
        references = CriticalImages.parse(raw_refs)
    note = document.get("note", "")
    if not isinstance(note, str):
        raise ConfigError("break-glass file: 'note' must be a string")
    return BreakGlassFile(expires=expires, references=references, note=note)


def _check_owner(st: os.stat_result) -> None:
    """Refuse a file that someone other than root or the daemon's user could have written: it
    switches enforcement off, so whoever may write it holds that power.

    Raises:
        ConfigError: not a regular file, writable by group or others, or owned by another user.
    """
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("break-glass file is not a regular file")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"break-glass file mode {stat.S_IMODE(st.st_mode):04o} lets group or others write "
            "it: refused (chmod go-w)"
        )
    if st.st_uid not in (0, os.geteuid()):
        raise ConfigError(
            f"break-glass file is owned by uid {st.st_uid}, not root or the daemon's user: refused"
        )


class BreakGlass:
    """The break-glass file at ``path``, re-read when it changes. Thread-safe."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._identity: tuple[int, ...] | None = None
        self._parsed: BreakGlassFile | ConfigError | None = None
        self._reported: tuple[tuple[int, ...] | None, str] | None = None
        self.used = 0
        self.refused = 0

    def _load(self) -> BreakGlassFile | ConfigError | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ConfigError(f"break-glass file {self.path}: {exc}")
        identity = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)
        with self._lock:
            if identity == self._identity:
                return self._parsed
        try:
            _check_owner(st)
            if st.st_size > _MAX_BYTES:
                raise ConfigError(f"break-glass file is larger than {_MAX_BYTES} bytes")
            parsed: BreakGlassFile | ConfigError = parse_break_glass(self.path.read_bytes())
        except ConfigError as exc:
            parsed = exc
        except OSError as exc:
            parsed = ConfigError(f"break-glass file {self.path}: {exc}")
        with self._lock:
            self._identity, self._parsed = identity, parsed
        return parsed

    def active(self) -> BreakGlassFile | None:
        """The file in force now, or None (absent, or refused: the refusal is logged)."""
        loaded = self._load()
        if loaded is None:
            return None
        try:
            if isinstance(loaded, ConfigError):
                raise loaded
            loaded.check(self._clock.now())
        except ConfigError as exc:
            self._refuse(exc)
            return None
        return loaded

    def _refuse(self, exc: ConfigError) -> None:
        with self._lock:
            self.refused += 1
            key = (self._identity, exc.detail)
            first = key != self._reported
            self._reported = key
        if first:  # once per file version and cause, not once per denial
            log.error("break-glass file %s refused: %s", self.path, exc.detail)

    def grant(self, reference: str) -> BreakGlassFile | None:
        """The file that turns a denial of ``reference`` into a ``BREAK_GLASS`` allow, or None.
        The caller logs the allow; this counts it."""
        active = self.active()
        if active is None or not active.covers(reference):
            return None
        with self._lock:
            self.used += 1
        return active
