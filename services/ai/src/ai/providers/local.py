"""A deterministic provider: no network, no model weights, the same reply for the same input.

It lets the whole platform run (and be tested end to end) without any language model. The reply
is a template filled from the last user message, with a variant picked by a hash of the whole
conversation, so different conversations read differently but identical input never changes.
"""

from __future__ import annotations

import hashlib

from ai.providers.base import ChatMessage

_OPENINGS = (
    "You said",
    "I read",
    "Noted",
    "Thanks for writing",
)
_QUOTE_LIMIT = 200


class LocalProvider:
    """Templated replies derived from the conversation; stable for identical input."""

    name = "local"
    model = "local-echo-1"

    async def reply(self, messages: list[ChatMessage]) -> str:
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), None)
        if last_user is None:
            return "Hello! Send me a message and I will answer it."
        digest = hashlib.sha256(
            "\x1e".join(f"{m.role}\x1f{m.content}" for m in messages).encode()
        ).digest()
        opening = _OPENINGS[digest[0] % len(_OPENINGS)]
        quote = " ".join(last_user.split())
        if len(quote) > _QUOTE_LIMIT:
            quote = quote[: _QUOTE_LIMIT - 1] + "\u2026"
        words = len(last_user.split())
        turns = sum(1 for m in messages if m.role == "user")
        return (
            f'{opening}: "{quote}" ({words} word{"s" if words != 1 else ""}, '
            f"message {turns} of this conversation)."
        )

    async def aclose(self) -> None:
        return None
