"""The ai service's client: timeouts on every call, bounded retries with exponential backoff.

Every call carries a service token from auth (client credentials, `servicekit.servicetoken`),
also the background retries that have no user's token. A 401 drops the token, so the next try
fetches a fresh one (keys rotated, token expired early).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
from servicekit.servicetoken import ServiceTokenError, ServiceTokens

log = logging.getLogger(__name__)

# Answers worth another try: the ai service (or something in front of it) is overloaded or down.
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


# The start of `last_error` when nothing accepted the connection: the reply says so at once.
UNREACHABLE = "AI service unreachable"


class AiError(Exception):
    """No reply. `transient` says whether trying again later may succeed; `unreachable` that
    the ai service refused the connection (trying again at once is no use)."""

    def __init__(self, message: str, *, transient: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable


@dataclass(frozen=True)
class AiReply:
    content: str
    model: str


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 0.25
    backoff_max_seconds: float = 2.0

    def delay(self, failed_attempts: int) -> float:
        """Wait before the next try after `failed_attempts` failures: 0.25, 0.5, 1, ... capped."""
        return min(self.backoff_max_seconds, self.backoff_seconds * 2.0 ** (failed_attempts - 1))


class AiClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        connect_timeout_seconds: float,
        retry: RetryPolicy,
        tokens: ServiceTokens,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._retry = retry
        self._tokens = tokens
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._tokens.aclose()

    async def reply(self, messages: list[dict[str, str]]) -> AiReply:
        """The assistant's reply to `messages`, or AiError after the last failed try."""
        error = AiError("no attempt made", transient=True)
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._once(messages)
            except AiError as exc:
                error = exc
                if not exc.transient or exc.unreachable or attempt == self._retry.attempts:
                    break
                delay = self._retry.delay(attempt)
                log.info(
                    "ai request failed, retrying",
                    extra={"attempt": attempt, "delay_seconds": delay, "error": str(exc)},
                )
                await asyncio.sleep(delay)
        raise error

    async def _once(self, messages: list[dict[str, str]]) -> AiReply:
        try:
            token = await self._tokens.get()
        except ServiceTokenError as exc:
            raise AiError(f"no service token for ai: {exc}", transient=True) from exc
        try:
            response = await self._client.post(
                "v1/reply",
                json={"messages": messages},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TimeoutException as exc:
            raise AiError("the ai service did not answer in time", transient=True) from exc
        except httpx.ConnectError as exc:
            # Nothing listens: fail this attempt fast; the background retry tries again later.
            raise AiError(
                f"{UNREACHABLE} ({exc or 'connection refused'})", transient=True, unreachable=True
            ) from exc
        except httpx.HTTPError as exc:
            raise AiError(
                f"the ai service is unreachable ({type(exc).__name__})", transient=True
            ) from exc
        if response.status_code == 401:
            self._tokens.invalidate(token)
            raise AiError("the ai service refused the service token", transient=True)
        if response.status_code != 200:
            raise AiError(
                f"the ai service answered HTTP {response.status_code}",
                transient=response.status_code in _TRANSIENT_STATUSES,
            )
        try:
            body = response.json()
            return AiReply(content=str(body["content"]), model=str(body["model"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise AiError("the ai service's answer is malformed", transient=True) from exc
