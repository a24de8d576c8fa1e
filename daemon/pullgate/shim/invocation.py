"""The shim's input: containerd's argv (Go ``flag`` syntax) and the descriptor on stdin.

docs/containerd.md §2.3: containerd runs the verifier as ``-name REF -digest DIGEST
-stdin-media-type application/vnd.oci.descriptor.v1+json`` with the image's OCI descriptor on
stdin; ``-socket`` and ``-timeout`` are the shim's own extra flags. Every fault here is a
:class:`~pullgate.shim.vocabulary.ShimError` with reason MALFORMED or DESCRIPTOR_MISMATCH.
Standard-library C modules only (``_json``'s scanner, not ``json``; see the package docstring).
"""

# No ``from __future__ import annotations`` (start-up cost; see pullgate.shim.vocabulary).
import _json
import os
import select
import time
from types import MappingProxyType

from pullgate.shim.vocabulary import (
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    DESCRIPTOR_MEDIA_TYPE,
    MAX_FIELD,
    MAX_STDIN,
    ShimArgs,
    ShimError,
    ShimReason,
)

_STRING_FLAGS = ("name", "digest", "stdin-media-type", "socket", "timeout")
_UNITS = MappingProxyType(
    {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
)
USAGE_TEXT = (
    "usage: pullgate-containerd-verifier -name REF -digest DIGEST "
    "[-stdin-media-type TYPE] [-socket PATH] [-timeout DURATION] < descriptor.json\n"
)


class HelpRequested(Exception):
    """``-h`` / ``-help``: print usage. Exit status 2, not 0: to containerd, 0 means "allow"."""


def parse_duration(text: str) -> float:
    """Parse a Go duration (``1.5s``, ``500ms``, ``1m30s``) or a plain number of seconds.

    For callers outside the shim (``pullgate doctor``): the error is a ``pullgate.errors`` one,
    imported only on that path.

    Raises:
        ShimError: MALFORMED, for anything else or a non-positive duration.
    """
    try:
        return _duration(text)
    except ShimError as exc:
        from pullgate.errors import Reason, VerificationFailed

        raise VerificationFailed(Reason(exc.reason), exc.detail) from None


def _duration(text: str) -> float:
    """:func:`parse_duration`, raising :class:`ShimError` (MALFORMED)."""
    bad = ShimError(ShimReason.MALFORMED, f"invalid -timeout {text!r}")
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
        rest = text
        if not rest:
            raise bad from None
        while rest:
            i = 0
            while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
                i += 1
            j = i
            while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
                j += 1
            unit = _UNITS.get(rest[i:j])
            if i == 0 or unit is None:
                raise bad from None
            try:
                seconds += float(rest[:i]) * unit
            except ValueError:
                raise bad from None
            rest = rest[j:]
    if not seconds > 0 or seconds > 3600:  # also rejects NaN
        raise bad
    return seconds


def _valid_digest(digest: str) -> bool:
    """OCI image-spec digest grammar: ``algorithm ":" encoded``."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not algorithm or not encoded:
        return False
    alg_ok = all(c.isascii() and (c.islower() or c.isdigit() or c in "+._-") for c in algorithm)
    enc_ok = all(c.isascii() and (c.isalnum() or c in "=_-") for c in encoded)
    return alg_ok and enc_ok


def parse_args(argv: list[str] | tuple[str, ...]) -> ShimArgs:
    """Parse argv with Go ``flag`` semantics (``-f v``, ``-f=v``, ``--f v``, ``--f=v``).

    Raises:
        ShimError: MALFORMED, for unknown flags, missing values or positionals.
    """
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if len(arg) < 2 or arg[0] != "-":
            raise ShimError(ShimReason.MALFORMED, f"unexpected argument {arg[:64]!r}")
        flag = arg[2:] if arg.startswith("--") else arg[1:]
        flag, eq, value = flag.partition("=")
        if flag in ("h", "help"):
            raise HelpRequested
        if flag not in _STRING_FLAGS:
            raise ShimError(ShimReason.MALFORMED, f"unknown flag -{flag[:64]}")
        if not eq:
            if i >= len(argv):
                raise ShimError(ShimReason.MALFORMED, f"flag needs an argument: -{flag}")
            value = argv[i]
            i += 1
        values[flag] = value
    if i < len(argv):
        raise ShimError(ShimReason.MALFORMED, f"unexpected argument {argv[i][:64]!r}")
    name, digest = values.get("name", ""), values.get("digest", "")
    if not name or len(name) > MAX_FIELD:
        raise ShimError(ShimReason.MALFORMED, "-name is required (at most 8 KiB)")
    if len(digest) > MAX_FIELD or not _valid_digest(digest):
        raise ShimError(ShimReason.MALFORMED, f"-digest {digest[:200]!r} is not a digest")
    return ShimArgs(
        name=name,
        digest=digest,
        stdin_media_type=values.get("stdin-media-type", DESCRIPTOR_MEDIA_TYPE),
        socket=values.get("socket", DEFAULT_SOCKET),
        timeout=_duration(values["timeout"]) if "timeout" in values else DEFAULT_TIMEOUT,
    )


def read_stdin(fd: int, deadline: float) -> bytes:
    """Read stdin until EOF, at most ``MAX_STDIN`` bytes and until ``deadline``.

    Raises:
        ShimError: MALFORMED, when stdin is larger than the bound.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            ready, _, _ = select.select([fd], [], [], remaining)
        except (OSError, ValueError):  # closed or invalid descriptor: nothing to read
            break
        if not ready:
            break
        try:
            chunk = os.read(fd, 16384)
        except OSError:
            break
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_STDIN:
            raise ShimError(ShimReason.MALFORMED, "descriptor on stdin exceeds 64 KiB")
        chunks.append(chunk)
    return b"".join(chunks)


class _JsonContext:
    """What ``_json.make_scanner`` reads: strict JSON, plain dicts, no NaN/Infinity."""

    strict = True
    object_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def object_pairs_hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        """A plain dict; a repeated key (which value would win?) is rejected."""
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise ValueError("duplicate key")
        return obj

    @staticmethod
    def parse_constant(name: str) -> object:
        """``NaN``/``Infinity``/``-Infinity`` are not JSON."""
        raise ValueError(f"{name} is not JSON")


_JSON_WHITESPACE = " \t\n\r"


def parse_json(data: bytes) -> object:
    """Parse one UTF-8 JSON value, as ``json.loads`` would but without importing ``json``.

    ``json`` imports ``re`` (a sizeable share of the shim's start-up); ``_json``'s C scanner is
    the very parser ``json.loads`` uses. Stricter than ``json.loads``: only UTF-8 (no BOM, no
    UTF-16/32), no ``NaN``/``Infinity``, no repeated object keys.

    Raises:
        ShimError: MALFORMED, for anything that is not exactly one JSON value (surrounded only
            by JSON whitespace).
    """
    bad = "descriptor on stdin is not JSON"
    try:
        text = data.decode("utf-8").strip(_JSON_WHITESPACE)
        # typeshed types the context as a scanner; the scanner only reads its attributes.
        scan = _json.make_scanner(_JsonContext)  # type: ignore[arg-type]
        value, end = scan(text, 0)
    # StopIteration: no value where one was expected. SystemError: CPython 3.11's scanner, when
    # ``json.decoder`` is not imported, reports a syntax error without an exception object.
    except (ValueError, RecursionError, StopIteration, SystemError) as exc:
        raise ShimError(ShimReason.MALFORMED, bad) from exc
    if end != len(text):
        raise ShimError(ShimReason.MALFORMED, bad)
    return value


def check_descriptor(data: bytes, args: ShimArgs) -> None:
    """Check the stdin descriptor against ``-digest`` when it is an OCI descriptor.

    Another ``-stdin-media-type`` (a future containerd) is not interpreted; empty stdin means no
    descriptor was supplied. ``-digest`` stays the authority either way.

    Raises:
        ShimError: MALFORMED for unparsable JSON, DESCRIPTOR_MISMATCH for another digest.
    """
    if args.stdin_media_type != DESCRIPTOR_MEDIA_TYPE or not data.strip():
        return
    doc = parse_json(data)
    digest = doc.get("digest") if isinstance(doc, dict) else None
    if not isinstance(digest, str):
        raise ShimError(ShimReason.MALFORMED, "descriptor on stdin has no digest")
    if digest != args.digest:
        raise ShimError(
            ShimReason.DESCRIPTOR_MISMATCH,
            f"descriptor digest {digest[:200]} differs from -digest {args.digest}",
        )
