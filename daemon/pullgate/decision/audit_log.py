"""The audit sink: one JSON line per decision on the ``pullgate.audit`` logger.

The decider builds each record (:mod:`pullgate.decision.audit`: reference, digests, platform,
statement, level, decision, reason, signer subject and certificate fingerprint, cache hit,
timings) and hands it to :meth:`AuditLog.write` through its ``audit`` hook, so every front end
(gRPC, CRI proxy, shim) audits the same way. The server adds one record of its own: a request
rejected as malformed before it reached the decider (:meth:`AuditLog.record_denial`).

Credentials never reach the log: records are built from the decision, not from the request's
credentials, and as a second line of defence any key that names a secret is dropped here.
Under systemd the logger writes to stderr and journald keeps it; operators can route
``pullgate.audit`` elsewhere with ordinary logging configuration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

AUDIT_LOGGER = "pullgate.audit"

SECRET_KEYS = frozenset(
    {"credentials", "password", "auth", "identity_token", "registry_token", "authorization"}
)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _clean(value: object) -> bool:
    """True when ``value`` is plain JSON data with no key naming a secret (the common case,
    checked without copying; anything else takes :func:`_scrub`)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict) and type(item) is dict:
            for key, child in item.items():
                if type(key) is not str or key.lower() in SECRET_KEYS:
                    return False
                if type(child) not in _PLAIN:
                    pending.append(child)
        elif isinstance(item, list) and type(item) is list:
            pending.extend(child for child in item if type(child) not in _PLAIN)
        elif type(item) not in _PLAIN:
            return False
    return True


def _scrub(value: object) -> object:
    # Scalars first: they are most of a record, and the Mapping ABC check is slow for them.
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items() if str(k).lower() not in SECRET_KEYS}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class AuditLog:
    """Writes audit records as single JSON lines to one logger (``pullgate.audit`` by default).

    Thread-safe (logging is); the decider calls :meth:`write` from its worker threads.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def write(self, record: Mapping[str, object]) -> None:
        """Write one record (keys naming secrets are dropped; non-JSON values as strings).

        Nothing is serialised when the logger would drop the line anyway.
        """
        if not self._log.isEnabledFor(logging.INFO):
            return
        data = record if _clean(record) else _scrub(record)
        line = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
        self._log.info("%s", line)

    def record_denial(self, reference: str, reason: str, caller: str) -> None:
        """Audit a request denied before it reached the decider (malformed input)."""
        self.write(
            {
                "event": "decision",
                "decision": "deny",
                "reason": reason,
                "reference": reference,
                "caller": caller,
                "digest": "",
                "digests": {},
                "subjects": [],
                "signer_subject": None,
                "signer_fingerprint": None,
                "cache_hit": False,
            }
        )
