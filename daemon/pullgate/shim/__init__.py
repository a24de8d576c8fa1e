"""``pullgate-containerd-verifier``: containerd's bindir image-verifier executable.

Implements the executable side of containerd's image verifier protocol (containerd >= 2.0,
plugin ``io.containerd.image-verifier.v1.bindir``; docs/containerd.md §2.3)::

    <bin_dir>/pullgate-containerd-verifier -name REF -digest DIGEST \
        -stdin-media-type application/vnd.oci.descriptor.v1+json   < descriptor JSON

The verdict comes from the pullgate daemon (``pullgate.v1.Verifier/Verify`` on its unix socket,
``caller="containerd-verifier"``). Exit status 0 allows the pull; any other status rejects it, and
stdout (``<REASON>: <message>``, under containerd's 32 KiB limit) becomes the reason containerd
reports. A daemon that is absent, slow or answers nonsense is a rejection, decided by this process
within ``-timeout`` -- well before containerd's ``per_verifier_timeout`` (default 10 s) kills it,
which would also block the pull but with an opaque "signal: killed" reason.

Start-up cost is the point of this package's shape. containerd runs it on every pull, so it
imports only the standard library, and of that only C modules where it can (``_socket``, not
``socket``, which drags in ``enum``/``selectors`` wrappers; ``_json``'s scanner, not ``json``,
which drags in ``re``); never grpc or protobuf (docs/decisions.md, "The containerd shim speaks
its one gRPC call itself").
For the same reason it defines no ``enum`` (exit codes and reasons are plain constants) and does
not import :mod:`pullgate.errors`: its errors are :class:`ShimError`, whose reason strings are
values of :class:`pullgate.errors.Reason` (a unit test holds them to that). The single unary
call is spoken directly: HTTP/2 framing over ``AF_UNIX``, request headers as HPACK literals, the
``VerifyRequest``/``VerifyResponse`` protobuf fields encoded by hand (field numbers from
``protos/pullgate/v1/verifier.proto``). Response headers are never decoded: the verdict is read
only from a complete gRPC message followed by the end of the stream; anything else (trailers-only
error, reset, GOAWAY, EOF, timeout) denies.

Extra flags (containerd never passes them; use a wrapper script in ``bin_dir`` to set them):
``-socket PATH`` (default ``/run/pullgate/pullgate.sock``) and ``-timeout DURATION`` (Go duration
or seconds, default ``5s``, well under containerd's default ``per_verifier_timeout`` of 10 s).

Install: containerd runs every entry of ``bin_dir`` (default
``/opt/containerd/image-verifier/bin``), so put only this executable there::

    ln -s "$(command -v pullgate-containerd-verifier)" \
        /opt/containerd/image-verifier/bin/pullgate-containerd-verifier

Layout: :mod:`.vocabulary` (bounds, exit codes, reasons, errors), :mod:`.invocation` (argv and
the stdin descriptor), :mod:`.daemon_call` (the hand-spoken ``Verify`` call); the verdict and the
console-script entry point :func:`main` are here. No module here imports anything but its siblings
and the standard-library modules the single-file shim used: the split costs three small module
loads and nothing else (``tests/unit/test_shim.py`` holds the import set).
"""

# No ``from __future__ import annotations``: importing ``__future__`` costs start-up time, and
# every annotation here is evaluable at definition time (Python >= 3.11).
import os
import sys
import time

from pullgate.shim.daemon_call import (
    call_verify,
    decode_verify_response,
    encode_verify_request,
    request_bytes,
)
from pullgate.shim.invocation import (
    USAGE_TEXT,
    HelpRequested,
    check_descriptor,
    parse_args,
    parse_duration,
    parse_json,
    read_stdin,
)
from pullgate.shim.vocabulary import (
    CALLER,
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    DESCRIPTOR_MEDIA_TYPE,
    MAX_FIELD,
    MAX_RESPONSE,
    MAX_STDIN,
    MAX_STDOUT,
    METHOD_PATH,
    STDIN_WAIT,
    DaemonUnavailable,
    ExitCode,
    ShimArgs,
    ShimError,
    ShimReason,
    Verdict,
)

__all__ = [
    "CALLER",
    "DEFAULT_SOCKET",
    "DEFAULT_TIMEOUT",
    "DESCRIPTOR_MEDIA_TYPE",
    "MAX_FIELD",
    "MAX_RESPONSE",
    "MAX_STDIN",
    "MAX_STDOUT",
    "METHOD_PATH",
    "STDIN_WAIT",
    "DaemonUnavailable",
    "ExitCode",
    "ShimArgs",
    "ShimError",
    "ShimReason",
    "Verdict",
    "call_verify",
    "check_descriptor",
    "clip",
    "decide",
    "decode_verify_response",
    "encode_verify_request",
    "main",
    "parse_args",
    "parse_duration",
    "parse_json",
    "read_stdin",
    "request_bytes",
]


def clip(text: str, limit: int = MAX_STDOUT) -> bytes:
    """UTF-8 encode ``text`` and cut it to at most ``limit`` bytes on a character boundary."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw
    marker = " …(truncated)".encode()
    return raw[: limit - len(marker)].decode("utf-8", "ignore").encode() + marker


def _write(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:  # nobody reads stdout: the exit status still carries the verdict
        return


def decide(args: ShimArgs, stdin: bytes, deadline: float) -> tuple[int, str]:
    """The verdict for one invocation: exit code (:class:`ExitCode`) and the line for stdout."""
    try:
        check_descriptor(stdin, args)
        verdict = call_verify(args, deadline)
    except DaemonUnavailable as exc:
        return ExitCode.UNAVAILABLE, f"{exc.reason}: {exc.detail} (pull denied)"
    except ShimError as exc:
        return ExitCode.USAGE, f"{exc.reason}: {exc.detail}"
    where = f"{args.name}@{args.digest}"
    if not verdict.allowed:
        reason = verdict.reason or ShimReason.INTERNAL
        return ExitCode.DENY, f"{reason}: {verdict.message or 'denied by pullgate'} ({where})"
    if verdict.digest and verdict.digest != args.digest:
        return ExitCode.DENY, (
            f"{ShimReason.DESCRIPTOR_MISMATCH}: pullgate verified {verdict.digest}, "
            f"not the digest containerd is pulling ({where})"
        )
    return ExitCode.ALLOW, f"{verdict.reason or ShimReason.VERIFIED}: {where}"


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit status."""
    started = time.monotonic()
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except HelpRequested:
        _write(1, USAGE_TEXT.encode())
        return ExitCode.USAGE
    except ShimError as exc:
        _write(1, clip(f"{exc.reason}: {exc.detail}\n{USAGE_TEXT}"))
        return ExitCode.USAGE
    deadline = started + args.timeout
    try:
        stdin = read_stdin(0, min(deadline, time.monotonic() + STDIN_WAIT))
    except ShimError as exc:
        _write(1, clip(f"{exc.reason}: {exc.detail}"))
        return ExitCode.USAGE
    code, line = decide(args, stdin, deadline)
    _write(1, clip(line))
    return code
