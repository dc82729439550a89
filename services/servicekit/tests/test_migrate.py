"""The shared migration command line (the services' tests run it against real databases)."""

from __future__ import annotations

import pytest
from servicekit.migrate import migrate_main
from servicekit.settings import ServiceSettings

URL = "postgresql://user@127.0.0.1:5432/db"


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail

    def upgrade(self, url: str, revision: str) -> None:
        self.calls.append(("upgrade", url, revision))
        if self.fail:
            raise RuntimeError("the database went away")

    def downgrade(self, url: str, revision: str) -> None:
        self.calls.append(("downgrade", url, revision))


def run(argv: list[str], recorder: Recorder) -> int:
    return migrate_main(
        argv,
        service="svc",
        settings=ServiceSettings,
        upgrade=recorder.upgrade,
        downgrade=recorder.downgrade,
    )


def test_upgrade_to_head_by_default_and_downgrade_to_a_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", URL)
    recorder = Recorder()
    assert run([], recorder) == 0
    assert run(["upgrade", "0002"], recorder) == 0
    assert run(["downgrade", "base"], recorder) == 0
    assert recorder.calls == [
        ("upgrade", URL, "head"),
        ("upgrade", URL, "0002"),
        ("downgrade", URL, "base"),
    ]


def test_a_failed_migration_exits_1_and_is_logged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", URL)
    assert run([], Recorder(fail=True)) == 1
    assert "migration failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "environment", "words"),
    [
        ([], {}, "DATABASE_URL is not set"),
        (["downgrade"], {"DATABASE_URL": URL}, "REVISION"),
        (["sideways"], {"DATABASE_URL": URL}, "invalid choice"),
        ([], {"DATABASE_URL": URL, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_usage_and_configuration_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    environment: dict[str, str],
    words: str,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    recorder = Recorder()
    with pytest.raises(SystemExit) as exited:
        run(argv, recorder)
    assert exited.value.code == 2
    assert words in capsys.readouterr().err
    assert recorder.calls == []
