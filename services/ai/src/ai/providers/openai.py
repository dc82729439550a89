"""A provider for any server that speaks the OpenAI `POST /v1/chat/completions` protocol."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from ai.providers.base import ChatMessage, ProviderError


class OpenAIProvider:
    """Calls `<base_url>/chat/completions`; `base_url` usually ends in `/v1`."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None,
        timeout: float,
        max_tokens: int | None = None,
    ) -> None:
        self._model = model
        self._max_tokens = max_tokens
        headers = {"Accept": "application/json"}
        if api_key is not None and api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )

    @property
    def model(self) -> str:
        return self._model

    async def reply(self, messages: list[ChatMessage]) -> str:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [m.model_dump() for m in messages],
            "stream": False,
        }
        if self._max_tokens is not None:
            body["max_tokens"] = self._max_tokens
        try:
            response = await self._client.post("chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise ProviderError("the model server did not answer in time", 504) from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"the model server is unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ProviderError(f"the model server answered HTTP {response.status_code}")
        return _content_of(response)

    async def aclose(self) -> None:
        await self._client.aclose()


def _content_of(response: httpx.Response) -> str:
    """The first choice's message content, or a ProviderError saying what was malformed."""
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProviderError("the model server's answer has no choices[0].message.content") from exc
    if not isinstance(content, str) or not content.strip():
        raise ProviderError("the model server answered with an empty reply")
    return content
