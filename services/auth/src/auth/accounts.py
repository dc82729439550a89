"""Registration, login and the refresh-token chain, on a SQLAlchemy session.

A login starts a token family. Each refresh marks the presented token used and issues the next
one in the same family. Presenting a used token again means it was stolen (or replayed): the
whole family is revoked, which logs out both the thief and the victim.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth.config import Settings
from auth.keys import KeyRing
from auth.models import RefreshToken, User
from auth.passwords import hash_password, needs_rehash, verify_password
from auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token


class UsernameTakenError(Exception):
    pass


class InvalidCredentialsError(Exception):
    pass


class InvalidRefreshTokenError(Exception):
    """The refresh token is unknown, expired, revoked, or was reused (`reused` is True)."""

    def __init__(self, reused: bool = False) -> None:
        super().__init__("refresh token reuse detected" if reused else "invalid refresh token")
        self.reused = reused


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def find_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def register(session: Session, username: str, password: str) -> User:
    """Create the user; the unique index decides races between concurrent sign-ups."""
    user = User(
        id=uuid.uuid4(), username=username, password_hash=hash_password(password), password_nfc=True
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise UsernameTakenError(username) from exc
    return user


def login(
    session: Session, keyring: KeyRing, settings: Settings, username: str, password: str
) -> TokenPair:
    user = find_user(session, username)
    stored, nfc_hash = (user.password_hash, user.password_nfc) if user else (None, True)
    if not verify_password(stored, password, nfc_hash=nfc_hash) or user is None:
        raise InvalidCredentialsError
    if needs_rehash(user.password_hash, nfc_hash=nfc_hash):
        user.password_hash, user.password_nfc = hash_password(password), True
    pair = _issue(session, keyring, settings, user, family_id=uuid.uuid4())
    session.commit()
    return pair


def refresh(session: Session, keyring: KeyRing, settings: Settings, token: str) -> TokenPair:
    now = _now()
    current = session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(token))
        .with_for_update()  # concurrent refreshes of one token queue here; one wins
    )
    if current is None or current.revoked_at is not None or current.expires_at <= now:
        session.rollback()
        raise InvalidRefreshTokenError
    if current.used_at is not None:
        _revoke_family(session, current.family_id, now)
        session.commit()
        raise InvalidRefreshTokenError(reused=True)
    user = session.get(User, current.user_id)
    if user is None:
        session.rollback()
        raise InvalidRefreshTokenError
    current.used_at = now
    pair = _issue(session, keyring, settings, user, family_id=current.family_id)
    session.commit()
    return pair


def logout(session: Session, token: str) -> None:
    """Revoke the token's family (this login's session); unknown tokens are ignored."""
    family_id = session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_refresh_token(token))
    )
    if family_id is not None:
        _revoke_family(session, family_id, _now())
    session.commit()


def _revoke_family(session: Session, family_id: uuid.UUID, now: dt.datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _issue(
    session: Session, keyring: KeyRing, settings: Settings, user: User, family_id: uuid.UUID
) -> TokenPair:
    now = _now()
    refresh_token = new_refresh_token()
    session.add(
        RefreshToken(
            id=uuid.uuid4(),
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            expires_at=now + dt.timedelta(seconds=settings.auth_refresh_token_ttl),
        )
    )
    access_token = issue_access_token(
        keyring,
        user_id=user.id,
        username=user.username,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.auth_access_token_ttl,
        now=now,
    )
    return TokenPair(access_token, refresh_token, settings.auth_access_token_ttl)
