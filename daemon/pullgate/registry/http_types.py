"""What the registry transport hands out: response and request records, the typed errors of
an exchange, and ``Retry-After`` parsing (see :mod:`pullgate.registry.transport`)."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC

from pullgate.common.clock import Clock
from pullgate.common.textnum import ascii_int
from pullgate.errors import MalformedInput, Reason
from pullgate.registry.http_errors import redact_url
from pullgate.registry.model import RegistryError, RegistryLimits

__all__ = [
    "HttpStatusError",
    "RequestLogHook",
    "RequestRecord",
    "Response",
    "ResponseTooLarge",
    "parse_retry_after",
    "retry_delay",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One HTTP exchange, as reported to the request log hook (no headers, no secrets)."""

    method: str
    url: str  # query values redacted except the safe distribution-spec keys
    status: int | None  # None when the exchange failed at transport level
    size: int  # body bytes read
    error: Reason | None = None


RequestLogHook = Callable[[RequestRecord], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A fully read (and capped) HTTP response."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (urllib3 HTTPHeaderDict)
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        """A header value, or None when absent."""
        return self.headers.get(name)

    def header_values(self, name: str) -> list[str]:
        """Every value of a repeated header (e.g. ``Link``, ``WWW-Authenticate``)."""
        getlist = getattr(self.headers, "getlist", None)
        if getlist is not None:
            values: list[str] = getlist(name)
            return values
        value = self.headers.get(name)
        return [value] if value is not None else []


class ResponseTooLarge(MalformedInput):
    """A response body exceeded its cap (announced by ``Content-Length`` or while streaming).

    ``bytes_read`` is how much of the body was read before giving up (at most cap + 1).
    """

    def __init__(self, detail: str, *, bytes_read: int = 0) -> None:
        super().__init__(detail)
        self.bytes_read = bytes_read


class HttpStatusError(RegistryError):
    """An endpoint answered with an unexpected HTTP status (``status`` says which)."""

    def __init__(self, status: int, detail: str, *, endpoint: str | None = None) -> None:
        reason = Reason.REGISTRY_AUTH if status in (401, 403) else Reason.REGISTRY_ERROR
        super().__init__(reason, detail, endpoint=endpoint)
        self.status = status


def parse_retry_after(value: str | None, clock: Clock) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    seconds = ascii_int(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        # OverflowError: a day, year or zone offset too large for datetime ("21 Oct 30444…").
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - clock.now()).total_seconds())


def retry_delay(
    response: Response, attempt: int, limits: RegistryLimits, clock: Clock, deadline: float | None
) -> float | None:
    """How long to wait before retrying a 429/503 (``attempt`` retries so far): its
    ``Retry-After``, or a doubling back-off; None (do not retry) when that is over
    ``limits.max_retry_after`` or would end past ``deadline`` (``time.perf_counter()``)."""
    delay = parse_retry_after(response.header("Retry-After"), clock)
    if delay is None:
        delay = min(0.1 * (2**attempt), limits.max_retry_after)
    if delay > limits.max_retry_after or (
        deadline is not None and time.perf_counter() + delay >= deadline
    ):
        log.info(
            "%s asked to retry after %.1fs (ceiling %.1fs, or past the deadline); not retrying",
            redact_url(response.url),
            delay,
            limits.max_retry_after,
        )
        return None
    return delay
