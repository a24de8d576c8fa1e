"""The runtime -> caller direction of a spliced connection (:mod:`pullgate.cri.splice.conn` says
what the splice does): whole frames forwarded as they come, but those of streams pullgate
answered itself (their ``DATA`` credited back to the runtime); a runtime ``DATA`` frame that
pullgate's own answers left no room for in the caller's window waits; the end of each timed
pass-through call observed, and of each quick-allowed call (its allow is then settled). A batch
with no stream held or answered, and no answer debt, takes a lean loop (docs/decisions.md has
the numbers).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time

from pullgate.cri.splice.base import RECV_BYTES, WINDOW_WAIT, SpliceState
from pullgate.cri.splice.frames import (
    CONTINUATION,
    DATA,
    END_STREAM,
    FRAME_HEADER,
    HEADER_BYTES,
    HEADERS,
    RST_STREAM,
    SETTINGS,
    STREAM_MASK,
    window_update,
)
from pullgate.cri.splice.settle import Settle
from pullgate.errors import MalformedInput

__all__ = ["Downstream"]

log = logging.getLogger(__name__)


class Downstream(SpliceState):
    """The runtime -> caller relay thread's side (the arguments are
    :class:`~pullgate.cri.splice.base.SpliceState`'s)."""

    def _responses(self) -> None:
        try:
            self._pump_responses()
        except (MalformedInput, OSError) as exc:
            log.debug("runtime gate: connection ended: %s", exc)
            self.shutdown()
        except Exception:  # a bug must cost this connection, never the gate
            log.exception("runtime gate: closing a connection")
            self.shutdown()
        finally:
            self._end()

    def _pump_responses(self) -> None:
        upstream = self._upstream
        if upstream is None:
            return
        data = b""
        pos = 0
        while True:
            data = data[pos:]
            chunk = upstream.recv(RECV_BYTES)
            if not chunk:
                with contextlib.suppress(OSError):
                    self._client.shutdown(socket.SHUT_WR)
                return
            data = data + chunk if data else chunk
            pos, credit = self._response_batch(data)
            if credit:
                with self._up_lock:
                    upstream.sendall(window_update(0, credit))

    def _response_batch(self, data: bytes) -> tuple[int, int]:
        """Forward the whole frames of ``data`` but those of streams pullgate answered;
        returns the end of the last whole frame and the DATA bytes dropped."""
        took: list[float] = []
        ended: list[Settle] = []
        with self._down_lock:
            if not self._decided and not self._debt:  # the usual case
                pos, credit = self._passing_batch(data, took, ended), 0
                if pos:
                    self._client.sendall(data if pos == len(data) else data[:pos])
            else:
                pos, credit = self._mixed_batch(data, took, ended)
        if ended:  # quick allows whose answers have gone out
            self._settle(ended)
        if took and self._observe is not None:
            now = time.perf_counter()
            for begun in took:
                self._observe(now - begun)
        return pos, credit

    def _mixed_batch(self, data: bytes, took: list[float], ended: list[Settle]) -> tuple[int, int]:
        """``_response_batch`` with streams held, answered or quick-allowed, or pullgate's
        answers using the caller's window (with ``_down_lock`` held); the quick allows whose
        answers end in ``data`` go to ``ended``."""
        pos = fwd = credit = 0
        size = len(data)
        out: list[bytes] = []
        decided, started, settling = self._decided, self._started, self._settling
        unpack = FRAME_HEADER.unpack_from
        while size - pos >= HEADER_BYTES:
            high, low, kind, flags, stream = unpack(data, pos)
            start = pos
            pos = start + HEADER_BYTES + ((high << 16) | low)
            if pos > size:
                pos = start
                break
            if kind == SETTINGS:
                self._runtime_settings(data[start + HEADER_BYTES : pos], flags)
                continue
            stream &= STREAM_MASK
            ends = kind == RST_STREAM or (kind <= HEADERS and flags & END_STREAM)
            if ends and started:
                begun = started.pop(stream, None)
                if begun is not None:
                    took.append(begun)
            if ends and settling:
                settle = settling.pop(stream, None)
                if settle is not None:
                    ended.append(settle)
            held = decided.get(stream) if decided else None
            if held is not None:
                if held.dropping and kind not in (HEADERS, CONTINUATION):
                    if kind == DATA:
                        credit += pos - start - HEADER_BYTES
                    out.append(data[fwd:start])
                    fwd = pos
                    continue
                if ends:
                    held.upstream_closed = True
            if kind == DATA:
                length = pos - start - HEADER_BYTES
                if self._debt and length > self._credited - self._received:
                    out.append(data[fwd:start])
                    self._client.sendall(b"".join(out))
                    out.clear()
                    fwd = start
                    self._wait_for_room(length)
                self._received += length
        if out:
            out.append(data[fwd:pos])
            self._client.sendall(b"".join(out))
        elif fwd < pos:
            self._client.sendall(data[fwd:pos] if fwd or pos < size else data)
        return pos, credit

    def _passing_batch(self, data: bytes, took: list[float], ended: list[Settle]) -> int:
        """``_response_batch`` when no stream is held or answered and pullgate's answers owe
        the runtime nothing (with ``_down_lock`` held): every frame goes through, read only for
        the runtime's SETTINGS, the DATA the caller receives, the end of timed calls and of
        quick-allowed ones (to ``ended``); returns the end of the last whole frame."""
        pos, size, received = 0, len(data), 0
        started, settling = self._started, self._settling
        unpack = FRAME_HEADER.unpack_from
        while size - pos >= HEADER_BYTES:
            high, low, kind, flags, stream = unpack(data, pos)
            end = pos + HEADER_BYTES + ((high << 16) | low)
            if end > size:
                break
            if kind == DATA:
                received += end - pos - HEADER_BYTES
                ends = flags & END_STREAM
            elif kind == HEADERS:
                ends = flags & END_STREAM
            elif kind == SETTINGS:
                self._runtime_settings(data[pos + HEADER_BYTES : end], flags)
                ends = 0
            else:
                ends = kind == RST_STREAM
            if ends and started:
                begun = started.pop(stream & STREAM_MASK, None)
                if begun is not None:
                    took.append(begun)
            if ends and settling:
                settle = settling.pop(stream & STREAM_MASK, None)
                if settle is not None:
                    ended.append(settle)
            pos = end
        self._received += received
        return pos

    def _wait_for_room(self, length: int) -> None:
        """With ``_down_lock`` held: wait until the caller can take ``length`` more bytes (the
        runtime counts on a window that pullgate's own answers used part of).

        Raises:
            OSError: the caller's window stayed shut.
        """
        if not self._room.wait_for(
            lambda: length <= self._credited - self._received or not self._debt, WINDOW_WAIT
        ):
            raise OSError("the caller's flow-control window stayed shut")
