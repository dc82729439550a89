"""`python -m bench [--only plan,bumps,limiter,media,stack,e2e,images] [--counts 1,10,100]`
(or `make bench`).

Builds every input itself (synthetic repositories, a Redis server, the local stack), runs our code
and the anchor in the same run, and prints one table: figure, ours, anchor, ratio, note.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import bumps, image_sizes, limiter, media, plan, stack
from bench.table import Row, render

SECTIONS = ("plan", "bumps", "limiter", "media", "stack", "e2e", "images")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--counts", default="1,10,100", help="concurrent bumpers per scenario")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(SECTIONS))
    if unknown:
        parser.error(
            f"--only: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})"
        )
    try:
        args.counts = tuple(int(n) for n in args.counts.split(","))
    except ValueError:
        parser.error(f"--counts {args.counts!r}: expected comma-separated numbers")
    return args


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, load average {load}"
    )


def cache_bytecode(work: Path) -> str:
    """Let the measured Python processes cache their bytecode, as Python does by default.

    Some machines (this project's CI among them) set PYTHONDONTWRITEBYTECODE=1, so every
    `python -m ci.deliver` would compile its modules again: ~0.1 s per start, which is not our
    code's speed. The cache goes to a temporary folder, never into the tree.
    """
    was = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return "bytecode cached" + (" (PYTHONDONTWRITEBYTECODE was set)" if was else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        bytecode = cache_bytecode(work)
        sections: dict[str, Callable[[], list[Row]]] = {
            "plan": lambda: plan.run(work),
            "bumps": lambda: bumps.run(work, args.counts),
            "limiter": limiter.run,
            "media": media.run,
            "stack": stack.run,
            "e2e": stack.e2e_wall_time,
            "images": image_sizes.run,
        }
        rows: list[Row] = []
        for name in args.only:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            found = sections[name]()
            print(render(found), file=sys.stderr, flush=True)  # partial results as they come
            rows += found
    print(f"machine: {machine()}; {bytecode}")
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
