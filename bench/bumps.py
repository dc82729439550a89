"""Concurrent GitOps bumps: `python -m ci.deliver bump` processes vs a naive bash push loop.

Every bumper is its own process with its own clone of one bare remote, all started at once, all
with the same source commit (so none may be refused as stale: every bump must land). The anchor
is the naive loop (commit, push, on rejection `pull --rebase`, retry) on different files: it
cannot bump one file concurrently at all (its rebase conflicts), and it is run only up to 10
bumpers: without backoff, 100 of them thrash the machine for many minutes (tried: over 8).
Every process is bound to this one (setpriv --pdeathsig): killing the benchmark kills them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from harness.lifetime import bound_to_parent

from bench.repos import bare_remote, clones, git
from bench.table import Row

CI_SRC = Path(__file__).resolve().parents[1] / "ci" / "src"
DEADLINE_SECONDS = 900
ANCHOR_MAX_BUMPERS = 10
ANCHOR_LOOP = r"""
cd "$1" && printf 'image:\n  tag: "%s"\n' "$2" > "charts/$3/values-staging.yaml" &&
git commit -qam "bump $3" || exit 1
for _ in $(seq 500); do
  git push -q origin HEAD:main 2>/dev/null && exit 0
  git pull -q --rebase origin main 2>/dev/null || exit 1
done
exit 1
"""


def service(i: int) -> str:
    return f"svc{i:04d}"


def launch_all(commands: list[list[str]], cwd: Path) -> tuple[float, list[tuple[int, bytes]]]:
    """Start every command at once; (seconds until the last one exited, (status, stdout) each)."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(  # noqa: S603 - python/bash with our own arguments
            bound_to_parent(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        for cmd in commands
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=DEADLINE_SECONDS)
        results.append((proc.returncode, out))
    return time.perf_counter() - started, results


def ours(workdir: Path, count: int, same: bool) -> tuple[float, str]:
    bare = bare_remote(workdir, 1 if same else count)
    repos = clones(bare, workdir, count)
    source = git(repos[0], "rev-parse", "HEAD")
    commands = []
    for i, repo in enumerate(repos):
        digest = "sha256:" + hashlib.sha256(f"{count}-{same}-{i}".encode()).hexdigest()
        target = service(0) if same else service(i)
        commands.append(
            [sys.executable, "-m", "ci.deliver", "bump", "--repo", str(repo), "--env", "staging",
             "--image", f"{target}=build{i}@{digest}", "--source", source,
             "--allow-unsigned"]  # no registry holds these digests: the race is measured
        )  # fmt: skip
    seconds, results = launch_all(commands, CI_SRC)
    failed = sum(1 for status, _ in results if status != 0)
    reported = {json.loads(out)["commit"] for status, out in results if status == 0}
    landed = set(git(bare, "log", "--format=%H", "--grep=^deploy(staging)", "main").split())
    lost = len(reported - landed) + len([c for c in reported if c is None])
    attempts = max((json.loads(out)["attempts"] for s, out in results if s == 0), default=0)
    return seconds, f"{failed} failed, {lost} lost, max {attempts} attempts"


def anchor(workdir: Path, count: int) -> tuple[float, str]:
    bare = bare_remote(workdir, count)
    repos = clones(bare, workdir, count)
    commands = [
        ["bash", "-c", ANCHOR_LOOP, "bash", str(repo), f"build{i}", service(i)]
        for i, repo in enumerate(repos)
    ]
    seconds, results = launch_all(commands, workdir)
    failed = sum(1 for status, _ in results if status != 0)
    return seconds, f"{failed} failed"


def run(workdir: Path, counts: tuple[int, ...] = (1, 10, 100)) -> list[Row]:
    ours(workdir / "warm-up", 1, same=False)  # the bytecode cache and the page cache
    rows = []
    for count in counts:
        anchor_seconds: float | None = None
        anchor_note = f"no anchor above {ANCHOR_MAX_BUMPERS} bumpers"
        if count <= ANCHOR_MAX_BUMPERS:
            anchor_seconds, anchor_note = anchor(workdir / f"anchor-{count}", count)
            anchor_note = f"anchor {anchor_note}"
        for same in (False, True) if count > 1 else (False,):
            kind = "one service" if same else "different services"
            label = f"{count} concurrent bumps, {kind}" if count > 1 else "one bump alone"
            seconds, note = ours(workdir / f"ours-{count}-{same}", count, same)
            rows.append(Row(label, seconds, anchor_seconds, "s", f"{note}; {anchor_note}"))
    return rows
