"""docs/operations.md answers every operational task of the migration analysis's target state
(its section 1.4, "Overhead Comparison by Category": the Task column of each table), each row
with a way to do it, what success looks like and what to do otherwise."""

from __future__ import annotations

from pathlib import Path

from ci.core.mdtext import inline_text, parser
from markdown_it.token import Token

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# The analysis's tasks, by category, exactly as it names them.
ANALYSIS_TASKS = {
    "cluster management": [
        "Install/setup",
        "Upgrade",
        "Troubleshooting",
        "Resource monitoring",
        "Networking",
    ],
    "deployment": [
        "Deploy new version",
        "Rollback",
        "Config changes",
        "Multi-env support",
        "Deployment visibility",
    ],
    "networking": [
        "Route configuration",
        "TLS termination",
        "Path-based routing",
        "Load balancing",
        "Health checks",
    ],
    "data layer": [
        "Database setup",
        "Backups",
        "Migrations",
        "Connection management",
        "Cache setup",
        "Cache management",
    ],
    "CI/CD": ["Build images", "Push images", "Deploy", "Test", "Lint/format"],
    "monitoring": ["Logs", "Metrics", "Alerting", "Tracing", "Health checks"],
    "secrets": ["Store secrets", "Rotate secrets", "Access control"],
}
NOT_YET = "**not yet**"


def table_rows(tokens: list[Token]) -> list[dict[str, Token]]:
    """The first table's body rows, each as {header: the cell's inline token}."""
    headers: list[str] = []
    rows: list[dict[str, Token]] = []
    cells: list[Token] = []
    for i, token in enumerate(tokens):
        if token.type in ("th_open", "td_open"):
            cells.append(tokens[i + 1])
        elif token.type == "tr_close":
            if not headers:
                headers = [inline_text(c) for c in cells]
            else:
                rows.append(dict(zip(headers, cells, strict=True)))
            cells = []
        elif token.type == "table_close":
            break
    return rows


def rows() -> list[dict[str, Token]]:
    return table_rows(parser().parse(OPERATIONS.read_text(encoding="utf-8")))


def test_every_task_of_the_analysis_has_a_row() -> None:
    answered = {
        task.strip() for row in rows() for task in inline_text(row["analysis task"]).split(",")
    }
    wanted = {task for tasks in ANALYSIS_TASKS.values() for task in tasks}

    assert wanted - answered == set()
    assert answered - wanted <= {"-"}, "a row names a task the analysis does not have"


def test_each_row_says_how_or_that_the_platform_cannot_yet() -> None:
    for row in rows():
        how = row["how"]
        links = [c for c in how.children or [] if c.type == "link_open"]
        source = " ".join(t.content for t in row.values())
        assert links or NOT_YET in source, f"no way and no 'not yet': {source}"
        assert inline_text(row["worked when"]).strip() or NOT_YET in source, source
        assert inline_text(row["if not"]).strip(), source


def test_the_table_is_read_as_a_table() -> None:
    """The checks above must not pass on an empty parse."""
    assert len(rows()) >= 30
    assert {"task", "analysis task", "how", "worked when", "if not"} == set(rows()[0])
