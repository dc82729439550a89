"""Test helpers for the backend (on the pytest and mypy paths; see the root pyproject.toml)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import httpx
import uvicorn
from backend.config import Settings
from backend.runtime import Runtime
from starlette.types import ASGIApp


class AsgiServer:
    """An ASGI app under a real uvicorn on a fixed loopback port, in a thread.

    The port is chosen up front, so a test can post while nothing listens there (the service
    is "down"), then `start()` the service on that very port.
    """

    def __init__(self, app_factory: Callable[[], ASGIApp], port: int) -> None:
        self._app_factory = app_factory
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = uvicorn.Config(
            self._app_factory(), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = self._thread = None


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
