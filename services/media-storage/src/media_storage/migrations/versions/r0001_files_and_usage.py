"""files and per-user usage

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
        sa.CheckConstraint("size > 0", name="ck_files_size_positive"),
    )
    op.create_index("ix_files_user_created", "files", ["user_id", "created_at", "id"])
    op.create_index("ix_files_sha256", "files", ["sha256"])
    # One row per user: the sum of their files' sizes, updated in the same transaction as the
    # files; a conditional UPDATE of this row is the quota check (row lock across replicas).
    op.create_table(
        "usage",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_usage"),
        sa.CheckConstraint("bytes >= 0", name="ck_usage_bytes_not_negative"),
    )


def downgrade() -> None:
    op.drop_table("usage")
    op.drop_index("ix_files_sha256", table_name="files")
    op.drop_index("ix_files_user_created", table_name="files")
    op.drop_table("files")
