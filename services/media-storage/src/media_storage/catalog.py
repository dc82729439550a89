"""Per-user file metadata and usage in PostgreSQL (schema: media_storage.migrations).

Every replica shares it, so everything that must hold across replicas is decided here:
- the quota: a conditional UPDATE of the user's usage row (`bytes + size <= quota`) in the same
  transaction as the file row; PostgreSQL's row lock serialises concurrent uploads of one user
  on every replica, and the WHERE is re-checked against the committed total;
- one content's object against its rows: every change that adds or may remove the object of a
  digest holds a transaction-scoped advisory lock on that digest, so an upload cannot commit a
  row for an object that a delete or the orphan sweeper is removing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from servicekit.settings import sqlalchemy_url
from sqlalchemy import Connection, Row, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

CONNECT_TIMEOUT_SECONDS = 10
_SELECT = "SELECT id, user_id, name, size, content_type, sha256, created_at FROM files"


@dataclass(frozen=True)
class FileRecord:
    id: str
    user_id: str
    name: str
    size: int
    content_type: str
    sha256: str
    created_at: str

    def public(self) -> dict[str, Any]:
        """The API representation (the owner is implied by the token)."""
        data = asdict(self)
        del data["user_id"]
        return data


class Catalog:
    """File rows and usage rows; a small connection pool per worker process."""

    def __init__(self, database_url: str) -> None:
        # Created in the worker (gunicorn does not preload the app): no pool crosses a fork.
        self.engine = create_engine(
            sqlalchemy_url(database_url),
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any error."""
        with self.engine.begin() as conn:
            yield conn

    @staticmethod
    def lock_content(conn: Connection, digest: str) -> None:
        """Hold the digest's advisory lock until the transaction ends."""
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:digest, 0))"), {"digest": digest}
        )

    @staticmethod
    def reserve(conn: Connection, user_id: str, size: int, quota: int) -> bool:
        """Add `size` to the user's usage if the total stays within `quota` (row-locked)."""
        conn.execute(
            text(
                "INSERT INTO usage (user_id, bytes) VALUES (:user_id, 0)"
                " ON CONFLICT (user_id) DO NOTHING"
            ),
            {"user_id": user_id},
        )
        row = conn.execute(
            text(
                "UPDATE usage SET bytes = bytes + :size"
                " WHERE user_id = :user_id AND bytes + :size <= :quota RETURNING bytes"
            ),
            {"user_id": user_id, "size": size, "quota": quota},
        ).first()
        return row is not None

    @staticmethod
    def insert(conn: Connection, record: FileRecord) -> None:
        conn.execute(
            text(
                "INSERT INTO files (id, user_id, name, size, content_type, sha256, created_at)"
                " VALUES"
                " (:id, :user_id, :name, :size, :content_type, :sha256, :created_at)"
            ),
            {**asdict(record), "created_at": dt.datetime.fromisoformat(record.created_at)},
        )

    @staticmethod
    def delete(conn: Connection, record: FileRecord) -> int:
        """Delete the row and give its bytes back; return how many rows still reference its
        content (call under the digest's lock)."""
        deleted = conn.execute(
            text("DELETE FROM files WHERE id = :id RETURNING size"), {"id": record.id}
        ).first()
        if deleted is not None:
            conn.execute(
                text("UPDATE usage SET bytes = bytes - :size WHERE user_id = :user_id"),
                {"size": deleted.size, "user_id": record.user_id},
            )
        return Catalog.references(conn, record.sha256)

    @staticmethod
    def references(conn: Connection, digest: str) -> int:
        row = conn.execute(
            text("SELECT count(*) FROM files WHERE sha256 = :digest"), {"digest": digest}
        ).one()
        return int(row[0])

    def stored_bytes(self, user_id: str) -> int:
        """What `user_id` stores in all (each file counted, shared content or not)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT bytes FROM usage WHERE user_id = :user_id"), {"user_id": user_id}
            ).first()
        return int(row.bytes) if row else 0

    def get(self, user_id: str, file_id: str) -> FileRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(_SELECT + " WHERE id = :id AND user_id = :user_id"),
                {"id": file_id, "user_id": user_id},
            ).first()
        return _record(row) if row else None

    def list(self, user_id: str) -> list[FileRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(_SELECT + " WHERE user_id = :user_id ORDER BY created_at, id"),
                {"user_id": user_id},
            ).all()
        return [_record(row) for row in rows]

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1 FROM files LIMIT 1"))
        except SQLAlchemyError:
            return False
        return True


def _record(row: Row[Any]) -> FileRecord:
    created: dt.datetime = row.created_at
    return FileRecord(
        id=str(row.id) if isinstance(row.id, uuid.UUID) else row.id,
        user_id=row.user_id,
        name=row.name,
        size=int(row.size),
        content_type=row.content_type,
        sha256=row.sha256,
        created_at=created.astimezone(dt.UTC).isoformat(timespec="microseconds"),
    )
