"""The systemd service notification protocol (sd_notify(3)), without libsystemd.

Implements the client side of systemd's notification protocol as documented in sd_notify(3) and
systemd.service(5) (``Type=notify`` / ``Type=notify-reload``, ``WatchdogSec=``):

* ``$NOTIFY_SOCKET`` names an ``AF_UNIX`` datagram socket: a filesystem path (``/run/...``) or
  an abstract-namespace name written ``@name``. Anything else (unset, empty, ``vsock:``...) means
  "not supervised": every call is a no-op.
* a message is newline-separated ``KEY=VALUE`` assignments sent as one datagram;
* ``READY=1`` once the first valid configuration is loaded and every socket listens;
  ``RELOADING=1`` plus ``MONOTONIC_USEC=<CLOCK_MONOTONIC in microseconds>`` when a reload starts
  (systemd >= 253 requires the timestamp for ``Type=notify-reload``; older versions ignore it),
  then ``READY=1`` when it is done; ``STOPPING=1`` when shutdown begins; ``STATUS=<text>`` for
  ``systemctl status``; ``WATCHDOG=1`` keep-alives when ``$WATCHDOG_USEC`` is set and
  ``$WATCHDOG_PID`` (when present) is this process.

Sending never raises: the daemon must not fail because its supervisor went away. Failures are
logged and reported as ``False``. The environment is passed in (docs/architecture.md §3.5: only
loaders read the process environment), so the composition root calls
``SystemdNotifier.from_environment(os.environ)``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"

_USEC_PER_SECOND = 1_000_000
_NSEC_PER_USEC = 1_000
_MAX_STATUS_CHARS = 1024  # keeps the datagram far below any socket buffer limit


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds, the clock systemd compares ``MONOTONIC_USEC`` with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // _NSEC_PER_USEC


def parse_notify_address(value: str | None) -> bytes | None:
    """The ``AF_UNIX`` address named by ``$NOTIFY_SOCKET``, or None when unusable.

    ``/path`` is a filesystem socket, ``@name`` an abstract one (leading NUL byte on the wire).
    Other forms (empty, relative paths, ``vsock:`` addresses of newer systemd versions) are not
    supported and yield None.
    """
    if not value:
        return None
    if "\0" in value:
        return None
    if value.startswith("/"):
        return os.fsencode(value)
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    return None


def _parse_watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    text = environ.get(WATCHDOG_USEC_ENV, "")
    if not text:
        return None
    owner = environ.get(WATCHDOG_PID_ENV, "")
    if owner and (not owner.isdecimal() or int(owner) != pid):
        return None  # the watchdog is addressed to another process (e.g. our parent)
    if not text.isdecimal() or int(text) <= 0:
        log.warning("systemd: ignoring invalid %s=%r", WATCHDOG_USEC_ENV, text)
        return None
    return int(text)


def _one_line(text: str) -> str:
    """A value safe to put after ``KEY=``: no newlines (they would start a new assignment)."""
    flat = " ".join(text.replace("\0", " ").splitlines())
    return flat[:_MAX_STATUS_CHARS]


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemdNotifier:
    """Sends sd_notify messages to the service manager; a no-op when not supervised.

    Attributes:
        address: the ``AF_UNIX`` address (path bytes, or NUL-prefixed abstract name); None
            disables every message.
        watchdog_usec: the watchdog timeout granted by systemd (``$WATCHDOG_USEC``), if any.
        clock_usec: source of ``MONOTONIC_USEC`` for :meth:`reloading` (injectable for tests).
    """

    address: bytes | None = None
    watchdog_usec: int | None = None
    clock_usec: Callable[[], int] = field(default=monotonic_usec, compare=False)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], *, pid: int | None = None
    ) -> SystemdNotifier:
        """Build the notifier systemd asked for through the process environment.

        Args:
            environ: the environment (normally ``os.environ``); only ``NOTIFY_SOCKET``,
                ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` are read.
            pid: this process's id for the ``WATCHDOG_PID`` check (default ``os.getpid()``).

        Returns:
            A notifier; disabled (every call a no-op) when ``NOTIFY_SOCKET`` is unset or unusable.
        """
        raw = environ.get(NOTIFY_SOCKET_ENV)
        address = parse_notify_address(raw)
        if raw and address is None:
            log.warning(
                "systemd: unsupported %s=%r; notifications disabled", NOTIFY_SOCKET_ENV, raw
            )
        watchdog = _parse_watchdog_usec(environ, os.getpid() if pid is None else pid)
        return cls(address=address, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        """True when a notification socket is configured."""
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send one raw notification datagram (newline-separated ``KEY=VALUE`` lines).

        Returns:
            True when the datagram was handed to the kernel; False when disabled or on error
            (logged, never raised).
        """
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8", errors="replace"), self.address)
        except OSError as exc:
            log.warning("systemd: cannot send %r to the notification socket: %s", message, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up (or a reload) finished; optionally with a ``STATUS=`` line."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify("\n".join(lines))

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC=`` (required by ``Type=notify-reload``)."""
        lines = ["RELOADING=1", f"MONOTONIC_USEC={self.clock_usec()}"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify("\n".join(lines))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: graceful shutdown has begun."""
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify("\n".join(lines))

    def status(self, text: str) -> bool:
        """``STATUS=<text>``: the one-line state shown by ``systemctl status``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1`` keep-alive; a no-op unless systemd enabled the watchdog for us."""
        if self.watchdog_usec is None:
            return False
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """How often to call :meth:`watchdog`, in seconds: half the timeout.

        Returns:
            None when no watchdog is configured for this process (or notifications are off).
        """
        if self.watchdog_usec is None or self.address is None:
            return None
        return self.watchdog_usec / _USEC_PER_SECOND / 2
