"""Test helpers for the ai service (importable from its tests; see conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from ai.config import Settings
from harness.fakehttp import JsonServer, Reply, Request


@dataclass
class FakeOpenAI:
    """A small real HTTP server on loopback that speaks `POST /v1/chat/completions`.

    `mode` picks the behaviour: "ok" answers with a reply derived from the request,
    "slow" sleeps past the client's timeout, "error" answers 500, "malformed" answers 200
    without choices.
    """

    mode: str = "ok"
    delay: float = 2.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    server: JsonServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/v1"

    def start(self) -> None:
        self.server = JsonServer(self._answer)

    def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    def _answer(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return 404, {"error": {"message": "not found"}}
        body = request.json()
        self.requests.append(body)
        self.headers.append(request.headers)
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "error":
            return 500, {"error": {"message": "boom"}}
        if self.mode == "malformed":
            return 200, {"id": "x", "choices": []}
        last = body["messages"][-1]["content"]
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"echo: {last}"},
            }],
        }  # fmt: skip


MakeClient = Callable[[Settings], Awaitable[httpx.AsyncClient]]
