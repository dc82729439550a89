"""`python -m ci.doclinks [ROOT]`: every relative link and anchor of the repository's Markdown.

A link to a file or folder that does not exist, a fragment that names no heading (GitHub's
anchors) or `<a id>` of the target document, or a path climbing out of the repository is
printed as `file:line: target: reason`; exit status 1 when there is one, 2 on usage errors.
Part of `make lint` (ci.core.recipes.repo_lint_steps).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ci.core.mdtext import Docs

USAGE_ERROR = 2
# Folders that hold no documentation of ours: dependencies, caches, build output, hidden folders.
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "dist", "sdk", "test-output"})


def markdown_files(root: Path) -> list[str]:
    """Every *.md under `root` outside SKIPPED_FOLDERS and hidden folders, as sorted POSIX paths."""
    found: list[str] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in SKIPPED_FOLDERS and d[0] != "."]
        here = Path(folder).relative_to(root)
        found += [(here / f).as_posix() for f in files if f.endswith(".md")]
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ci.doclinks", description=__doc__)
    p.add_argument("root", nargs="?", type=Path, default=Path(), help="repository root")
    args = p.parse_args(argv)
    if not args.root.is_dir():
        p.error(f"root: not a directory: {args.root}")
    files = markdown_files(args.root)
    problems = Docs(args.root, files).problems()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"doclinks: {len(files)} Markdown files, {len(problems)} broken link(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
