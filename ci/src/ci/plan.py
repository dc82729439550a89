"""`python -m ci.plan --base <ref>`: print which services the changes since <ref> affect, as JSON.

Runs on the host without a Dagger engine. Exit status 2 with a message on stderr for a bad ref,
a broken service.yaml or a repository that is not a git checkout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ci.core.affected import Plan, affected, library_charts, plan_json
from ci.core.catalog import CatalogError, load_catalog
from ci.core.gitfacts import GitError, diff_names, git, resolve, resolve_all

USAGE_ERROR = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ci.plan", description=__doc__)
    p.add_argument(
        "--base", help="git ref to compare with, e.g. origin/main (required unless --all)"
    )
    p.add_argument("--head", default="HEAD", help="git ref of the change (default: HEAD)")
    p.add_argument("--all", action="store_true", help="select every service")
    p.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="repository root (default: the git top level of the current directory)",
    )
    return p


def make_plan(
    root: Path, base: str | None, head: str = "HEAD", *, everything: bool = False
) -> Plan:
    """The plan of the checkout at `root`; raises GitError or CatalogError.

    Without `base` (only with `everything`) no diff is taken: every service is selected anyway.
    `git diff` runs in a thread (waiting on the subprocess releases the GIL) while this thread
    parses the catalog: with a thousand services the two take about as long as each other.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        git_facts = pool.submit(_diff, root, base, head)
        catalog = load_catalog(root)  # its errors first: they name the file and field
        charts = library_charts(root)
        base_sha, head_sha, changed = git_facts.result()
    return affected(catalog, changed, charts, everything=everything, base=base_sha, head=head_sha)


def _diff(root: Path, base: str | None, head: str) -> tuple[str | None, str, list[str]]:
    """(base sha, head sha, changed paths); no diff without a base. Two git processes at most:
    one rev-parse for both refs, one diff."""
    if base is None:
        return None, resolve(root, head), []
    base_sha, head_sha = resolve_all(root, base, head)
    return base_sha, head_sha, diff_names(root, base_sha, head_sha)


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.base is None and not args.all:
        cli.error("--base is required (or --all for every service)")
    try:
        root = args.repo or Path(git(Path.cwd(), "rev-parse", "--show-toplevel").strip())
        plan = make_plan(root, args.base, args.head, everything=args.all)
    except (GitError, CatalogError) as exc:
        print(f"ci.plan: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(plan_json(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
