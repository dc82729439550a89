"""The migrations match the models and run both ways on a real PostgreSQL."""

from __future__ import annotations

import io

from django.core.management import call_command
from django.db import connection


def data_processor_tables() -> set[str]:
    return {name for name in connection.introspection.table_names() if name.startswith("data_")}


def test_models_have_no_unmigrated_changes(stats_db: str) -> None:
    out = io.StringIO()
    call_command("makemigrations", "data_processor", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_migrations_go_down_and_up_again(stats_db: str) -> None:
    assert data_processor_tables() == {
        "data_processor_processedevent",
        "data_processor_dailymessagecount",
        "data_processor_conversationactivity",
    }
    call_command("migrate", "data_processor", "zero", verbosity=0)
    assert data_processor_tables() == set()
    call_command("migrate", "data_processor", verbosity=0)
    assert len(data_processor_tables()) == 3
