"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from servicekit.text import Text

from backend.ai_client import UNREACHABLE
from backend.models import TITLE_MAX


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text = Field(min_length=1, max_length=TITLE_MAX)

    @field_validator("title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("title must not be blank")
        return value


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    created_at: datetime


class MessageCreate(BaseModel):
    """`content` is checked against MESSAGE_MAX_CHARS by the route (a setting, not a constant)."""

    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be blank")
        return value


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    role: Literal["user", "assistant"]
    content: str
    status: Literal["completed", "pending", "failed"]
    created_at: datetime
    # The ai model that wrote an assistant reply (None for the user's messages and pending
    # replies); the front end marks replies of the local demo provider.
    model: str | None = None
    # Why a reply is not there (yet), in words for people: "AI service unreachable" as soon as
    # the ai service refused the connection (a pending reply is still retried in the
    # background), or a general sentence for a failed one.
    failure: str | None = Field(default=None, validation_alias="last_error")

    @field_validator("failure", mode="before")
    @classmethod
    def _in_words(cls, last_error: object, info: ValidationInfo) -> str | None:
        if not last_error or info.data.get("role") != "assistant":
            return None
        if str(last_error).startswith(UNREACHABLE):
            return UNREACHABLE
        return "The AI service could not reply" if info.data.get("status") == "failed" else None


class PostedMessage(BaseModel):
    message: MessageOut
    reply: MessageOut


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None
