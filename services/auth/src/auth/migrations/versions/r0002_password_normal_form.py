"""users.password_nfc: whether the hash is of the password's NFC form

Rows from before (the Docker Compose deployment's users) hold hashes of the password as typed:
false. A login verifies exactly one form, so a non-NFC password costs one argon2 run, not two.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("password_nfc", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("users", "password_nfc")
