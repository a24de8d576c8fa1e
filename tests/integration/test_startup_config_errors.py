"""A config error at start-up, through the real console script and socket.

``pullgate serve`` with a broken config file, TOML syntax errors included, must still serve its
API socket (the one the file names) with health ``NOT_SERVING``, report the error in ``Status``
and deny every ``Verify`` with ``CONFIG``; fixing the file must bring ``SERVING`` within 1 s (the
watcher reloads it). ``pullgate serve --check-config`` exits 2 with the same problems ``Status``
shows, and 0 once the file is fixed.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2  # type: ignore[import-untyped]

from pullgate.errors import Reason
from pullgate.v1 import verifier_pb2
from tests.support.daemon_process import CONSOLE_SCRIPT, DaemonProcess
from tests.support.signed_node import SignedNode

pytestmark = [pytest.mark.integration]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FIX_BOUND = 1.0  # seconds from the fixed file being in place to SERVING
_GIVE_UP = 10.0
_PLATFORM = 'platform = "linux/amd64"'
_CRL = "crl_cache_dir = "

BREAKAGES: dict[str, Callable[[str], str]] = {
    # an unterminated string in the top-level section
    "toml-syntax-top": lambda text: text.replace(_PLATFORM, 'platform = "linux/amd64'),
    # a syntax error in a table that is not read at start (the sockets' tables still are)
    "toml-syntax-table": lambda text: text.replace(_CRL, "crl_cache_dir = = "),
    "unknown-key": lambda text: text.replace(_PLATFORM, f'{_PLATFORM}\nplatfrom = "x"'),
    "wrong-type": lambda text: text.replace(_PLATFORM, f'{_PLATFORM}\nreload_debounce = "soon"'),
    "not-utf8": lambda text: text.replace(_PLATFORM, "# caf\udce9\n" + _PLATFORM),
}


def _write(path: Path, text: str) -> None:
    """Write-then-rename, as editors and config management do (no half-written file)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(text.encode("utf-8", "surrogateescape"))
    os.replace(temporary, path)


def _check_config(path: Path) -> tuple[int, list[str]]:
    """``pullgate serve --check-config``: exit status and the problems it printed."""
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "serve", "--check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    prefix = "configuration error: "
    problems = [line.removeprefix(prefix) for line in done.stderr.splitlines() if prefix in line]
    return done.returncode, problems


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_config_error_at_start_up_serves_not_serving_until_the_file_is_fixed(
    tmp_path: Path, breakage: str
) -> None:
    node = SignedNode.create(tmp_path)
    good = node.config_text()
    broken = BREAKAGES[breakage](good)
    assert broken != good
    _write(node.config_path, broken)

    code, problems = _check_config(node.config_path)
    assert code == 2
    assert problems

    with DaemonProcess(node.config_path, node.socket_path, tmp_path / "daemon.log") as daemon:
        daemon.wait_socket()  # the socket the broken file names, not the default
        client = daemon.client()
        try:
            assert client.health.check("") == NOT_SERVING
            assert client.health.check("pullgate.v1.Verifier") == NOT_SERVING
            status = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=30)
            assert status.degraded
            assert status.generation == 0
            assert not status.last_reload.ok
            assert set(problems) <= set(status.problems), (problems, list(status.problems))
            request = verifier_pb2.VerifyRequest(reference="registry.example/team/app:1")
            denied = client.verifier.Verify(request, timeout=30)
            assert not denied.allowed
            assert denied.reason == Reason.CONFIG.value

            time.sleep(0.3)  # the watcher's start-up catch-up has run
            started = time.monotonic()
            _write(node.config_path, good)
            while client.health.check("") != SERVING:
                assert time.monotonic() - started < _GIVE_UP, daemon.log()
                time.sleep(0.01)
            elapsed = time.monotonic() - started
            assert elapsed <= FIX_BOUND, f"SERVING {elapsed:.2f} s after the fix"
            status = client.verifier.Status(verifier_pb2.StatusRequest(), timeout=30)
            assert not status.degraded
            assert status.generation >= 1
        finally:
            client.channel.close()
        assert daemon.stop() == 0, daemon.log()
    assert _check_config(node.config_path) == (0, [])
