"""The containerd verifier shim: argv (Go flag syntax), stdin, wire encoding, reply handling.

The hand-written protobuf codec is checked against the generated ``pullgate.v1`` classes; the
HTTP/2 reply parser against a raw unix-socket peer sending scripted frames. The real gRPC server
interplay is in ``tests/integration/test_shim.py``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullgate.errors import PullgateError, Reason
from pullgate.shim import (
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    MAX_STDIN,
    MAX_STDOUT,
    DaemonUnavailable,
    ExitCode,
    ShimArgs,
    ShimError,
    ShimReason,
    check_descriptor,
    clip,
    decide,
    decode_verify_response,
    encode_verify_request,
    main,
    parse_args,
    parse_duration,
    parse_json,
    read_stdin,
)
from pullgate.v1 import verifier_pb2

DIGEST = "sha256:" + "ab" * 32
DAEMON_DIR = Path(__file__).resolve().parents[2] / "daemon"
HEAVY = ("cryptography", "pullgate.verification", "prometheus_client", "watchdog", "grpc")
# Pure-Python standard modules the shim avoids on purpose (start-up cost, see its docstring).
AVOIDED = frozenset(
    {
        "socket",
        "dataclasses",
        "typing",
        "json",
        "argparse",
        "logging",
        "enum",
        "re",
        "struct",
        "__future__",
        "pullgate.errors",
    }
)


def _reason(fn: Callable[[], object]) -> Reason:
    with pytest.raises(ShimError) as info:
        fn()
    return Reason(info.value.reason)


# ---------------------------------------------------------------------------------- vocabulary


def test_shim_reasons_are_reason_values() -> None:
    names = [name for name in vars(ShimReason) if not name.startswith("_")]
    assert names
    for name in names:
        assert Reason(getattr(ShimReason, name)) is Reason[name]


def test_parse_duration_keeps_the_domain_error_for_other_callers() -> None:
    with pytest.raises(PullgateError) as info:
        parse_duration("soon")
    assert info.value.reason is Reason.MALFORMED


# ---------------------------------------------------------------------------------- argv


@pytest.mark.parametrize(
    "argv",
    [
        ["-name", "docker.io/library/nginx:1", "-digest", DIGEST, "-stdin-media-type", "t"],
        ["--name", "docker.io/library/nginx:1", "--digest", DIGEST, "--stdin-media-type", "t"],
        ["-name=docker.io/library/nginx:1", "-digest=" + DIGEST, "--stdin-media-type=t"],
        ["-name", "docker.io/library/nginx:1", "-digest", DIGEST, "-stdin-media-type=t", "--"],
    ],
)
def test_go_flag_forms(argv: list[str]) -> None:
    args = parse_args(argv)
    assert (args.name, args.digest, args.stdin_media_type) == (
        "docker.io/library/nginx:1",
        DIGEST,
        "t",
    )
    assert (args.socket, args.timeout) == (DEFAULT_SOCKET, DEFAULT_TIMEOUT)


def test_extra_flags() -> None:
    args = parse_args(["-name", "r", "-digest", DIGEST, "-socket", "/s", "-timeout", "1m30s"])
    assert (args.socket, args.timeout) == ("/s", 90.0)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-name", "r"],
        ["-digest", DIGEST],
        ["-name", "r", "-digest", "nodigest"],
        ["-name", "r", "-digest", "sha256:"],
        ["-name", "r", "-digest", "SHA256:abc"],
        ["-name", "r", "-digest", "sha256:ab/cd"],
        ["-name", "r", "-digest", DIGEST, "-unknown", "x"],
        ["-name", "r", "-digest", DIGEST, "positional"],
        ["-name", "r", "-digest", DIGEST, "--", "positional"],
        ["-name", "r", "-digest"],
        ["-name", "", "-digest", DIGEST],
        ["-name", "r" * 9000, "-digest", DIGEST],
        ["-name", "r", "-digest", DIGEST, "-timeout", "soon"],
        ["-", "r"],
    ],
)
def test_bad_argv_is_malformed(argv: list[str]) -> None:
    assert _reason(lambda: parse_args(argv)) is Reason.MALFORMED


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5", 5.0), ("0.5", 0.5), ("500ms", 0.5), ("1m30s", 90.0), ("1.5s", 1.5), ("1h", 3600.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "-1s", "1x", "s", "1..2s", "nan", "inf", "5h"])
def test_bad_durations(text: str) -> None:
    args = ["-name", "r", "-digest", DIGEST, "-timeout", text]
    assert _reason(lambda: parse_args(args)) is Reason.MALFORMED


@pytest.mark.parametrize("flag", ["-h", "-help", "--help"])
def test_help_never_exits_with_the_allow_status(flag: str) -> None:
    # An image verifier's exit 0 allows the pull: printing usage must not.
    assert main([flag]) == ExitCode.USAGE
    assert main(["-name", "r", "-digest", "sha256:" + "a" * 64, flag]) == ExitCode.USAGE


def test_bad_argv_exits_with_usage_code() -> None:
    assert main(["-name", "r"]) == ExitCode.USAGE


# ---------------------------------------------------------------------------------- stdin


def _args(**changes: object) -> ShimArgs:
    fields: dict[str, object] = {"name": "r", "digest": DIGEST}
    fields.update(changes)
    return ShimArgs(**fields)  # type: ignore[arg-type]


def test_descriptor_matching_digest_passes() -> None:
    check_descriptor(b'{"mediaType":"m","digest":"' + DIGEST.encode() + b'","size":1}\n', _args())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", Reason.MALFORMED),
        (b"[1, 2]", Reason.MALFORMED),
        (b'{"digest": 7}', Reason.MALFORMED),
        (b"[" * 100000, Reason.MALFORMED),
        (b'{"digest": "sha256:' + b"0" * 64 + b'"}', Reason.DESCRIPTOR_MISMATCH),
    ],
)
def test_bad_descriptor(data: bytes, reason: Reason) -> None:
    assert _reason(lambda: check_descriptor(data, _args())) is reason


@pytest.mark.parametrize(
    "data",
    [
        b'{"digest": "' + DIGEST.encode() + b'"} {}',  # trailing value
        b'{"digest": "' + DIGEST.encode() + b'"}x',  # trailing garbage
        b'{"digest": "' + DIGEST.encode() + b'",}',  # trailing comma
        b'{"digest": "' + DIGEST.encode() + b'"',  # truncated
        b'{"digest" "' + DIGEST.encode() + b'"}',  # no colon
        b'{"digest": "sha256:\x01"}',  # control character in a string (strict)
        b'{"digest": "' + DIGEST.encode() + b'", "size": NaN}',
        b'{"digest": "' + DIGEST.encode() + b'", "size": -Infinity}',
        b'{"digest": "' + DIGEST.encode() + b'", "digest": "sha256:' + b"0" * 64 + b'"}',
        b'{"digest": "sha256:' + b"0" * 64 + b'", "digest": "' + DIGEST.encode() + b'"}',
        b'{"x": {"a": 1, "a": 1}, "digest": "' + DIGEST.encode() + b'"}',  # nested duplicate
        b"\xef\xbb\xbf" + b'{"digest": "' + DIGEST.encode() + b'"}',  # BOM: not plain UTF-8
        b'{"digest": "' + DIGEST.encode() + b'\xff"}',  # invalid UTF-8
        '{"digest": "x"}'.encode("utf-16"),
        b'{"size": ' + b"9" * 5000 + b', "digest": "' + DIGEST.encode() + b'"}',  # int digit cap
        b'{"digest": ' + b"[" * 100000 + b"}",
        b"\x00",
        b"'digest'",
        b'"' + DIGEST.encode() + b'"',
        b"null",
    ],
)
def test_hostile_descriptor_is_malformed(data: bytes) -> None:
    assert _reason(lambda: check_descriptor(data, _args())) is Reason.MALFORMED


def test_descriptor_escapes_are_decoded_before_comparing() -> None:
    escaped = DIGEST.replace("a", "\\u0061").encode()
    check_descriptor(b'{"digest": "' + escaped + b'"}', _args())
    surrogate = b'{"digest": "sha256:\\ud800"}'
    assert _reason(lambda: check_descriptor(surrogate, _args())) is Reason.DESCRIPTOR_MISMATCH


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # the shim refuses non-JSON Infinity
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON, st.sampled_from(["", " ", "\n", "\t\r\n "]))
def test_parse_json_agrees_with_json_loads(value: object, pad: str) -> None:
    for ensure_ascii in (True, False):
        data = (pad + json.dumps(value, ensure_ascii=ensure_ascii) + pad).encode(
            "utf-8", "surrogatepass"
        )
        try:
            expected = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            assert _reason(lambda: parse_json(data)) is Reason.MALFORMED  # noqa: B023
            continue
        assert parse_json(data) == expected


@given(st.binary(max_size=300))
def test_any_stdin_bytes_pass_or_give_a_typed_reason(data: bytes) -> None:
    try:
        check_descriptor(data, _args())
    except ShimError as exc:
        reason = exc.reason
    else:
        return
    assert Reason(reason) in (Reason.MALFORMED, Reason.DESCRIPTOR_MISMATCH)


@given(st.text(max_size=200))
def test_any_stdin_text_passes_or_gives_a_typed_reason(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    try:
        check_descriptor(data, _args())
    except ShimError as exc:
        reason = exc.reason
    else:
        return
    assert Reason(reason) in (Reason.MALFORMED, Reason.DESCRIPTOR_MISMATCH)


def test_other_stdin_media_types_and_empty_stdin_are_not_interpreted() -> None:
    check_descriptor(b"\x00binary", _args(stdin_media_type="application/x-future"))
    check_descriptor(b"  \n", _args())


def test_stdin_is_bounded() -> None:
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=lambda: os.write(write_fd, b"x" * (MAX_STDIN + 1)))
    os.set_blocking(write_fd, True)
    writer.start()
    try:
        assert _reason(lambda: read_stdin(read_fd, time.monotonic() + 10)) is Reason.MALFORMED
    finally:
        os.close(read_fd)
        writer.join()
        os.close(write_fd)


def test_stdin_reads_until_eof() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'{"digest":"x"}\n')
    os.close(write_fd)
    try:
        assert read_stdin(read_fd, time.monotonic() + 10) == b'{"digest":"x"}\n'
    finally:
        os.close(read_fd)


def test_stdin_never_closed_stops_at_the_deadline() -> None:
    read_fd, write_fd = os.pipe()
    try:
        assert read_stdin(read_fd, time.monotonic() + 0.05) == b""
    finally:
        os.close(read_fd)
        os.close(write_fd)


# ---------------------------------------------------------------------------------- protobuf


@given(st.text(max_size=300), st.text(max_size=80), st.text(max_size=40))
def test_request_encoding_matches_generated_code(ref: str, digest: str, caller: str) -> None:
    raw = encode_verify_request(reference=ref, digest=digest, caller=caller)
    parsed = verifier_pb2.VerifyRequest.FromString(raw)
    assert (parsed.reference, parsed.digest, parsed.caller) == (ref, digest, caller)


@given(st.booleans(), st.text(max_size=50), st.text(max_size=2000), st.text(max_size=80))
def test_response_decoding_matches_generated_code(
    allowed: bool, reason: str, message: str, digest: str
) -> None:
    msg = verifier_pb2.VerifyResponse(
        allowed=allowed,
        reason=reason,
        message=message,
        digest=digest,
        inconclusive=True,
        subjects=[verifier_pb2.SubjectResult(role="index", verified=True)],
        cache_hit=True,
        platform="linux/amd64",
    )
    verdict = decode_verify_response(msg.SerializeToString())
    assert (verdict.allowed, verdict.reason, verdict.message, verdict.digest) == (
        allowed,
        reason,
        message,
        digest,
    )


@pytest.mark.parametrize(
    "data",
    [b"\x08", b"\x12\x05ab", b"\x0b", b"\x09\x00", b"\x08" + b"\xff" * 11, b"\x0d\x00\x00"],
)
def test_garbage_response_is_daemon_unavailable(data: bytes) -> None:
    with pytest.raises(DaemonUnavailable) as info:
        decode_verify_response(data)
    assert Reason(info.value.reason) is Reason.DAEMON_UNAVAILABLE


@given(st.binary(max_size=200))
def test_any_response_bytes_give_a_verdict_or_a_typed_error(data: bytes) -> None:
    try:
        decode_verify_response(data)
    except DaemonUnavailable as exc:
        reason = exc.reason
    else:
        return
    assert Reason(reason) is Reason.DAEMON_UNAVAILABLE


# ---------------------------------------------------------------------------------- stdout


@given(st.text(min_size=1, max_size=40000))
def test_clip_stays_under_32k_and_valid_utf8(text: str) -> None:
    raw = clip(text)
    assert len(raw) <= MAX_STDOUT
    raw.decode("utf-8")
    if len(text.encode("utf-8", "replace")) <= MAX_STDOUT:
        assert raw == text.encode("utf-8", "replace")


# ---------------------------------------------------------------------------------- reply parsing


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame, header and payload."""
    head = struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream)
    return head + payload


def _message(**fields: object) -> bytes:
    body = verifier_pb2.VerifyResponse(**fields).SerializeToString()  # type: ignore[arg-type]
    return b"\x00" + struct.pack(">I", len(body)) + body


def _ok_reply(**fields: object) -> bytes:
    data = _message(**fields)
    return (
        _frame(4, 0, 0)
        + _frame(1, 4, 1, b"\x88")
        + _frame(0, 0, 1, data)
        + _frame(1, 5, 1, b"\x00")
    )


@pytest.fixture
def peer() -> Iterator[Callable[[bytes | None], str]]:
    """A raw unix-socket peer sending scripted bytes after the request.

    ``None``: accept and stay mute; ``b""``: close at once.
    """
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="pg-shim-", dir="/tmp") as name:
        path = str(Path(name) / "s.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        threads: list[threading.Thread] = []

        def start(script: bytes | None) -> str:
            def serve() -> None:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    if script == b"":
                        return  # close at once
                    if script is not None:
                        conn.sendall(script)
                        conn.recv(65536)
                    stop.wait(10)

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            threads.append(thread)
            return path

        yield start
        stop.set()
        for thread in threads:
            thread.join(10)
        listener.close()


def _decide(path: str, timeout: float = 5.0) -> tuple[int, Reason]:
    code, line = decide(_args(socket=path, timeout=timeout), b"", time.monotonic() + timeout)
    return code, Reason(line.split(":", 1)[0])


def test_allow(peer: Callable[[bytes | None], str]) -> None:
    path = peer(_ok_reply(allowed=True, reason="VERIFIED", digest=DIGEST))
    assert _decide(path) == (ExitCode.ALLOW, Reason.VERIFIED)


def test_ping_and_padding_are_handled(peer: Callable[[bytes | None], str]) -> None:
    data = _message(allowed=False, reason="UNTRUSTED")
    padded = bytes((3,)) + data + b"\x00\x00\x00"
    script = _frame(6, 0, 0, b"12345678") + _frame(0, 0x8, 1, padded) + _frame(1, 5, 1)
    assert _decide(peer(script)) == (ExitCode.DENY, Reason.UNTRUSTED)


def test_allowed_but_other_digest_is_denied(peer: Callable[[bytes | None], str]) -> None:
    path = peer(_ok_reply(allowed=True, reason="VERIFIED", digest="sha256:" + "cd" * 32))
    assert _decide(path) == (ExitCode.DENY, Reason.DESCRIPTOR_MISMATCH)


def test_denied_without_reason_still_denies(peer: Callable[[bytes | None], str]) -> None:
    assert _decide(peer(_ok_reply(allowed=False))) == (ExitCode.DENY, Reason.INTERNAL)


@pytest.mark.parametrize(
    "script",
    [
        _frame(1, 5, 1, b"\x00"),  # trailers-only: an error status
        _frame(3, 0, 1, b"\x00\x00\x00\x02"),  # RST_STREAM
        _frame(7, 0, 0, b"\x00" * 8),  # GOAWAY
        _frame(0, 1, 1, _message(allowed=True)),  # no trailers
        _frame(0, 0, 1, b"\x01\x00\x00\x00\x00") + _frame(1, 5, 1),  # compressed
        _frame(0, 0, 1, b"\x00\x00\x00\x00\x09\x08") + _frame(1, 5, 1),  # length mismatch
        b"\xff\xff\xff\x00\x00\x00\x00\x00\x01",  # oversized frame
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
        b"",  # closed without a word
    ],
    ids=[
        "trailers-only",
        "rst",
        "goaway",
        "no-trailers",
        "compressed",
        "short",
        "huge",
        "h1",
        "eof",
    ],
)
def test_broken_daemon_denies(peer: Callable[[bytes | None], str], script: bytes) -> None:
    assert _decide(peer(script)) == (ExitCode.UNAVAILABLE, Reason.DAEMON_UNAVAILABLE)


def test_mute_daemon_times_out(peer: Callable[[bytes | None], str]) -> None:
    assert _decide(peer(None), timeout=0.2) == (ExitCode.UNAVAILABLE, Reason.TIMEOUT)


def test_no_daemon(tmp_path: Path) -> None:
    assert _decide(str(tmp_path / "absent.sock")) == (
        ExitCode.UNAVAILABLE,
        Reason.DAEMON_UNAVAILABLE,
    )


# ---------------------------------------------------------------------------------- start-up


def test_startup_imports_nothing_heavy(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import sys; from pullgate.shim import main; sys.exit(main())",
            "-name",
            "r",
            "-digest",
            DIGEST,
            "-socket",
            str(tmp_path / "no"),
        ],
        input=b"",
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(DAEMON_DIR)},
        check=False,
    )
    assert proc.returncode == ExitCode.UNAVAILABLE
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert "pullgate.shim" in imported
    heavy = {m for m in imported if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}
    assert not heavy
    # Also not the pure-Python wrappers the shim avoids on purpose.
    assert not imported & AVOIDED


def _run_main(stdin: bytes, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """``pullgate.shim.main`` in a fresh interpreter (nothing imported but what it imports)."""
    code = "import sys; from pullgate.shim import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "-name", "r", "-digest", DIGEST, *argv],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(DAEMON_DIR)},
        check=False,
    )


@pytest.mark.parametrize(
    "stdin",
    [b'{"digest" 1}', b'{"digest": "a\x01"}', b"[1,]", b"{", b'{"digest": NaN}'],
    ids=["syntax", "control-char", "trailing-comma", "truncated", "nan"],
)
def test_malformed_stdin_in_a_fresh_interpreter_is_malformed(stdin: bytes, tmp_path: Path) -> None:
    # Without ``json`` imported, CPython 3.11's C scanner reports some syntax errors oddly
    # (SystemError); the verdict must still be a MALFORMED usage error, before any daemon call.
    proc = _run_main(stdin, "-socket", str(tmp_path / "no"))
    assert proc.returncode == ExitCode.USAGE
    assert Reason(proc.stdout.decode().split(":", 1)[0]) is Reason.MALFORMED


def test_matching_stdin_in_a_fresh_interpreter_reaches_the_daemon(tmp_path: Path) -> None:
    stdin = b'{"mediaType":"m","digest":"' + DIGEST.encode() + b'","size":1}\n'
    proc = _run_main(stdin, "-socket", str(tmp_path / "no"))
    assert proc.returncode == ExitCode.UNAVAILABLE  # parsed, matched, then no daemon
    assert Reason(proc.stdout.decode().split(":", 1)[0]) is Reason.DAEMON_UNAVAILABLE
