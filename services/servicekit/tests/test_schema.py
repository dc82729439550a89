"""servicekit.schema on a real PostgreSQL: concurrently started migration Jobs take turns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

ENV = """
from servicekit.schema import run_online

run_online(None, lock_id=4242)
"""

# The pause keeps the first Job inside its transaction while the second one starts.
REVISION = """
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("SELECT pg_sleep(1)")


def downgrade():
    op.drop_table("notes")
"""

JOB = "import sys; from servicekit.schema import Migrations; Migrations(sys.argv[1]).{}"


def scripts(tmp_path: Path) -> Path:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "script.py.mako").write_text("")
    (tmp_path / "versions" / "r0001_notes.py").write_text(REVISION)
    return tmp_path


def start(action: str, location: Path, database_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", JOB.format(action), str(location), database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_jobs_started_together_both_succeed_and_migrate_once(
    tmp_path: Path, database_url: str
) -> None:
    location = scripts(tmp_path)
    jobs = [start("upgrade(sys.argv[2])", location, database_url) for _ in range(2)]
    outputs = [job.communicate(timeout=120)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0001",)
        ]
        assert connection.execute("SELECT count(*) FROM notes").fetchone() == (0,)


def test_downgrade_to_base_removes_the_schema(tmp_path: Path, database_url: str) -> None:
    location = scripts(tmp_path)
    for action in ("upgrade(sys.argv[2])", "downgrade(sys.argv[2], 'base')"):
        job = start(action, location, database_url)
        output = job.communicate(timeout=120)[0]
        assert job.returncode == 0, output
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT to_regclass('notes')").fetchone() == (None,)
