"""The Debian package: build it, ``dpkg -i`` it on this machine, use it, remove and purge it.

Runs as root on a Debian machine (CI is one). The package is built into a scratch directory
(not the repo's ``dist/``), installed with ``dpkg -i``, and always purged again, together with
the ``pullgate`` system user when this test created it. The tests are skipped, with the reason,
when a ``pullgate`` package or ``/opt/pullgate`` already exists: the machine's own installation
is never touched.

The daemon is started from the installed unit's ``ExecStart=`` line the way systemd would run
it: as ``User=pullgate``, ``UMask=0007``, ``NoNewPrivileges=yes`` and with the kernel's
memory-deny-write-execute (``prctl(PR_SET_MDWE)``, the mechanism behind the unit's
``MemoryDenyWriteExecute=yes``) so the hardening choice is exercised, until it answers a
grpc.health.v1 check on its socket.
"""

from __future__ import annotations

import ctypes
import grp
import importlib.util
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path("/usr/bin/python3.11")
UNIT = Path("/lib/systemd/system/pullgate.service")
API_SOCKET = Path("/run/pullgate/pullgate.sock")
WAIT = 120.0  # seconds the daemon may take to come up: a bound, not an assertion
PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1

pytestmark = pytest.mark.integration


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=900)


def _package_installed() -> bool:
    result = _run("dpkg-query", "-W", "-f=${db:Status-Status}", "pullgate", check=False)
    return result.returncode == 0 and result.stdout.strip() not in ("", "not-installed")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "installing a .deb needs root"
    if shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None:
        return "dpkg tools not available (not a Debian machine)"
    if not PYTHON.exists():
        return f"{PYTHON} not installed (Debian packages python3.11, python3-venv)"
    if _package_installed() or Path("/opt/pullgate").exists():
        return "a pullgate installation already exists on this machine; not touching it"
    return None


def _user_exists() -> bool:
    try:
        pwd.getpwnam("pullgate")
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build and install the package; purge it (and a user we created) afterwards."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    scratch = tmp_path_factory.mktemp("deb")
    env = {
        **os.environ,
        "DEB_PYTHON": str(PYTHON),
        "BUILD_DIR": str(scratch / "build"),
        "DIST_DIR": str(scratch / "dist"),
    }
    build = subprocess.run(
        ["bash", str(REPO / "packaging" / "build-deb.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr
    deb = Path(build.stdout.strip().splitlines()[-1])
    assert deb.name.startswith("pullgate_")
    assert deb.suffix == ".deb"
    user_existed = _user_exists()
    try:
        install = _run("dpkg", "-i", str(deb), check=False)
        assert install.returncode == 0, install.stdout + install.stderr
        yield deb
    finally:
        if _package_installed():
            _run("dpkg", "--purge", "pullgate", check=False)
        if not user_existed and _user_exists():
            _run("userdel", "pullgate", check=False)
            try:
                grp.getgrnam("pullgate")
            except KeyError:
                pass
            else:
                _run("groupdel", "pullgate", check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def _mdwe_supported() -> bool:
    probe = subprocess.run(
        [
            str(PYTHON),
            "-c",
            "import ctypes,sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)",
        ],
        check=False,
    )
    return probe.returncode == 0


def _harden() -> None:
    """preexec_fn: NoNewPrivileges=yes and MemoryDenyWriteExecute=yes, kernel-enforced."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_MDWE")


def _as_service(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    hardened = _mdwe_supported()
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        argv,
        user="pullgate",
        group="pullgate",
        extra_groups=[],
        umask=0o007,
        preexec_fn=_harden if hardened else None,  # noqa: PLW1509 - single-threaded test process
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        cwd="/",
        **kwargs,
    )


def _exec_start() -> list[str]:
    for line in UNIT.read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise AssertionError(f"no ExecStart= in {UNIT}")


def test_layout(installed: Path) -> None:
    assert Path("/usr/bin/pullgate").resolve() == Path("/opt/pullgate/bin/pullgate")
    assert UNIT.is_file()
    assert Path("/usr/lib/sysusers.d/pullgate.conf").is_file()
    conffiles = _run("dpkg-query", "--control-show", "pullgate", "conffiles").stdout.split()
    assert conffiles == ["/etc/pullgate/config.toml", "/etc/pullgate/trust/trustpolicy.json"]
    assert _user_exists()
    runtime = Path("/run/pullgate").stat()
    assert pwd.getpwuid(runtime.st_uid).pw_name == "pullgate"
    assert stat.S_IMODE(runtime.st_mode) == 0o750
    shim = Path("/opt/pullgate/bin/pullgate-containerd-verifier")
    if shim.exists():
        assert Path("/usr/bin/pullgate-containerd-verifier").resolve() == shim
        bindir = Path("/usr/libexec/pullgate/image-verifier")
        assert [p.name for p in bindir.iterdir()] == ["pullgate-containerd-verifier"]


def test_runtime_dependencies_are_the_pinned_versions(installed: Path) -> None:
    pins = {}
    for raw in (REPO / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    listed = _run(
        "/opt/pullgate/bin/python",
        "-c",
        "import importlib.metadata as m; "
        "print('\\n'.join(d.metadata['Name'] + ' ' + d.version for d in m.distributions()))",
    ).stdout.split("\n")
    shipped = dict(line.split(" ") for line in listed if line)
    shipped = {name.lower().replace("_", "-"): v for name, v in shipped.items()}
    assert shipped.pop("pullgate") == installed.name.split("_")[1]
    assert shipped, "no runtime dependency in /opt/pullgate"
    for name, version in shipped.items():
        assert pins.get(name) == version, (
            f"{name} {version} shipped, constraints.txt: {pins.get(name)}"
        )


def test_cli_version_and_policy_check(installed: Path) -> None:
    version = _run("/usr/bin/pullgate", "--version")
    assert version.stdout.split() == ["pullgate", installed.name.split("_")[1]]
    proc = _as_service(
        ["/usr/bin/pullgate", "policy", "check", "--trust-dir", "/etc/pullgate/trust"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, (out, err)


@pytest.mark.skipif(
    importlib.util.find_spec("pullgate.service.app") is None,
    reason="the daemon (pullgate.service.app) is not in this tree yet",
)
def test_daemon_from_exec_start_answers_health(installed: Path) -> None:
    argv = _exec_start()
    assert argv[0] == "/opt/pullgate/bin/pullgate"
    proc = _as_service(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            if API_SOCKET.is_socket():
                with grpc.insecure_channel(f"unix://{API_SOCKET}") as channel:
                    stub = health_pb2_grpc.HealthStub(channel)
                    try:
                        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                    except grpc.RpcError:
                        reply = None
                if reply is not None:
                    status = reply.status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert status == health_pb2.HealthCheckResponse.SERVING
        mode = stat.S_IMODE(API_SOCKET.stat().st_mode)
        assert mode & 0o007 == 0  # never world-accessible
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_remove_keeps_conffiles_and_purge_deletes_them(installed: Path) -> None:
    # Running the CLI and daemon left nothing dpkg does not know about in /opt/pullgate.
    owned = set(_run("dpkg-query", "-L", "pullgate").stdout.split())
    on_disk = {str(p) for p in Path("/opt/pullgate").rglob("*")}
    assert on_disk - owned == set()

    removed = _run("dpkg", "-r", "pullgate", check=False)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not Path("/opt/pullgate").exists()
    assert not os.path.lexists("/usr/bin/pullgate")
    assert not UNIT.exists()
    assert Path("/etc/pullgate/config.toml").is_file()
    assert Path("/etc/pullgate/trust/trustpolicy.json").is_file()
    status = _run("dpkg-query", "-W", "-f=${db:Status-Status}", "pullgate").stdout
    assert status == "config-files"

    purged = _run("dpkg", "--purge", "pullgate", check=False)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not Path("/etc/pullgate").exists()
    assert not Path("/var/cache/pullgate").exists()
    assert not _package_installed()
