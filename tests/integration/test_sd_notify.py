"""``pullgate serve`` speaks sd_notify: READY=1, RELOADING=1/READY=1 on SIGHUP, STOPPING=1.

The daemon runs as a subprocess with ``NOTIFY_SOCKET`` pointing at a datagram socket this test
owns, exactly as systemd runs a ``Type=notify`` service (systemd/pullgate.service). Skipped only
while the daemon's composition root (``pullgate.server.app``) does not exist yet.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_TRUST = REPO / "packaging" / "trust"
WAIT = 60.0  # seconds to wait for one message: a bound, not an assertion

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("pullgate.server.app") is None,
        reason="the daemon (pullgate.server.app) is not in this tree yet",
    ),
]


@pytest.fixture
def workdir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 108 bytes: keep them short, not under pytest's tmp_path.
    path = Path(tempfile.mkdtemp(prefix="pg-notify-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _messages(sock: socket.socket, proc: subprocess.Popen[bytes]) -> Iterator[dict[str, str]]:
    """Notifications as they arrive; fails fast when the daemon exits or stays silent."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            data = sock.recv(65536).decode()
        except TimeoutError:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"daemon exited with {proc.returncode} before notifying: {err}")
            if time.monotonic() > deadline:
                pytest.fail("no sd_notify message within the wait bound (notifier not wired?)")
            continue
        deadline = time.monotonic() + WAIT
        yield dict(line.split("=", 1) for line in data.split("\n") if "=" in line)


def _next_with(messages: Iterator[dict[str, str]], key: str) -> dict[str, str]:
    """The next message carrying ``key`` (STATUS-only and WATCHDOG messages are skipped)."""
    for message in messages:
        if key in message:
            return message
        unexpected = set(message) - {"STATUS", "WATCHDOG", "MAINPID", "ERRNO"}
        assert not unexpected, f"unexpected notification {message} while waiting for {key}"
    raise AssertionError("unreachable")


def test_daemon_notifies_ready_reloading_stopping(workdir: Path) -> None:
    shutil.copytree(SAMPLE_TRUST, workdir / "trust")
    config = workdir / "config.toml"
    config.write_text(
        f'trust_dir = "{workdir / "trust"}"\n'
        'hosts_dir = ""\n'
        "[api]\n"
        f'socket = "{workdir / "api.sock"}"\n'
        "[metrics]\n"
        'address = ""\n'
        "[verification]\n"
        f'crl_cache_dir = "{workdir / "crl"}"\n'
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(os.fsencode(workdir / "notify.sock"))
        notify.settimeout(1.0)
        env = {**os.environ, "NOTIFY_SOCKET": str(workdir / "notify.sock")}
        env.pop("WATCHDOG_USEC", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pullgate", "serve", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            messages = _messages(notify, proc)
            ready = _next_with(messages, "READY")
            assert ready["READY"] == "1"
            assert (workdir / "api.sock").is_socket()  # READY only once the sockets listen

            proc.send_signal(signal.SIGHUP)
            reloading = _next_with(messages, "RELOADING")
            assert reloading["RELOADING"] == "1"
            assert int(reloading["MONOTONIC_USEC"]) > 0
            assert _next_with(messages, "READY")["READY"] == "1"

            proc.send_signal(signal.SIGTERM)
            assert _next_with(messages, "STOPPING")["STOPPING"] == "1"
            assert proc.wait(timeout=WAIT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
