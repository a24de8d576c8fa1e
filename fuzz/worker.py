"""One coverage-guided run of one target under atheris (libFuzzer); :mod:`fuzz.run` starts it.

``python -m fuzz.worker TARGET CRASH_DIR [libFuzzer options and corpus directories]``

pullgate is imported instrumented, so libFuzzer sees its branch coverage. Mutations are
libFuzzer's own (with the registry-vocabulary dictionary) or, for a share of them, structural
(:func:`fuzz.mutate.mutate_structure`: a JSON node, a header, a status). An exception other than
:class:`~pullgate.errors.PullgateError` (targets swallow those) or an oracle violation is an
unhandled exception: it is not re-raised, so the run goes on and counts every one of them; the
first input of each kind (exception type and innermost frame) is kept in ``CRASH_DIR`` with its
traceback, and ``CRASH_DIR/count`` holds the running total.
"""

from __future__ import annotations

import hashlib
import logging
import random
import sys
import traceback
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pullgate"]):
    from fuzz.targets import TARGETS
from fuzz.mutate import mutate_structure

STRUCTURED = 0.3  # the share of mutations that are structural (the rest are libFuzzer's)


def _kind(exc: BaseException) -> str:
    """Exception type plus the innermost frame: one crash, however many inputs reach it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__}@{where}"


class Recorder:
    """Counts and keeps the unhandled exceptions of one run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.kinds: set[str] = set()
        directory.mkdir(parents=True, exist_ok=True)

    def record(self, data: bytes, exc: BaseException) -> None:
        """Count ``exc``; keep the input and traceback of a new kind."""
        self.count += 1
        (self.directory / "count").write_text(str(self.count))
        kind = _kind(exc)
        if kind in self.kinds:
            return
        self.kinds.add(kind)
        name = "crash-" + hashlib.sha1(kind.encode(), usedforsecurity=False).hexdigest()[:16]
        (self.directory / name).write_bytes(data)
        text = "".join(traceback.format_exception(exc))
        (self.directory / f"{name}.txt").write_text(f"{kind}\n\n{text}")


def main(argv: list[str]) -> None:
    """Run ``argv[1]`` until libFuzzer's ``-max_total_time`` (or another limit) ends it."""
    target = TARGETS[argv[1]].run
    recorder = Recorder(Path(argv[2]))
    logging.disable(logging.CRITICAL)  # the client logs every refused answer at INFO

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except Exception as exc:  # noqa: BLE001 - counting them is the point
            recorder.record(data, exc)

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() >= STRUCTURED:
            return bytes(atheris.Mutate(data, max_size))
        return mutate_structure(data, rng)[:max_size]

    atheris.Setup([argv[0], *argv[3:]], one_input, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
