"""The provider interface: turn a conversation's recent messages into the assistant's reply."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


class ChatMessage(BaseModel):
    """One message of the conversation as the model sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str = Field(min_length=1)


class ProviderError(Exception):
    """The provider could not produce a reply; `status` is the HTTP status the API answers."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class Provider(Protocol):
    """Anything that can answer a conversation. `name` and `model` are part of the cache key."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def reply(self, messages: list[ChatMessage]) -> str: ...

    async def aclose(self) -> None: ...
