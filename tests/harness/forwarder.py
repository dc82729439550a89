"""A TCP forwarder on loopback: the stand-in for a Kubernetes Service such as CloudNativePG's
`<cluster>-rw`, as kube-proxy gives it to the pods (a stub for the network only).

Each connection accepted is forwarded to the current target port. `point_to` changes the
target and resets every connection made to the old one, as the endpoint change and the dead
pod do; with no target (no ready endpoint) a connection is reset as soon as it is accepted.
The forwarder runs an asyncio loop in a thread of its own and starts no process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from harness.servers import START_TIMEOUT

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 5.0
CHUNK = 65536

Link = tuple[asyncio.StreamWriter, asyncio.StreamWriter]


class TcpForwarder:
    """`with TcpForwarder(target_port) as forwarder:` then connect to `forwarder.port`."""

    def __init__(self, target: int | None) -> None:
        self._target = target
        self._links: set[Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((HOST, 0))  # bound here: the port cannot be taken before we listen
        self.port: int = self._socket.getsockname()[1]
        self.accepted = 0  # connections accepted, for figures and checks
        self.reset = 0  # connections reset by a re-point or for want of a target

    @property
    def target(self) -> int | None:
        return self._target

    def start(self) -> TcpForwarder:
        self._thread.start()
        self._call(self._listen())
        return self

    def point_to(self, target: int | None) -> None:
        """Forward new connections to `target` (None: refuse them); reset every current one."""
        self._call(self._repoint(target))

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=START_TIMEOUT)
        self._socket.close()

    def __enter__(self) -> TcpForwarder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=START_TIMEOUT)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._forward, sock=self._socket)

    async def _repoint(self, target: int | None) -> None:
        self._target = target
        for link in list(self._links):
            self._drop(link)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._repoint(None)

    async def _forward(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        target = self._target
        try:
            if target is None:
                raise ConnectionRefusedError("no endpoint")
            opened = asyncio.open_connection(HOST, target)
            upstream_reader, upstream = await asyncio.wait_for(opened, CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            self.reset += 1
            _reset(client)
            return
        link = (client, upstream)
        if self._target != target:  # re-pointed while this one connected
            self._drop(link)
            return
        self._links.add(link)
        pumps = [
            asyncio.create_task(_pump(client_reader, upstream)),
            asyncio.create_task(_pump(upstream_reader, client)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        if link in self._links:  # one side closed: close the other (not a reset by us)
            self._links.discard(link)
            for writer in link:
                writer.close()

    def _drop(self, link: Link) -> None:
        self._links.discard(link)
        self.reset += 1
        for writer in link:
            _reset(writer)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a peer that is gone: no orderly goodbye."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
