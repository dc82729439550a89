"""Per-user file metadata in a small SQLite database next to the blobs.

SQLite keeps the service self-contained on its volume (no PostgreSQL needed). Every change that
also touches blobs runs inside `BEGIN IMMEDIATE`, which takes SQLite's single writer lock across
all gunicorn workers: publishing a blob + inserting its row, and deleting a row + removing an
unreferenced blob, can therefore never interleave.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_user ON files (user_id, created_at, id);
CREATE INDEX IF NOT EXISTS files_by_digest ON files (sha256);
"""
BUSY_TIMEOUT_SECONDS = 10.0


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
    """File rows; one short-lived connection per operation (safe across forked workers)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def prepare(self) -> None:
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write_lock(self) -> Iterator[sqlite3.Connection]:
        """A transaction holding the database's writer lock; commits on success."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def insert(conn: sqlite3.Connection, record: FileRecord) -> None:
        conn.execute(
            "INSERT INTO files (id, user_id, name, size, content_type, sha256, created_at)"
            " VALUES (:id, :user_id, :name, :size, :content_type, :sha256, :created_at)",
            asdict(record),
        )

    @staticmethod
    def stored_bytes(conn: sqlite3.Connection, user_id: str) -> int:
        """What `user_id` stores in all (each file counted, shared content or not)."""
        row = conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE user_id = ?", (user_id,)
        ).fetchone()
        return int(row[0])

    @staticmethod
    def delete(conn: sqlite3.Connection, record: FileRecord) -> int:
        """Delete the row; return how many rows still reference its blob."""
        conn.execute("DELETE FROM files WHERE id = ?", (record.id,))
        row = conn.execute("SELECT count(*) FROM files WHERE sha256 = ?", (record.sha256,))
        return int(row.fetchone()[0])

    def get(self, user_id: str, file_id: str) -> FileRecord | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT id, user_id, name, size, content_type, sha256, created_at FROM files"
                " WHERE id = ? AND user_id = ?",
                (file_id, user_id),
            ).fetchone()
        return _record(row) if row else None

    def list(self, user_id: str) -> list[FileRecord]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, user_id, name, size, content_type, sha256, created_at FROM files"
                " WHERE user_id = ? ORDER BY created_at, id",
                (user_id,),
            ).fetchall()
        return [_record(row) for row in rows]

    def ping(self) -> bool:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1 FROM files LIMIT 1")
        except sqlite3.Error:
            return False
        return True


def _record(row: tuple[Any, ...]) -> FileRecord:
    return FileRecord(*row)
