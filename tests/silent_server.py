"""Hosts that never answer, for the tests of unreachable upstreams: a free port nobody listens on, and a
server on 127.0.0.1 that accepts every connection and never sends a byte."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A port on 127.0.0.1 with nobody listening (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """("127.0.0.1:PORT", the connections accepted so far) of a server that accepts and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted.append(conn)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{srv.getsockname()[1]}", accepted
    finally:
        stop.set()
        t.join(2)
        for c in accepted:
            c.close()
        srv.close()
