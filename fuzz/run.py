"""Run every fuzz target (or the named ones) coverage-guided for a given time; print the
executions and unhandled exceptions of each; exit 1 when any target had one (``make fuzz``).

``python -m fuzz.run [--seconds N] [--runs N] [--work DIR] [TARGET ...]``

``--seconds`` (``FUZZ_SECONDS``, default 60) bounds each target's time; ``--runs``
(``FUZZ_RUNS``) also stops a target after that many executions, whichever comes first.

Each target runs in its own ``fuzz.worker`` process (atheris/libFuzzer), one after the other,
from its seeds (:mod:`fuzz.seeds`, rewritten every run) and the corpus it grew before
(``DIR/corpus/<target>``, kept between runs). Unhandled exceptions land in
``DIR/crashes/<target>/``: one input and traceback per kind, reproducible with
``python -m fuzz.run --reproduce FILE TARGET``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fuzz import seeds
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.MULTILINE)
_ABORT = re.compile(r"==\d+== ERROR: libFuzzer: (\S+)|ERROR: libFuzzer: (\S+)")


@dataclass(frozen=True, slots=True)
class Result:
    """What one target's run reported."""

    name: str
    executions: int
    rate: int  # executions per second while fuzzing (libFuzzer's average)
    seconds: float  # wall time of the worker, start-up included
    corpus: int
    unhandled: int
    kinds: int
    abort: str | None  # libFuzzer's own finding: timeout, out-of-memory, deadly signal

    @property
    def failed(self) -> bool:
        """True when the run found anything."""
        return self.unhandled > 0 or self.abort is not None


def run_target(name: str, seconds: int, work: Path, runs: int | None = None) -> Result:
    """Fuzz ``name`` for ``seconds`` (or ``runs`` executions) in a worker process."""
    corpus = work / "corpus" / name
    crashes = work / "crashes" / name
    seed_dir = work / "seeds" / name
    for directory in (corpus, crashes):
        directory.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(crashes)
    largest = max((len(s) for s in seeds.SEEDS[name]()), default=0)
    argv = [
        sys.executable,
        "-m",
        "fuzz.worker",
        name,
        str(crashes),
        f"-max_total_time={seconds}",
        f"-max_len={max(4096, 2 * largest)}",
        "-timeout=10",
        "-rss_limit_mb=1024",
        "-print_final_stats=1",
        *([f"-runs={runs}"] if runs else []),
        f"-artifact_prefix={crashes}/",
        f"-dict={work / 'seeds' / 'dictionary'}",
        str(corpus),
        str(seed_dir),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "daemon"), str(ROOT)])}
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    log = done.stderr + done.stdout
    (work / f"{name}.log").write_text(log)
    stats = {key: int(value) for key, value in _STAT.findall(log)}
    count_file = crashes / "count"
    unhandled = int(count_file.read_text()) if count_file.exists() else 0
    kinds = len(list(crashes.glob("crash-*.txt")))
    match = _ABORT.search(log)
    abort = (match.group(1) or match.group(2)) if match else None
    if abort is None and done.returncode != 0 and "number_of_executed_units" not in stats:
        abort = f"exit status {done.returncode}"
    return Result(
        name=name,
        executions=stats.get("number_of_executed_units", 0),
        rate=stats.get("average_exec_per_sec", 0),
        seconds=elapsed,
        corpus=len(list(corpus.iterdir())),
        unhandled=unhandled,
        kinds=kinds,
        abort=abort,
    )


def reproduce(path: Path, name: str) -> int:
    """Run one saved input through ``name`` without the fuzzer; the exception propagates."""
    TARGETS[name].run(path.read_bytes())
    print(f"{name}: {path} ran without an unhandled exception")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make fuzz``."""
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    parser.add_argument(
        "--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")), help="per target"
    )
    runs = os.environ.get("FUZZ_RUNS")
    parser.add_argument(
        "--runs", type=int, default=int(runs) if runs else None, help="per target (optional)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / ".fuzz", help="corpus and crashes")
    parser.add_argument("--reproduce", type=Path, help="run one saved input (needs one TARGET)")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    if args.reproduce is not None:
        if len(args.targets) != 1:
            parser.error("--reproduce needs exactly one TARGET")
        return reproduce(args.reproduce, args.targets[0])
    names = args.targets or list(TARGETS)
    args.work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.work / "seeds", ignore_errors=True)
    seeds.write(args.work / "seeds")
    print(f"{'target':<20} {'executions':>11} {'exec/s':>8} {'corpus':>7} {'unhandled':>9}  parser")
    results = []
    for name in names:
        result = run_target(name, args.seconds, args.work, args.runs)
        results.append(result)
        note = f" ({result.kinds} kinds)" if result.kinds else ""
        note += f" libFuzzer: {result.abort}" if result.abort else ""
        note += f" [{result.seconds:.0f} s]"
        print(
            f"{name:<20} {result.executions:>11,} {result.rate:>8,} {result.corpus:>7} "
            f"{result.unhandled:>9}  {TARGETS[name].parser}{note}",
            flush=True,
        )
    total = sum(r.unhandled for r in results)
    failed = [r.name for r in results if r.failed]
    print(
        f"total: {sum(r.executions for r in results):,} executions, {total} unhandled "
        f"exceptions; crashes kept under {args.work / 'crashes'}"
    )
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
