"""The byte-relay floor: what any proxy that forwards a unix-socket connection costs here.

Each accepted connection gets its own connection to the runtime and one thread per direction
copying bytes with blocking sockets, nothing parsed: the model of the runtime gate's splice
transport without its frame parsing, HPACK decoding and decisions. ``bench/start.py`` runs it
as its own process beside ``pullgate serve`` and divides by it.

Usage: ``python bench/byte_relay.py SOCKET UPSTREAM`` (UPSTREAM: a path or ``unix:///path``);
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading

CHUNK = 65_536


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, upstream: str) -> None:
    while True:
        try:
            caller, _ = listener.accept()
        except OSError:
            return
        runtime = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            runtime.connect(upstream)
        except OSError:
            caller.close()
            runtime.close()
            continue
        for source, sink in ((caller, runtime), (runtime, caller)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    socket_path, upstream = argv
    upstream = upstream.removeprefix("unix://").removeprefix("unix:")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=_serve, args=(listener, upstream), daemon=True).start()
    stop.wait()
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
