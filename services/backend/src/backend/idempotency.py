"""`Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header) for creating requests.

A client sends a fresh key with each creation it means and the same key when it repeats that
creation (a double click, a retry after a lost answer). The first request stores the key with
a fingerprint of the request and the id of what it created, in the creation's transaction; a
repeat gets that resource again, and a key reused for another request is refused (422, as the
draft says). Two requests with one key at once: the second waits on the key's row, then
replays. Keys belong to the user who sent them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, HTTPException, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import IDEMPOTENCY_KEY_MAX, IdempotencyKey, utcnow

KEY_REUSED = "Idempotency-Key was already used with a different request"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=IDEMPOTENCY_KEY_MAX + 2,
        description="a fresh value per creation, the same on its retries (IETF draft)",
    ),
]


def parse_key(raw: str | None) -> str | None:
    """The key without the quotes of its structured-field form (`"abc"`); 400 when unusable."""
    if raw is None:
        return None
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters",
        )
    return key


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


async def earlier_resource(
    sessions: async_sessionmaker[AsyncSession], user_id: str, key: str, print_: str
) -> uuid.UUID | None:
    """The resource a request with this key created before, if any."""
    async with sessions() as db:
        stored = await db.get(IdempotencyKey, (user_id, key))
    if stored is None:
        return None
    if stored.fingerprint != print_:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, KEY_REUSED)
    return stored.resource_id


async def create_once(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    key: str | None,
    print_: str,
    create: Callable[[AsyncSession], Awaitable[uuid.UUID]],
) -> tuple[uuid.UUID, bool]:
    """Runs `create` in a transaction that records `key`: (its resource id, False); or, when
    a request with `key` created it before, (that id, True) and nothing is created."""
    if key is not None:
        earlier = await earlier_resource(sessions, user_id, key, print_)
        if earlier is not None:
            return earlier, True
    try:
        async with sessions() as db, db.begin():
            resource = await create(db)
            if key is not None:
                db.add(
                    IdempotencyKey(
                        user_id=user_id,
                        key=key,
                        fingerprint=print_,
                        resource_id=resource,
                        created_at=utcnow(),
                    )
                )
        return resource, False
    except IntegrityError:
        if key is None:
            raise
    # Another request with this key committed first (it held the key's row meanwhile).
    earlier = await earlier_resource(sessions, user_id, key, print_)
    if earlier is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "Idempotency-Key: request in progress")
    return earlier, True
