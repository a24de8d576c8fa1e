"""The daemon's audit records as a test reads them: every record written on ``pullgate.audit``
while :func:`captured_audit` is active, parsed (the daemon runs in the test's process)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pullgate.decision.audit_log import AUDIT_LOGGER


class AuditLines(logging.Handler):
    """Every record the daemon writes on ``pullgate.audit``, parsed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))


@contextmanager
def captured_audit() -> Iterator[AuditLines]:
    """Collect the audit records written inside the block (the logger's level is restored)."""
    lines = AuditLines()
    audit = logging.getLogger(AUDIT_LOGGER)
    level = audit.level
    audit.setLevel(logging.INFO)
    audit.addHandler(lines)
    try:
        yield lines
    finally:
        audit.removeHandler(lines)
        audit.setLevel(level)
