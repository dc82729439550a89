"""`python -m ci.plan` over 1,000 services and 100,000 changed paths vs `git diff --name-only`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.repos import commit_many_paths, monorepo
from bench.table import Row, median_seconds

SERVICES = 1000
PATHS_PER_SERVICE = 100
REPEAT = 3
CI_SRC = Path(__file__).resolve().parents[1] / "ci" / "src"


def run(workdir: Path) -> list[Row]:
    repo = monorepo(workdir / "plan", SERVICES)
    head = commit_many_paths(repo, SERVICES, PATHS_PER_SERVICE)
    plan = [sys.executable, "-m", "ci.plan", "--repo", str(repo), "--base", "main", "--head", head]
    diff = ["git", "diff", "--name-only", "--no-renames", f"main...{head}"]

    def ours() -> None:
        out = subprocess.run(  # noqa: S603 - our interpreter and module
            plan, cwd=CI_SRC, capture_output=True, check=True, timeout=600
        )
        found = json.loads(out.stdout)
        if len(found["changed_files"]) != SERVICES * PATHS_PER_SERVICE:
            raise RuntimeError("ci.plan saw the wrong number of changed paths")

    def anchor() -> None:
        subprocess.run(  # noqa: S603 - git with fixed arguments
            diff, cwd=repo, capture_output=True, check=True, timeout=600
        )

    ours()  # warm the page cache for both
    ours_wall, ours_cpu = median_seconds(ours, REPEAT)
    anchor_wall, anchor_cpu = median_seconds(anchor, REPEAT)
    return [
        Row(
            f"plan: {SERVICES:,} services, {SERVICES * PATHS_PER_SERVICE:,} changed paths",
            ours_wall,
            anchor_wall,
            "s",
            f"CPU {ours_cpu:.2f} s vs {anchor_cpu:.2f} s; anchor: git diff --name-only alone; "
            f"median of {REPEAT}",
        )
    ]
