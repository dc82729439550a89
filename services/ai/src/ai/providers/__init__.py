"""Reply providers behind one interface, chosen by configuration (`AI_PROVIDER`)."""

from ai.providers.base import ChatMessage, Provider, ProviderError
from ai.providers.local import LocalProvider
from ai.providers.openai import OpenAIProvider

__all__ = ["ChatMessage", "LocalProvider", "OpenAIProvider", "Provider", "ProviderError"]
