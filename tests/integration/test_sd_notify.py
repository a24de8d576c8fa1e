"""``pullgate serve`` speaks sd_notify: READY=1, RELOADING=1/READY=1 on SIGHUP, STOPPING=1.

The daemon runs as a subprocess with ``NOTIFY_SOCKET`` pointing at a datagram socket this test
owns, exactly as systemd runs a ``Type=notify`` service (systemd/pullgate.service). Skipped only
while the daemon's composition root (``pullgate.service.app``) does not exist yet.
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
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.docker_registry import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE_TRUST = REPO / "packaging" / "trust"
WAIT = 60.0  # seconds to wait for one message: a bound, not an assertion
QUIET = 1.0  # seconds without a message that show none was sent
# The daemon under test is this tree's, whatever pullgate the interpreter has installed.
PYTHONPATH = f"{REPO / 'daemon'}{os.pathsep}{REPO}"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("pullgate.service.app") is None,
        reason="the daemon (pullgate.service.app) is not in this tree yet",
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


def _config(workdir: Path, *, metrics_port: int | None = None) -> Path:
    """The daemon's config in ``workdir`` (trust dir ``workdir/trust``; metrics off unless a
    port is given)."""
    config = workdir / "config.toml"
    address = f"127.0.0.1:{metrics_port}" if metrics_port is not None else ""
    config.write_text(
        f'trust_dir = "{workdir / "trust"}"\n'
        'hosts_dir = ""\n'
        "[api]\n"
        f'socket = "{workdir / "api.sock"}"\n'
        "[metrics]\n"
        f'address = "{address}"\n'
        "[verification]\n"
        f'crl_cache_dir = "{workdir / "crl"}"\n'
    )
    return config


@contextmanager
def _notifying_daemon(
    workdir: Path, config: Path
) -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """``pullgate serve`` (this tree) with ``NOTIFY_SOCKET`` at a datagram socket read here;
    killed if still running at the end."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(os.fsencode(workdir / "notify.sock"))
        notify.settimeout(1.0)
        env = {**os.environ, "NOTIFY_SOCKET": str(workdir / "notify.sock")}
        env["PYTHONPATH"] = PYTHONPATH
        env.pop("WATCHDOG_USEC", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pullgate", "serve", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            yield notify, proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()


def test_daemon_notifies_ready_reloading_stopping(workdir: Path) -> None:
    shutil.copytree(SAMPLE_TRUST, workdir / "trust")
    with _notifying_daemon(workdir, _config(workdir)) as (notify, proc):
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


def _failed_reloads(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith('pullgate_reloads_total{outcome="error"} '):
            return float(line.rpartition(" ")[2])
    return 0.0


def _assert_quiet(sock: socket.socket) -> None:
    """No notification arrives for ``QUIET`` seconds."""
    sock.settimeout(QUIET)
    try:
        sent = sock.recv(65536).decode()
    except TimeoutError:
        return
    finally:
        sock.settimeout(1.0)
    pytest.fail(f"unexpected notification {sent!r}")


def _wait_for_failed_reloads(port: int, count: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while _failed_reloads(port) < count:
        assert proc.poll() is None, "daemon exited"
        assert time.monotonic() < deadline, f"never saw {count} failed reloads"
        time.sleep(0.05)


def test_sighup_without_a_valid_configuration_sends_no_ready(workdir: Path) -> None:
    """READY=1 only once a valid configuration enforces: a SIGHUP whose reload fails again
    (never a valid configuration) must not announce a started service; the first valid
    configuration does, and from then on SIGHUP is RELOADING=1 then READY=1."""
    port = free_port()
    config = _config(workdir, metrics_port=port)  # the trust dir does not exist yet
    with _notifying_daemon(workdir, config) as (notify, proc):
        _wait_for_failed_reloads(port, 1, proc)  # start-up: no valid configuration
        time.sleep(QUIET)  # the watcher's catch-up reload (fails as well) is over
        failed = _failed_reloads(port)
        proc.send_signal(signal.SIGHUP)
        messages = _messages(notify, proc)
        assert _next_with(messages, "RELOADING")["RELOADING"] == "1"
        _wait_for_failed_reloads(port, failed + 1, proc)  # the SIGHUP reload failed too
        _assert_quiet(notify)  # no READY=1 without a valid configuration

        shutil.copytree(SAMPLE_TRUST, workdir / "trust")  # the fix, loaded by a SIGHUP
        proc.send_signal(signal.SIGHUP)
        assert _next_with(messages, "RELOADING")["RELOADING"] == "1"
        assert _next_with(messages, "READY")["READY"] == "1"  # the first READY, once
        _assert_quiet(notify)

        proc.send_signal(signal.SIGHUP)
        assert _next_with(messages, "RELOADING")["RELOADING"] == "1"
        assert _next_with(messages, "READY")["READY"] == "1"

        proc.send_signal(signal.SIGTERM)
        assert _next_with(messages, "STOPPING")["STOPPING"] == "1"
        assert proc.wait(timeout=WAIT) == 0
