"""Test helpers for the backend (on the pytest and mypy paths; see the root pyproject.toml)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpx
from backend.config import Settings
from backend.runtime import Runtime


class SilentServer:
    """Accepts TCP connections and never answers: an ai service that hangs."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._accepted.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self._accepted:
            connection.close()


@dataclass
class Backend:
    """A started backend app and an HTTP client bound to it (in the test's event loop)."""

    http: httpx.AsyncClient
    runtime: Runtime
    settings: Settings
    lifespan: AbstractAsyncContextManager[object]
    closed: bool = False

    async def aclose(self) -> None:
        """Shuts the app down like a stopped process (idempotent)."""
        if not self.closed:
            self.closed = True
            await self.http.aclose()
            await self.lifespan.__aexit__(None, None, None)


MakeBackend = Callable[..., Awaitable[Backend]]
