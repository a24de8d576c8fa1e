"""``pullgate-containerd-verifier``: containerd's bindir image-verifier executable.

Implements the executable side of containerd's image verifier protocol (containerd >= 2.0,
plugin ``io.containerd.image-verifier.v1.bindir``; containerd-integration.md §2.3)::

    <bin_dir>/pullgate-containerd-verifier -name REF -digest DIGEST \
        -stdin-media-type application/vnd.oci.descriptor.v1+json   < descriptor JSON

The verdict comes from the pullgate daemon (``pullgate.v1.Verifier/Verify`` on its unix socket,
``caller="containerd-verifier"``). Exit status 0 allows the pull; any other status rejects it, and
stdout (``<REASON>: <message>``, under containerd's 32 KiB limit) becomes the reason containerd
reports. A daemon that is absent, slow or answers nonsense is a rejection, decided by this process
within ``-timeout`` -- well before containerd's ``per_verifier_timeout`` (default 10 s) kills it,
which would also block the pull but with an opaque "signal: killed" reason.

Start-up cost is the point of this module's shape. containerd runs it on every pull, so it
imports only the standard library, and of that only C modules where it can (``_socket``, not
``socket``, which drags in ``enum``/``selectors`` wrappers; ``_json``'s scanner, not ``json``,
which drags in ``re``); importing grpc and protobuf would cost ~8x the interpreter's own start-up.
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
"""

# No ``from __future__ import annotations``: importing ``__future__`` costs start-up time, and
# every annotation here is evaluable at definition time (Python >= 3.11).
import _json
import _socket
import os
import select
import sys
import time

DEFAULT_SOCKET = "/run/pullgate/pullgate.sock"
DEFAULT_TIMEOUT = 5.0
DESCRIPTOR_MEDIA_TYPE = "application/vnd.oci.descriptor.v1+json"
CALLER = "containerd-verifier"
METHOD_PATH = "/pullgate.v1.Verifier/Verify"
MAX_STDOUT = 32 * 1024 - 1  # containerd reads at most 32768 bytes
MAX_STDIN = 64 * 1024
STDIN_WAIT = 1.0  # containerd writes the descriptor immediately; never wait longer than this
MAX_FIELD = 8 * 1024  # bound on -name / -digest
MAX_RESPONSE = 1024 * 1024
_STRING_FLAGS = ("name", "digest", "stdin-media-type", "socket", "timeout")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_USAGE = (
    "usage: pullgate-containerd-verifier -name REF -digest DIGEST "
    "[-stdin-media-type TYPE] [-socket PATH] [-timeout DURATION] < descriptor.json\n"
)


class ExitCode:
    """Exit statuses; containerd treats every non-zero status as a rejection.

    Plain ``int`` constants, not an ``IntEnum``: ``enum`` costs a quarter of the interpreter's
    start-up (see the module docstring).
    """

    ALLOW = 0
    DENY = 1  # the daemon decided: deny
    USAGE = 2  # bad argv or stdin
    UNAVAILABLE = 3  # daemon absent, slow, or broken


class ShimReason:
    """The reasons the shim itself reports: each is a :class:`pullgate.errors.Reason` value.

    Strings, not the ``Reason`` enum, so the shim need not import ``enum`` (a unit test asserts
    every one of them is a ``Reason`` value).
    """

    VERIFIED = "VERIFIED"
    MALFORMED = "MALFORMED"
    DESCRIPTOR_MISMATCH = "DESCRIPTOR_MISMATCH"
    INTERNAL = "INTERNAL"
    TIMEOUT = "TIMEOUT"


class ShimError(Exception):
    """A definitive rejection found by the shim itself (bad argv, bad stdin, another digest).

    Args:
        reason: A :class:`ShimReason` constant (a ``pullgate.errors.Reason`` value).
        detail: Human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        """Hold the reason and the detail."""
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class DaemonUnavailable(ShimError):
    """The daemon could not answer: absent, slow, or speaking nonsense (retryable)."""


class ShimArgs:
    """The parsed command line.

    A plain slotted class rather than a dataclass: ``dataclasses`` imports ``inspect``, which
    alone costs more than half of the interpreter's start-up (see the module docstring).
    """

    __slots__ = ("digest", "name", "socket", "stdin_media_type", "timeout")

    def __init__(
        self,
        *,
        name: str,
        digest: str,
        stdin_media_type: str = DESCRIPTOR_MEDIA_TYPE,
        socket: str = DEFAULT_SOCKET,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Hold one invocation's flags."""
        self.name = name
        self.digest = digest
        self.stdin_media_type = stdin_media_type
        self.socket = socket
        self.timeout = timeout


class Verdict:
    """The fields of ``VerifyResponse`` the shim acts on (slotted for the same reason)."""

    __slots__ = ("allowed", "digest", "message", "reason")

    def __init__(self, *, allowed: bool, reason: str, message: str, digest: str) -> None:
        """Hold one response."""
        self.allowed = allowed
        self.reason = reason
        self.message = message
        self.digest = digest


class _HelpRequested(Exception):
    """``-h`` / ``-help``: print usage. Exit status 2, not 0: to containerd, 0 means "allow"."""


# ---------------------------------------------------------------------------------- argv / stdin


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
            raise _HelpRequested
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


# ---------------------------------------------------------------------------------- protobuf


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_verify_request(*, reference: str, digest: str, caller: str) -> bytes:
    """Serialise ``VerifyRequest{reference=1, digest=2, caller=5}``."""
    out = bytearray()
    for number, text in ((1, reference), (2, digest), (5, caller)):
        if text:
            raw = text.encode("utf-8", "surrogateescape")
            out += _varint(number << 3 | 2) + _varint(len(raw)) + raw
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DaemonUnavailable(ShimReason.INTERNAL, "daemon sent a malformed response")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_verify_response(data: bytes) -> Verdict:
    """Parse the ``VerifyResponse`` fields allowed=1, reason=2, message=3, digest=4.

    Raises:
        DaemonUnavailable: INTERNAL, for bytes that are not a valid message.
    """
    fields: dict[int, object] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            fields[number] = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise DaemonUnavailable(ShimReason.INTERNAL, "daemon sent a truncated response")
            fields[number] = data[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > len(data):
                raise DaemonUnavailable(ShimReason.INTERNAL, "daemon sent a truncated response")
        else:
            raise DaemonUnavailable(ShimReason.INTERNAL, "daemon sent a malformed response")

    def text(number: int) -> str:
        value = fields.get(number, b"")
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""

    allowed = fields.get(1, 0)
    return Verdict(
        allowed=isinstance(allowed, int) and allowed != 0,
        reason=text(2),
        message=text(3),
        digest=text(4),
    )


# ---------------------------------------------------------------------------------- HTTP/2 + gRPC

_DATA, _HEADERS, _RST, _SETTINGS, _PING, _GOAWAY, _WINDOW, _CONT = 0, 1, 3, 4, 6, 7, 8, 9
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_WINDOW_SIZE = 1 << 20
# Added to the deadline the daemon is told: the shim's own deadline must expire first, so a slow
# daemon is reported as TIMEOUT rather than as its DEADLINE_EXCEEDED status (which would arrive as
# an error reply, INTERNAL, when both deadlines expire within the same millisecond).
_SERVER_GRACE_MS = 200


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big")


def _hpack_int(value: int) -> bytes:
    """HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541 §5.1)."""
    if value < 127:
        return bytes((value,))
    out = bytearray((127,))
    value -= 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _header_block(headers: tuple[tuple[str, str], ...]) -> bytes:
    """Every field as "literal without indexing, new name" (RFC 7541 §6.2.2)."""
    out = bytearray()
    for name, value in headers:
        raw_name, raw_value = name.encode(), value.encode("utf-8", "surrogateescape")
        out += b"\x00" + _hpack_int(len(raw_name)) + raw_name
        out += _hpack_int(len(raw_value)) + raw_value
    return bytes(out)


def request_bytes(message: bytes, timeout: float) -> bytes:
    """Everything the client sends: preface, settings, window, headers, one gRPC message."""
    # SETTINGS_ENABLE_PUSH (0x2) = 0; SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 1 MiB.
    settings = b"\x00\x02" + bytes(4) + b"\x00\x04" + _WINDOW_SIZE.to_bytes(4, "big")
    headers = _header_block(
        (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", METHOD_PATH),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", f"{max(1, int(timeout * 1000)) + _SERVER_GRACE_MS}m"),
            ("user-agent", "pullgate-containerd-verifier"),
        )
    )
    body = b"\x00" + len(message).to_bytes(4, "big") + message
    out = bytearray(_PREFACE)
    out += _frame(_SETTINGS, 0, 0, settings) + settings
    window = _WINDOW_SIZE.to_bytes(4, "big")
    out += _frame(_WINDOW, 0, 0, window) + window
    out += _frame(_HEADERS, _END_HEADERS, 1, headers) + headers
    for start in range(0, len(body), 16384):
        chunk = body[start : start + 16384]
        flags = _END_STREAM if start + 16384 >= len(body) else 0
        out += _frame(_DATA, flags, 1, chunk) + chunk
    return bytes(out)


class _Conn:
    """A blocking unix-socket connection where every operation honours one deadline."""

    def __init__(self, path: str, deadline: float) -> None:
        self.path = path
        self.deadline = deadline
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.buf = b""

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)

    def connect(self) -> None:
        self._arm()
        self.sock.connect(self.path)

    def send(self, data: bytes) -> None:
        self._arm()
        self.sock.sendall(data)

    def recv_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._arm()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise DaemonUnavailable(
                    ShimReason.INTERNAL, "pullgate daemon closed the connection without an answer"
                )
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size:]
        return data


def _read_reply(conn: _Conn) -> bytes:
    """Collect the DATA of stream 1 until the stream ends; return the one gRPC message."""
    protocol = DaemonUnavailable(ShimReason.INTERNAL, "pullgate daemon answered with an error")
    body = bytearray()
    while True:
        header = conn.recv_exact(9)
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        if length > 16384:
            raise protocol
        payload = conn.recv_exact(length)
        if kind == _SETTINGS and not flags & _ACK:
            conn.send(_frame(_SETTINGS, _ACK, 0))
        elif kind == _PING and not flags & _ACK:
            conn.send(_frame(_PING, _ACK, 0, payload) + payload)
        elif kind in (_RST, _GOAWAY) and stream in (0, 1):
            raise protocol
        elif kind == _DATA and stream == 1:
            if flags & _PADDED:
                pad = payload[0] if payload else 0
                payload = payload[1 : len(payload) - pad] if 1 + pad <= len(payload) else b""
            body += payload
            if len(body) > MAX_RESPONSE or flags & _END_STREAM:
                raise protocol  # too large, or a gRPC stream must end with trailers
        elif kind == _HEADERS and stream == 1 and flags & _END_STREAM:
            break
    # A trailers-only response (an error status) carries no message at all.
    if len(body) < 5 or body[0] != 0 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        raise protocol
    return bytes(body[5:])


def call_verify(args: ShimArgs, deadline: float) -> Verdict:
    """One unary ``Verify`` call over the daemon's unix socket, bounded by ``deadline``.

    Raises:
        DaemonUnavailable: TIMEOUT when the daemon is slow, INTERNAL when it is absent or
            answers with an error or garbage.
    """
    message = encode_verify_request(reference=args.name, digest=args.digest, caller=CALLER)
    conn = _Conn(args.socket, deadline)
    try:
        conn.connect()
        conn.send(request_bytes(message, deadline - time.monotonic()))
        return decode_verify_response(_read_reply(conn))
    except TimeoutError as exc:
        raise DaemonUnavailable(
            ShimReason.TIMEOUT,
            f"pullgate daemon at {args.socket} did not answer within {args.timeout:g}s",
        ) from exc
    except OSError as exc:
        raise DaemonUnavailable(
            ShimReason.INTERNAL,
            f"pullgate daemon unreachable at {args.socket}: {exc.strerror or exc}",
        ) from exc
    finally:
        conn.sock.close()


# ---------------------------------------------------------------------------------- main


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
    except _HelpRequested:
        _write(1, _USAGE.encode())
        return ExitCode.USAGE
    except ShimError as exc:
        _write(1, clip(f"{exc.reason}: {exc.detail}\n{_USAGE}"))
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


if __name__ == "__main__":
    sys.exit(main())
