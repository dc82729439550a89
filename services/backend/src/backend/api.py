"""HTTP routes: conversations and messages of the authenticated user.

Another user's conversation answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from servicekit.fastapi import CurrentUser
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.idempotency import (
    IdempotencyKeyHeader,
    create_once,
    earlier_resource,
    fingerprint,
    parse_key,
)
from backend.models import Conversation, Message, utcnow
from backend.outbox import record_message_created
from backend.pagination import InvalidCursorError, decode_cursor, encode_cursor
from backend.runtime import Runtime
from backend.schemas import (
    ConversationCreate,
    ConversationOut,
    ConversationPage,
    MessageCreate,
    MessageOut,
    MessagePage,
    PostedMessage,
)

router = APIRouter()

# Statuses the routes answer besides the shared ones (servicekit documents 401, 413, 422, 503).
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "no such conversation of this user"}}
BAD_PAGE: Responses = {
    400: {"description": "limit above the maximum, or a cursor this API did not issue"}
}
LIMITED: Responses = {429: {"description": "message rate limit; see Retry-After"}}


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def _page_size(rt: Runtime, limit: int | None) -> int:
    size = rt.settings.page_size_default if limit is None else limit
    if size > rt.settings.page_size_max:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"limit must be at most {rt.settings.page_size_max}"
        )
    return size


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursorError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"cursor: {exc}") from exc


async def _owned_conversation(
    db: AsyncSession, user_id: str, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await db.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user_id
        )
    )
    if conversation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "conversation not found")
    return conversation


IDEMPOTENT: Responses = {
    400: {"description": "an unusable Idempotency-Key"},
    422: {"description": "an Idempotency-Key already used with a different request"},
}


@router.post(
    "/conversations",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversationOut,
    responses=IDEMPOTENT,
)
async def create_conversation(
    body: ConversationCreate,
    user: CurrentUser,
    rt: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Conversation:
    """With an Idempotency-Key, a repeat of the request returns the conversation it created."""

    async def create(db: AsyncSession) -> uuid.UUID:
        conversation = Conversation(
            id=uuid.uuid4(), user_id=user.sub, title=body.title, created_at=utcnow()
        )
        db.add(conversation)
        return conversation.id

    print_ = fingerprint("POST /conversations", body.model_dump_json())
    key = parse_key(idempotency_key)
    created, _ = await create_once(rt.sessions, user.sub, key, print_, create)
    async with rt.sessions() as db:
        return await _owned_conversation(db, user.sub, created)


@router.get("/conversations", response_model=ConversationPage, responses=BAD_PAGE)
async def list_conversations(
    user: CurrentUser,
    rt: RuntimeDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ConversationPage:
    """Newest first."""
    size, after = _page_size(rt, limit), _after(cursor)
    query = select(Conversation).where(Conversation.user_id == user.sub)
    if after is not None:
        query = query.where(Conversation.seq < after)
    async with rt.sessions() as db:
        rows = list(await db.scalars(query.order_by(Conversation.seq.desc()).limit(size + 1)))
    page = rows[:size]
    return ConversationPage(
        items=[ConversationOut.model_validate(c) for c in page],
        next_cursor=encode_cursor(page[-1].seq) if len(rows) > size else None,
    )


@router.get("/conversations/{conversation_id}", response_model=ConversationOut, responses=NOT_FOUND)
async def get_conversation(
    conversation_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep
) -> Conversation:
    async with rt.sessions() as db:
        return await _owned_conversation(db, user.sub, conversation_id)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=MessagePage,
    responses={**NOT_FOUND, **BAD_PAGE},
)
async def list_messages(
    conversation_id: uuid.UUID,
    user: CurrentUser,
    rt: RuntimeDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MessagePage:
    """Oldest first."""
    size, after = _page_size(rt, limit), _after(cursor)
    query = select(Message).where(Message.conversation_id == conversation_id)
    if after is not None:
        query = query.where(Message.seq > after)
    async with rt.sessions() as db:
        await _owned_conversation(db, user.sub, conversation_id)
        rows = list(await db.scalars(query.order_by(Message.seq).limit(size + 1)))
    page = rows[:size]
    return MessagePage(
        items=[MessageOut.model_validate(m) for m in page],
        next_cursor=encode_cursor(page[-1].seq) if len(rows) > size else None,
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=PostedMessage,
    responses={**NOT_FOUND, **LIMITED, **IDEMPOTENT},
)
async def post_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    user: CurrentUser,
    rt: RuntimeDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> PostedMessage:
    """Stores the message (and a pending reply) first, then asks the ai service.

    The reply comes back `completed`, or `pending` (retried in the background) or `failed`
    (retry it with POST .../retry) when the ai service is down, slow or refuses. With an
    Idempotency-Key, a repeat returns the message its first request stored, and its reply as
    it is now: nothing is stored twice and no second reply is asked for.
    """
    if len(body.content) > rt.settings.message_max_chars:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"content must be at most {rt.settings.message_max_chars} characters",
        )
    key = parse_key(idempotency_key)
    print_ = fingerprint(f"POST /conversations/{conversation_id}/messages", body.content)
    if key is not None:
        earlier = await earlier_resource(rt.sessions, user.sub, key, print_)
        if earlier is not None:  # a repeat costs no rate-limit budget
            return await _posted(rt, user.sub, earlier)
    await rt.enforce_message_rate_limit(user.sub, response)
    replies: list[Message] = []

    async def create(db: AsyncSession) -> uuid.UUID:
        await _owned_conversation(db, user.sub, conversation_id)
        now = utcnow()
        message = Message(
            id=uuid.uuid4(), conversation_id=conversation_id, user_id=user.sub, role="user",
            content=body.content, status="completed", attempts=0, created_at=now, updated_at=now,
        )  # fmt: skip
        db.add(message)
        await db.flush()  # the user's message gets the lower seq
        reply = Message(
            id=uuid.uuid4(), conversation_id=conversation_id, user_id=user.sub, role="assistant",
            content="", status="pending", reply_to=message.id, attempts=0, created_at=utcnow(),
            updated_at=now, next_attempt_at=now + rt.inline_attempt_grace,
        )  # fmt: skip
        db.add(reply)
        record_message_created(db, message)
        replies.append(reply)
        return message.id

    message_id, replayed = await create_once(rt.sessions, user.sub, key, print_, create)
    if not replayed:
        reply = await rt.replies.attempt(replies[0])
        rt.observe_reply(reply.status)
    return await _posted(rt, user.sub, message_id)


async def _posted(rt: Runtime, user_id: str, message_id: uuid.UUID) -> PostedMessage:
    """The user's message and its reply as stored now."""
    async with rt.sessions() as db:
        message = await db.scalar(
            select(Message).where(Message.id == message_id, Message.user_id == user_id)
        )
        reply = await db.scalar(select(Message).where(Message.reply_to == message_id))
    if message is None or reply is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "message not found")
    return PostedMessage(
        message=MessageOut.model_validate(message), reply=MessageOut.model_validate(reply)
    )


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/retry",
    response_model=MessageOut,
    responses={**NOT_FOUND, 409: {"description": "not an assistant reply"}},
)
async def retry_reply(
    conversation_id: uuid.UUID, message_id: uuid.UUID, user: CurrentUser, rt: RuntimeDep
) -> Message:
    """Asks the ai service again for a pending or failed reply; a completed one comes back as is."""
    async with rt.sessions() as db:
        await _owned_conversation(db, user.sub, conversation_id)
        message = await db.scalar(
            select(Message).where(
                Message.id == message_id, Message.conversation_id == conversation_id
            )
        )
    if message is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "message not found")
    if message.role != "assistant":
        raise HTTPException(status.HTTP_409_CONFLICT, "only assistant replies can be retried")
    message = await rt.replies.attempt(message)
    rt.observe_reply(message.status)
    return message
