"""The audit sink and the one secret scrubber every audit record passes through.

Records are built by :class:`pullgate.decision.record.DecisionRecorder` (decisions, refusals
and the front ends' other events), scrubbed there by :func:`scrub` and written here by
:meth:`AuditLog.write` as one JSON line on the ``pullgate.audit`` logger (docs/architecture.md
§3.9). Under systemd the logger writes to stderr and journald keeps it; operators can route
``pullgate.audit`` elsewhere with ordinary logging configuration.

:func:`scrub` removes, at any depth: keys naming a secret; the request's own secret values
(password, identity and registry tokens); URL userinfo and query values (through
:func:`pullgate.registry.http_errors.redact_url`); the credential after ``Bearer``/``Basic`` and
after ``token=``/``password:``-style assignments. A record with nothing suspicious (the common
case) is returned as it is, checked without copying.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pullgate.registry.http_errors import redact_url

__all__ = ["AUDIT_LOGGER", "REDACTED", "SECRET_KEYS", "AuditLog", "scrub"]

AUDIT_LOGGER = "pullgate.audit"
REDACTED = "<redacted>"

SECRET_KEYS = frozenset(
    {"credentials", "password", "auth", "identity_token", "registry_token", "authorization"}
)

_PLAIN = frozenset({str, int, float, bool, type(None)})
# Anything that may carry a credential in free text (lower case); a record whose strings hold
# none of these, and no request secret, is clean. Plain substring tests: this runs for every
# decision, and one ``in`` over the joined strings is far cheaper than a regular expression.
_SUSPECT_WORDS = ("bearer", "basic", "token", "passw", "secret", "authoriz")
_DIGEST = "sha256:"
_URL_SECRET = re.compile(r"://[^\s/?#]*@|://[^\s]*\?")  # userinfo or a query
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_SCHEME = re.compile(r"\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_ASSIGNED = re.compile(
    r"\b([A-Za-z_-]*(?:token|password|passwd|secret|authorization))(\s*[:=]\s*)"
    r"(?!<redacted>)[^\s,;&\"']+",
    re.IGNORECASE,
)


def _suspicious(text: str, secrets: Sequence[str]) -> bool:
    lowered = text.lower()
    for word in _SUSPECT_WORDS:
        if word in lowered:
            return True
    if "://" in text and _URL_SECRET.search(text) is not None:
        return True
    return any(s in text for s in secrets) if secrets else False


def _clean(value: Mapping[str, object], secrets: Sequence[str]) -> bool:
    """True when ``value`` is plain JSON data with no secret-named key and no suspicious
    string (checked without copying; anything else takes :func:`_rewrite`)."""
    pending: list[object] = [value]
    texts: list[str] = []
    keep = texts.append
    children: Iterable[object]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            children = item.values()
            for key in item:
                if type(key) is not str or key.lower() in SECRET_KEYS:
                    return False
        elif type(item) is list:
            children = item
        else:
            return False
        for child in children:
            kind = type(child)
            if kind is str:
                # Digests and fingerprints (letters and digits, or "sha256:" and those) cannot
                # hold a URL, a header or an assignment; only a request secret could hide there.
                if secrets or not (
                    child.isalnum() or (child[7:].isalnum() and child[:7] == _DIGEST)
                ):
                    keep(child)
            elif kind is dict or kind is list:
                pending.append(child)
            elif kind not in _PLAIN:
                return False
    return not _suspicious("\x00".join(texts), secrets)


def _text(value: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        value = value.replace(secret, REDACTED)
    if not _suspicious(value, ()):
        return value
    value = _URL.sub(_url, value)
    value = _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)
    return _ASSIGNED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)


def _url(match: re.Match[str]) -> str:
    url = match.group(0)
    authority = url.split("://", 1)[1].split("/", 1)[0]
    if "@" not in authority and "?" not in url:
        return url
    return redact_url(url)


def _rewrite(value: object, secrets: Sequence[str]) -> object:
    if isinstance(value, str):
        return _text(value, secrets)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {
            str(k): _rewrite(v, secrets)
            for k, v in value.items()
            if str(k).lower() not in SECRET_KEYS
        }
    if isinstance(value, list | tuple):
        return [_rewrite(v, secrets) for v in value]
    return _text(str(value), secrets)


def scrub(record: Mapping[str, object], secrets: Sequence[str] = ()) -> dict[str, Any]:
    """``record`` without secrets (see the module docstring); ``secrets``: the request's own
    secret values, replaced wherever they appear. The record itself when it is clean."""
    if _clean(record, secrets):
        return record if type(record) is dict else dict(record)
    return {str(k): _rewrite(v, secrets) for k, v in record.items() if k.lower() not in SECRET_KEYS}


class AuditLog:
    """Writes (already scrubbed) audit records as single JSON lines to one logger
    (``pullgate.audit`` by default). Thread-safe (logging is).

    A line is the record's JSON (keys sorted, no spaces, non-JSON values as strings) passed
    to the logger's handlers exactly as ``logger.info("%s", line)`` would, less the per-line
    search of the call stack for the caller: the caller is always :meth:`write`
    (docs/decisions.md, "An audit line costs less CPU")."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)
        self._encode = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":")).encode

    def enabled(self) -> bool:
        """Whether a record written now would reach a handler (the logger passes INFO)."""
        return self._log.isEnabledFor(logging.INFO)

    def write(self, record: Mapping[str, object]) -> None:
        """Write one record (non-JSON values as strings); nothing is serialised when the
        logger would drop the line anyway."""
        logger = self._log
        if not logger.isEnabledFor(logging.INFO):
            return
        line = self._encode(record)
        code = AuditLog.write.__code__
        logger.handle(
            logger.makeRecord(
                logger.name,
                logging.INFO,
                code.co_filename,
                code.co_firstlineno,
                "%s",
                (line,),
                None,
                "write",
            )
        )
