"""The OCSP/CRL fetcher against a responder that drips its answer: the whole exchange ends
(inconclusive ``REVOCATION_UNKNOWN``) and the connection is let go of."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import pytest

from pullgate.errors import Reason
from pullgate.net.deadline import bounded_by
from pullgate.verification.revocation.fetch import RevocationFetchError
from tests.support.parts import build_fetcher
from tests.support.raw_http import RawConnection, RawServer
from tests.support.threads import JOIN, outcome_of


def _drip(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", interval=0.05)


def _drip_close_delimited(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", interval=0.05)


def _fetch(url: str, *, timeout: float, bound: float | None = None) -> Any:
    """The fetch's result or error (``bound``: run inside ``bounded_by`` that many seconds from
    now)."""
    cap = bounded_by(time.perf_counter() + bound) if bound is not None else nullcontext()
    with cap:
        return build_fetcher().get(url, timeout=timeout, max_bytes=10**6)


@pytest.mark.parametrize("script", [_drip, _drip_close_delimited], ids=["length", "close"])
def test_dripping_responder_is_inconclusive_and_let_go(script: Any) -> None:
    with RawServer(script) as server:
        outcome = outcome_of(lambda: _fetch(f"{server.url}/crl", timeout=0.5))
        assert isinstance(outcome, RevocationFetchError), outcome
        assert outcome.reason is Reason.REVOCATION_UNKNOWN
        assert server.wait_idle(JOIN)


def test_a_thread_bound_caps_the_fetch_below_its_own_timeout() -> None:
    """Inside ``bounded_by`` (a decision's budget) a fetch ends by the bound, not by twice its
    own timeout: with a 100 s timeout only the bound can end it within the join bound."""
    with RawServer(_drip) as server:
        outcome = outcome_of(lambda: _fetch(f"{server.url}/crl", timeout=100.0, bound=0.3))
    assert isinstance(outcome, RevocationFetchError), outcome
    assert outcome.reason is Reason.REVOCATION_UNKNOWN


def test_a_superscript_content_length_is_a_typed_fetch_error_not_a_crash() -> None:
    def script(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\nConnection: close\r\n\r\nxy")

    with RawServer(script) as server:
        outcome = outcome_of(lambda: _fetch(f"{server.url}/crl", timeout=2.0))
    assert not isinstance(outcome, ValueError), outcome
    if isinstance(outcome, Exception):
        assert isinstance(outcome, RevocationFetchError), outcome
        assert outcome.reason is Reason.REVOCATION_UNKNOWN
