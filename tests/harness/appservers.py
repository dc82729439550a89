"""The services' own servers for tests: an ASGI app under uvicorn in a thread, gunicorn as a
subprocess. Not loaded by the plugin (uvicorn and gunicorn are only needed by tests that use
them): `from harness.appservers import AsgiServer, gunicorn_server`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Literal

import httpx
import uvicorn
from starlette.types import ASGIApp

from harness.lifetime import bound_to_parent
from harness.servers import START_TIMEOUT, HarnessError, free_port


class AsgiServer:
    """An ASGI app under a real uvicorn on a loopback port, in a thread.

    `port=0` takes a free port when started. A fixed port is known before `start()`, so a test
    can call the address while nothing listens there (the service is "down"), then start the
    service on that very port; `app_factory` builds a fresh app on every start. The socket is
    bound here and handed to uvicorn, so the port cannot be taken between choosing and binding.
    """

    def __init__(
        self,
        app_factory: Callable[[], ASGIApp],
        port: int = 0,
        *,
        lifespan: Literal["auto", "on", "off"] = "auto",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self._app_factory = app_factory
        self.port = port
        self._lifespan = lifespan
        self._start_timeout = start_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app_factory(),
            log_config=None,
            log_level="warning",
            lifespan=self._lifespan,
            timeout_graceful_shutdown=5,
        )
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(target=_run, args=(server, sock), daemon=True)
        thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise HarnessError(f"uvicorn on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> AsgiServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    with contextlib.suppress(SystemExit):  # uvicorn exits on a failed start; start() says so
        server.run(sockets=[sock])


@contextlib.contextmanager
def gunicorn_server(
    config_module: str,
    app: str,
    env: Mapping[str, str],
    *,
    start_timeout: float = START_TIMEOUT,
    probe: str = "/health",
) -> Iterator[str]:
    """`gunicorn -c python:<config_module> <app>` on a free loopback port; yields its base URL
    once `probe` answers (the master listens before its workers have loaded the app).

    `env` is the whole environment of the server (start from `os.environ`); BIND is set here.
    """
    with gunicorn_master(config_module, app, env, start_timeout=start_timeout, probe=probe) as (
        url,
        _master,
    ):
        yield url


@contextlib.contextmanager
def gunicorn_master(
    config_module: str,
    app: str,
    env: Mapping[str, str],
    *,
    start_timeout: float = START_TIMEOUT,
    probe: str = "/health",
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `gunicorn_server`, yielding the master process too (for tests that kill workers)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-c", f"python:{config_module}", app]
    process = subprocess.Popen(bound_to_parent(command), env={**env, "BIND": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers(f"{url}{probe}"):
            if process.poll() is not None:
                raise HarnessError(f"gunicorn exited with {process.returncode} before serving")
            if time.monotonic() > deadline:
                raise HarnessError(f"gunicorn does not answer {probe} after {start_timeout}s")
            time.sleep(0.05)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=START_TIMEOUT)


def _answers(url: str) -> bool:
    """Any HTTP answer: the app is loaded (whether it is healthy is the test's question)."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, timeout=5)
        return True
    return False
