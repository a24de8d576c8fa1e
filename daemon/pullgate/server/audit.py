"""The audit sink: one JSON line per decision on the ``pullgate.audit`` logger (issue 5 item 6).

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


def _scrub(value: object) -> object:
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
        """Write one record (keys naming secrets are dropped; non-JSON values as strings)."""
        line = json.dumps(_scrub(record), sort_keys=True, default=str, separators=(",", ":"))
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
