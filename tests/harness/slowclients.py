"""Slow clients (slowloris): sockets that send a request's headers one line at a time, forever.

    with slow_clients(base_url, count=32):
        httpx.get(f"{base_url}/health", timeout=10)   # must still answer

Each socket sends a request line and then one more header line every `interval` seconds from a
background thread, never ending the headers; a server that gives each connection a thread while
it reads the headers runs out of threads. Everything is closed when the block ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit


@contextlib.contextmanager
def slow_clients(base_url: str, count: int, interval: float = 0.5) -> Iterator[list[socket.socket]]:
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    sockets = [socket.create_connection((host, port), timeout=5) for _ in range(count)]
    for sock in sockets:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\n".encode())
    stop = threading.Event()
    trickle = threading.Thread(target=_trickle, args=(sockets, stop, interval), daemon=True)
    trickle.start()
    try:
        yield sockets
    finally:
        stop.set()
        trickle.join(timeout=10)
        for sock in sockets:
            sock.close()


def _trickle(sockets: list[socket.socket], stop: threading.Event, interval: float) -> None:
    line = 0
    while not stop.wait(interval):
        line += 1
        for sock in sockets:
            with contextlib.suppress(OSError):  # the server may hang up on a slow client
                sock.sendall(f"X-Slow-{line}: still-coming\r\n".encode())
