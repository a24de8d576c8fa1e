"""Shim start-up part of ``bench/pull.py``: the bindir verifier's wall time vs a bare interpreter.

``pullgate-containerd-verifier`` runs exactly as containerd's bindir image verifier runs it
(docs/containerd.md §2.3): argv ``-name REF -digest DIGEST -stdin-media-type
application/vnd.oci.descriptor.v1+json`` (plus ``-socket``, which a site wrapper sets when the
daemon's socket is not the default), the descriptor JSON and a newline on stdin, stdout and
stderr captured. The daemon answers from a warm decision. Every round runs each wrapper form and
``python -c pass`` (the interpreter named by the wrappers' shebang) once, in a rotating order;
each run must allow (exit 0, stdout starting ``VERIFIED``) or the bench stops.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.pull_support import write_wrappers
from pullgate.shim import DESCRIPTOR_MEDIA_TYPE

BARE = "python -c pass"
_RUN_TIMEOUT = 30.0
_WARM_UP_RUNS = 3
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True, slots=True, kw_only=True)
class ShimBench:
    """Where the daemon listens and what to ask it."""

    socket: Path
    reference: str
    digest: str
    bin_root: Path
    python: str


@dataclass
class ShimResult:
    """Wall-time samples per executable (``BARE`` is the interpreter alone)."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    bytecode_note: str = ""

    @property
    def forms(self) -> list[str]:
        """The wrapper forms measured (without the bare interpreter)."""
        return [name for name in self.samples if name != BARE]

    def median(self, name: str) -> float:
        """Median wall time of ``name``."""
        return statistics.median(self.samples[name])

    def ratio(self, name: str) -> float:
        """Median of ``name`` / median of the bare interpreter."""
        return self.median(name) / self.median(BARE)

    def lines(self) -> list[str]:
        """Human-readable medians."""
        out = [self.bytecode_note] if self.bytecode_note else []
        for name, values in self.samples.items():
            out.append(
                f"{name:<24} median {self.median(name) * 1000:6.1f} ms "
                f"(min {min(values) * 1000:6.1f}, n={len(values)})"
            )
        return out


def _environment() -> tuple[dict[str, str], str]:
    env = dict(os.environ)
    note = ""
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        note = "PYTHONDONTWRITEBYTECODE was set: removed for the shim and python subprocesses"
    for name in ("PYTHONPROFILEIMPORTTIME", "PYTHONVERBOSE", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env, note


def _argv_and_stdin(bench: ShimBench, executable: Path) -> tuple[list[str], bytes]:
    argv = [
        str(executable),
        "-name",
        bench.reference,
        "-digest",
        bench.digest,
        "-stdin-media-type",
        DESCRIPTOR_MEDIA_TYPE,
        "-socket",
        str(bench.socket),
    ]
    descriptor = {"mediaType": _MANIFEST, "digest": bench.digest}
    return argv, (json.dumps(descriptor, separators=(",", ":")) + "\n").encode()


def _timed(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, env=env, timeout=_RUN_TIMEOUT, check=False
    )
    return time.perf_counter() - started, proc.returncode, proc.stdout


def measure_shim(bench: ShimBench, runs: int) -> ShimResult:
    """Interleaved runs of every wrapper form and of the bare interpreter."""
    env, note = _environment()
    wrappers = write_wrappers(bench.bin_root, bench.python)
    commands: dict[str, tuple[list[str], bytes]] = {
        name: _argv_and_stdin(bench, path) for name, path in wrappers.items()
    }
    commands[BARE] = ([bench.python, "-c", "pass"], b"")
    result = ShimResult(samples={name: [] for name in commands}, bytecode_note=note)
    names = list(commands)
    for index in range(-_WARM_UP_RUNS, runs):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            argv, stdin = commands[name]
            elapsed, code, stdout = _timed(argv, stdin, env)
            if name != BARE and (code != 0 or not stdout.startswith(b"VERIFIED")):
                raise RuntimeError(f"the shim did not allow ({name}): exit {code}, {stdout!r}")
            if index >= 0:
                result.samples[name].append(elapsed)
    return result
