"""``pullgate serve`` as a real process, started through the console script, for tests and benches.

:class:`DaemonProcess` starts the installed ``pullgate`` console script (next to the running
interpreter, as ``make setup`` installs it), captures its log to a file, waits a bounded time
for its API socket, hands out gRPC clients, reads the process's resident memory, open file
descriptors and threads from ``/proc/<pid>``, and stops it by PID (SIGTERM, bounded wait,
SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc

from tests.support.grpc_harness import Client

CONSOLE_SCRIPT = Path(sys.executable).with_name("pullgate")
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


class DaemonProcess:
    """One ``pullgate serve --config CONFIG`` process (a context manager).

    Args:
        config_path: the daemon config file.
        socket_path: the API socket the config names (waited for by :meth:`wait_socket`).
        log_path: where stdout and stderr go.
        extra_args: more arguments after ``serve``.
    """

    def __init__(
        self,
        config_path: Path,
        socket_path: Path,
        log_path: Path,
        *,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.config_path = config_path
        self.socket_path = socket_path
        self.log_path = log_path
        self._args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None, "not started"
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> DaemonProcess:
        """Start the process (does not wait for the socket)."""
        command = [str(CONSOLE_SCRIPT), "serve", "--config", str(self.config_path), *self._args]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    def wait_socket(self, timeout: float = _START_TIMEOUT) -> None:
        """Wait until the API socket answers a health check.

        Raises:
            AssertionError: the process exited, or no answer within ``timeout`` (with the log).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"pullgate serve exited:\n{self.log()}"
            if self.socket_path.exists():
                client = Client.connect(self.socket_path)
                try:
                    client.health.check("")
                except grpc.RpcError:
                    time.sleep(0.05)  # bound, not answering yet
                    continue
                finally:
                    client.channel.close()
                return
            time.sleep(0.05)
        raise AssertionError(f"no API socket at {self.socket_path}:\n{self.log()}")

    def client(self) -> Client:
        """A new client on the API socket (close its channel when done)."""
        return Client.connect(self.socket_path)

    def send(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the process."""
        self.proc.send_signal(signum)

    def log(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _proc_status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")

    def rss_bytes(self) -> int:
        """Resident set size (``VmRSS``)."""
        return self._proc_status("VmRSS") * 1024

    def threads(self) -> int:
        """Threads of the process."""
        return self._proc_status("Threads")

    def fds(self) -> int:
        """Open file descriptors."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> int:
        """SIGTERM, a bounded wait, then SIGKILL; the exit status."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
