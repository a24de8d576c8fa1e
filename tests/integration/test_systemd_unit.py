"""systemd/pullgate.service passes ``systemd-analyze verify``; the sd_notify client works.

How the unit is verified without installing it: ``systemd-analyze verify --root=ROOT`` loads the
*unmodified* unit from a scratch root that holds a copy of the host's system units
(``sysinit.target`` & co. must resolve), an executable stand-in at the ExecStart path
``/opt/pullgate/bin/pullgate`` and ``/bin/kill`` for ExecReload. ``verify`` exits 0 even for
settings it ignores (typos, bad values), so the test also requires it to print nothing.

The notifier tests own a real ``AF_UNIX`` datagram socket (filesystem and abstract namespace)
and read what :class:`pullgate.service.systemd.SystemdNotifier` sends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullgate.service.systemd import SystemdNotifier, parse_notify_address

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "pullgate.service"
SYSTEM_UNITS = Path("/lib/systemd/system")
ANALYZE = shutil.which("systemd-analyze")


def _verify(unit_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    units = root / "lib" / "systemd" / "system"
    if not units.exists():
        shutil.copytree(SYSTEM_UNITS, units, symlinks=True)
        exec_start = root / "opt" / "pullgate" / "bin" / "pullgate"
        exec_start.parent.mkdir(parents=True)
        exec_start.write_text("#!/bin/sh\nexit 0\n")
        exec_start.chmod(0o755)
        (root / "bin").mkdir(exist_ok=True)
        shutil.copy2("/bin/kill", root / "bin" / "kill")
    (units / "pullgate.service").write_text(unit_text)
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", f"--root={root}", "--man=no", "/lib/systemd/system/pullgate.service"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


needs_analyze = pytest.mark.skipif(
    ANALYZE is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze not installed (Debian package 'systemd')",
)


@needs_analyze
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    result = _verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@needs_analyze
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ProtectSystem=strict", "ProtectSystem=bogus"),  # ignored value: rc 0 but reported
        ("Type=notify", "Typ=notify"),  # unknown key
        ("/opt/pullgate/bin/pullgate serve", "/opt/pullgate/bin/missing serve"),
    ],
)
def test_verify_catches_broken_units(tmp_path: Path, old: str, new: str) -> None:
    text = UNIT.read_text()
    assert old in text
    result = _verify(text.replace(old, new), tmp_path)
    assert result.returncode != 0 or result.stdout + result.stderr != ""


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_unit_promises() -> None:
    s = _settings()
    assert s["Type"] == ["notify"]
    assert s["ExecStart"] == ["/opt/pullgate/bin/pullgate serve --config /etc/pullgate/config.toml"]
    assert s["ExecReload"] == [  # a broken configuration fails `systemctl reload`
        "/opt/pullgate/bin/pullgate serve --check-config --config /etc/pullgate/config.toml",
        "/bin/kill -HUP $MAINPID",
    ]
    assert s["Restart"] == ["on-failure"]
    assert "kubelet.service" in s["Before"][0].split()
    assert s["RuntimeDirectory"] == ["pullgate"]
    assert s["CacheDirectory"] == ["pullgate"]
    assert s["User"] == ["pullgate"]
    assert s["Group"] == ["pullgate"]
    assert int(s["UMask"][0], 8) & 0o007 == 0o007  # sockets never world-accessible
    assert {"/etc/pullgate", "-/etc/containerd/certs.d"} <= set(s["ReadOnlyPaths"])
    assert s["CapabilityBoundingSet"] == [""]
    assert s["AmbientCapabilities"] == [""]
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "WatchdogSec" not in s  # optional, documented as a drop-in
    assert s["WantedBy"] == ["multi-user.target"]


# ----------------------------------------------------------------------------- notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(os.fsencode(path))
        sock.settimeout(10)
        yield sock, str(path)


@pytest.fixture
def abstract_listener() -> Iterator[tuple[socket.socket, str]]:
    name = f"pullgate-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(10)
        yield sock, "@" + name


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(65536).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_ready_status_stopping(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready(status="serving")
    assert _fields(sock) == {"READY": "1", "STATUS": "serving"}
    assert notifier.status("line one\nRELOADING=1")
    assert _fields(sock) == {"STATUS": "line one RELOADING=1"}  # no injected assignment
    assert notifier.stopping()
    assert _fields(sock) == {"STOPPING": "1"}


def test_reloading_carries_monotonic_usec(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier(address=os.fsencode(path), clock_usec=lambda: 123456789)
    assert notifier.reloading()
    assert _fields(sock) == {"RELOADING": "1", "MONOTONIC_USEC": "123456789"}


def test_reloading_default_clock_is_monotonic_microseconds(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(_fields(sock)["MONOTONIC_USEC"]) <= after


def test_abstract_socket(abstract_listener: tuple[socket.socket, str]) -> None:
    sock, name = abstract_listener
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": name})
    assert notifier.ready()
    assert _fields(sock) == {"READY": "1"}


@pytest.mark.parametrize("value", [None, "", "relative/path", "@", "vsock:2:1234", "/a\0b"])
def test_unset_or_unusable_socket_is_a_no_op(value: str | None) -> None:
    environ = {} if value is None else {"NOTIFY_SOCKET": value}
    notifier = SystemdNotifier.from_environment(environ)
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.reloading() is False
    assert notifier.stopping() is False
    assert notifier.status("x") is False
    assert notifier.watchdog_interval() is None


def test_send_failure_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.stopping() is False


def test_parse_notify_address() -> None:
    assert parse_notify_address("/run/systemd/notify") == b"/run/systemd/notify"
    assert parse_notify_address("@abc") == b"\0abc"
    assert parse_notify_address(None) is None


def test_watchdog(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}
    notifier = SystemdNotifier.from_environment(env, pid=4242)
    assert notifier.watchdog_interval() == 15.0
    assert notifier.watchdog()
    assert _fields(sock) == {"WATCHDOG": "1"}


@pytest.mark.parametrize(
    "env",
    [
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"},  # someone else's watchdog
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"},
        {},
    ],
)
def test_watchdog_not_for_us(listener: tuple[socket.socket, str], env: dict[str, str]) -> None:
    _, path = listener
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path, **env}, pid=4242)
    assert notifier.watchdog_interval() is None
    assert notifier.watchdog() is False


def test_watchdog_for_this_process_by_default(listener: tuple[socket.socket, str]) -> None:
    _, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier.from_environment(env).watchdog_interval() == 1.0
