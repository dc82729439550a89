"""The link and anchor check of `make lint` (ci.core.mdtext, python -m ci.doclinks) on small
repositories written by each test: every kind of broken link is found and named, every
working one passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ci.core.mdtext import Docs, slug
from ci.doclinks import markdown_files

CI_SRC = Path(__file__).resolve().parents[2] / "ci" / "src"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What runs where", "what-runs-where"),
        ("Delivery (GitOps, previews, releases)", "delivery-gitops-previews-releases"),
        ("Argo CD and K3s (charts/, k3s/)", "argo-cd-and-k3s-charts-k3s"),
        ("python -m ci.cluster", "python--m-cicluster"),
        ("A & B", "a--b"),
        ("snake_case stays", "snake_case-stays"),
        ("Über café: 2.0", "über-café-20"),
    ],
)
def test_anchors_follow_githubs_slug_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def write(root: Path, files: dict[str, str]) -> Docs:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Docs(root, markdown_files(root))


GOOD = {
    "README.md": (
        "# Title\n\n## Set up\n\n## Set up\n\n## The `check` job\n\n"
        "[a](#set-up) [b](#set-up-1) [c](#the-check-job) [d](docs/ops.md#rotate-a-secret)\n"
        "[e](docs/) [f](ci/run.sh) [g](/docs/ops.md) [h](https://example.com/x#nowhere)\n"
        "[i](docs/ops.md#custom) ![j](docs/diagram.png) [k](mailto:a@b.c) [l](ci/run.sh#L3)\n"
    ),
    "docs/ops.md": (
        '# Ops\n\n## Rotate a secret\n\n<a id="custom"></a>\n[back](../README.md#title)\n'
    ),
    "docs/diagram.png": "",
    "ci/run.sh": "",
}


def test_working_links_and_anchors_pass(tmp_path: Path) -> None:
    assert write(tmp_path, GOOD).problems() == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[x](docs/missing.md)", "no such file or directory: docs/missing.md"),
        ("[x](#nowhere)", "no heading or anchor #nowhere in README.md"),
        ("[x](docs/ops.md#rotate-secrets)", "no heading or anchor #rotate-secrets in docs/ops.md"),
        ("[x](#set-up-2)", "no heading or anchor #set-up-2 in README.md"),
        ("[x](../outside.md)", "points outside the repository"),
        ("![x](docs/missing.png)", "no such file or directory: docs/missing.png"),
        ("| a | [x](docs/gone.md) |\n|---|---|\n", "no such file or directory: docs/gone.md"),
        ("[x][ref]\n\n[ref]: docs/gone.md", "no such file or directory: docs/gone.md"),
    ],
)
def test_each_broken_link_is_named_with_file_line_and_reason(
    tmp_path: Path, line: str, reason: str
) -> None:
    files = {**GOOD, "README.md": GOOD["README.md"] + "\nmore text\n\n" + line + "\n"}

    problems = write(tmp_path, files).problems()

    assert [(p.file, p.line, p.reason) for p in problems] == [("README.md", 15, reason)]


def test_links_and_headings_inside_code_are_not_links(tmp_path: Path) -> None:
    text = "# T\n\n`[x](gone.md)`\n\n```sh\n# not a heading\necho '[y](gone.md)'\n```\n"
    text += "[z](#not-a-heading)\n"

    problems = write(tmp_path, {"README.md": text}).problems()

    assert [p.target for p in problems] == ["#not-a-heading"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(CI_SRC)}
    return subprocess.run(
        [sys.executable, "-m", "ci.doclinks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_fails_on_a_broken_link_and_skips_dependencies(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(tmp_path, {"node_modules/p/README.md": "[x](gone.md)", ".venv/README.md": "[x](y.md)"})
    assert run_cli(str(tmp_path)).returncode == 0

    write(tmp_path, {"docs/ops.md": "# Ops\n\n[x](../READ_ME.md)\n"})
    done = run_cli(str(tmp_path))

    assert done.returncode == 1
    assert "docs/ops.md:3: ../READ_ME.md: no such file or directory: READ_ME.md" in done.stderr
    assert "README.md" in done.stderr  # the anchors into docs/ops.md that went with it


def test_a_bad_root_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(str(tmp_path / "missing"))

    assert done.returncode == 2
    assert "root: not a directory" in done.stderr
