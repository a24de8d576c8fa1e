"""The OCSP/CRL fetcher against a responder that drips its answer: the whole exchange ends
(inconclusive ``REVOCATION_UNKNOWN``) and the connection is let go of."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pullgate.errors import Reason
from pullgate.verification.http_fetch import RevocationFetchError, Urllib3Fetcher
from tests.support.raw_http import RawConnection, RawServer

JOIN = 30.0  # generous: "finished", never "finished quickly"


def _drip(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", interval=0.05)


def _drip_close_delimited(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", interval=0.05)


@pytest.mark.parametrize("script", [_drip, _drip_close_delimited], ids=["length", "close"])
def test_dripping_responder_is_inconclusive_and_let_go(script: Any) -> None:
    box: list[Any] = []
    with RawServer(script) as server:

        def fetch() -> None:
            try:
                box.append(Urllib3Fetcher().get(f"{server.url}/crl", timeout=0.5, max_bytes=10**6))
            except RevocationFetchError as exc:
                box.append(exc)

        thread = threading.Thread(target=fetch, daemon=True)
        thread.start()
        thread.join(JOIN)
        assert not thread.is_alive(), "the fetch never finished"
        assert isinstance(box[0], RevocationFetchError), box[0]
        assert box[0].reason is Reason.REVOCATION_UNKNOWN
        assert server.wait_idle(JOIN)
