"""The request-body size limit, alone (plain ASGI) and wired in by `install(max_body_bytes=)`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from servicekit.bodylimit import BodySizeLimit, Message, Receive, Scope, Send
from servicekit.fastapi import install

LIMIT = 1024


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain ASGI app that answers with the number of body bytes it received."""
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def client_for(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"", 200), (b"x" * LIMIT, 200), (b"x" * (LIMIT + 1), 413)],
    ids=["empty", "at-the-limit", "one-byte-over"],
)
async def test_declared_length_is_checked(body: bytes, status: int) -> None:
    async with client_for(BodySizeLimit(echo_length, max_bytes=LIMIT)) as client:
        response = await client.post("/", content=body)
    assert response.status_code == status
    if status == 200:
        assert response.text == str(len(body))
    else:
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"detail": f"request body is larger than {LIMIT} bytes"}


async def test_chunked_body_without_length_is_counted() -> None:
    async with client_for(BodySizeLimit(echo_length, max_bytes=LIMIT)) as client:
        over = await client.put("/", content=chunks(5, 300))
        under = await client.put("/", content=chunks(3, 300))
    assert "content-length" not in over.request.headers
    assert over.status_code == 413
    assert (under.status_code, under.text) == (200, "900")  # replayed to the app in full


async def test_a_lying_content_length_does_not_get_past_the_limit() -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b"x" * 600, "more_body": True},
        {"type": "http.request", "body": b"x" * 600, "more_body": False},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"10")]}
    await BodySizeLimit(echo_length, max_bytes=LIMIT)(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_methods_without_a_body_are_not_buffered() -> None:
    async with client_for(BodySizeLimit(echo_length, max_bytes=0)) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.post("/", content=b"x")).status_code == 413


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        BodySizeLimit(echo_length, max_bytes=-1)


async def test_install_puts_the_limit_inside_the_request_context() -> None:
    app = FastAPI()
    metrics = install(app, max_body_bytes=LIMIT)

    @app.post("/items")
    async def items(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    async with client_for(app) as client:
        ok = await client.post("/items", content=b"x" * 10)
        too_large = await client.post("/items", content=chunks(3, LIMIT))
    assert ok.json() == {"size": 10}
    assert too_large.status_code == 413
    assert too_large.headers["X-Request-ID"]  # the 413 went through the request-id middleware
    body, _ = metrics.render()
    assert b'status="413"' in body
