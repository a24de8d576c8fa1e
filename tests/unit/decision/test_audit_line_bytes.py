"""An audit line is byte for byte what ``logger.info("%s", json.dumps(...))`` wrote, for
representative records, secrets and non-JSON values included (docs/decisions.md, "An audit
line costs less CPU")."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import PurePosixPath

import pytest

from pullgate.decision.audit_log import AuditLog, scrub
from pullgate.errors import Reason

SECRET = "s3cr3t-Passw0rd"
_FORMAT = "%(levelname)s %(name)s: %(message)s"  # the daemon's stderr format


class _Kind(Enum):
    ONE = "one"


_RECORDS: list[tuple[Mapping[str, object], Sequence[str]]] = [
    (
        {
            "event": "start.create",
            "front": "runtime",
            "decision": "allow",
            "reason": Reason.VERIFIED.value,
            "message": "a current allow covers it",
            "image_id": "sha256:" + "ab" * 32,
            "reference": "registry.example.com/team/app:1.2.3",
            "critical": False,
            "break_glass": False,
            "verified_now": False,
        },
        (),
    ),
    (
        {
            "event": "decision",
            "decision": "deny",
            "reason": Reason.NOT_VERIFIED.value,
            "message": f"GET https://bob:{SECRET}@r.example/v2/?token=abc Authorization: "
            "Bearer eyJabc.def password=hunter2 ünïcödé",
            "reference": f"r.example/app:{SECRET}",
            "caller": "kubelet token=xyz",
            "front": "cri",
            "credentials": {"password": SECRET},
            "subjects": [{"authorization": "Basic Zm9vOmJhcg==", "note": "secret: s"}],
            "digests": {"linux/amd64": "sha256:" + "cd" * 32},
            "signer_subject": None,
            "cache_hit": True,
            "count": 3,
            "ratio": 0.5,
        },
        (SECRET,),
    ),
    (
        {
            "event": "node.audit",
            "kind": "image",
            "reason": Reason.NOT_VERIFIED,  # non-JSON values are written as strings
            "path": PurePosixPath("/etc/pullgate/trust"),
            "kind2": _Kind.ONE,
            "names": ("a", "b"),
            "nested": {"z": [1, {"y": None}], "a": '"quoted" \\ \n \x00 tab\t'},
        },
        (),
    ),
]


def _logger() -> tuple[logging.Logger, io.StringIO]:
    logger = logging.getLogger(f"pullgate.audit.test-{uuid.uuid4().hex}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


@pytest.fixture
def loggers() -> tuple[logging.Logger, io.StringIO, logging.Logger, io.StringIO]:
    return (*_logger(), *_logger())


def _old_write(logger: logging.Logger, record: Mapping[str, object]) -> None:
    line = json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))
    logger.info("%s", line)


def test_lines_are_byte_identical_to_logger_info_of_json_dumps(
    loggers: tuple[logging.Logger, io.StringIO, logging.Logger, io.StringIO],
) -> None:
    old_logger, old_stream, new_logger, new_stream = loggers
    audit = AuditLog(new_logger)
    for record, secrets in _RECORDS:
        _old_write(old_logger, scrub(record, secrets))
        audit.write(scrub(record, secrets))
    written = new_stream.getvalue()
    assert written.replace(new_logger.name, "L") == old_stream.getvalue().replace(
        old_logger.name, "L"
    )
    assert written.count("\n") == len(_RECORDS)  # no line dropped, none split
    assert SECRET not in written
    assert "hunter2" not in written
    assert "Zm9vOmJhcg" not in written


def test_a_secret_record_is_pinned_exactly(
    loggers: tuple[logging.Logger, io.StringIO, logging.Logger, io.StringIO],
) -> None:
    _, _, logger, stream = loggers
    AuditLog(logger).write(
        scrub({"b": f"Bearer {SECRET} x", "a": "é", "password": SECRET, "n": [1, True]}, ())
    )
    assert stream.getvalue() == (
        f'INFO {logger.name}: {{"a":"\\u00e9","b":"Bearer <redacted> x","n":[1,true]}}\n'
    )


def test_the_log_record_names_the_writer(
    loggers: tuple[logging.Logger, io.StringIO, logging.Logger, io.StringIO],
) -> None:
    _, _, logger, _ = loggers
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger.addHandler(Keep())
    AuditLog(logger).write({"event": "x"})
    (record,) = seen
    assert record.levelno == logging.INFO
    assert record.name == logger.name
    assert record.funcName == "write"
    assert record.pathname.endswith("audit_log.py")
    assert record.getMessage() == '{"event":"x"}'
    assert record.exc_info is None


def test_a_disabled_or_quiet_logger_gets_nothing(
    loggers: tuple[logging.Logger, io.StringIO, logging.Logger, io.StringIO],
) -> None:
    _, _, logger, stream = loggers
    logger.setLevel(logging.WARNING)
    AuditLog(logger).write({"event": "x"})
    logger.setLevel(logging.INFO)
    logger.disabled = True
    AuditLog(logger).write({"event": "x"})
    assert stream.getvalue() == ""
