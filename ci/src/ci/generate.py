"""`python -m ci.generate [--check] [NAME ...]`: write the repository's generated files.

The generators are those of ci.core.generated. `--check` writes nothing, lists every stale or
missing file and exits 1 when there is one (`make lint`); `--out DIR` writes every generated
file under DIR, for `dagger generate` to diff against the source. Exit status 2 on usage errors or
when a generator cannot run (the message names the file). `dagger generate` runs this command
in the toolchain container.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ci.core import generated
from ci.core.catalog import CatalogError

USAGE_ERROR = 2
STALE = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ci.generate", description=__doc__)
    p.add_argument("names", nargs="*", metavar="NAME", help="only these generators")
    p.add_argument("--check", action="store_true", help="write nothing; fail when stale")
    p.add_argument("--repo", type=Path, default=Path(), help="repository root (default: .)")
    p.add_argument(
        "--out", type=Path, help="write every generated file under OUT instead (dagger generate)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root = args.repo.resolve()
    try:
        files = generated.render(root, generated.select(args.names))
    except (ValueError, CatalogError, generated.GenerateError) as exc:
        print(f"ci.generate: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.check:
        stale = generated.stale(root, files)
        if stale:
            print(f"stale or missing (run make generate): {' '.join(stale)}", file=sys.stderr)
            return STALE
        return 0
    target = root if args.out is None else args.out.resolve()
    for path in generated.write(target, files):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
