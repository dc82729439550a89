"""Report: how big each Python service image is, layer by layer, without a container runtime.

The runtime image is the pinned base plus two layers: /opt/venv (the service's hashed
requirements, installed as wheels for the base's platform, without bytecode - exactly what the
Dockerfile does) and /opt/app (servicekit and the service's own source). Both layers are
measured here by installing the same wheels for musllinux into a temporary directory; the base
image cannot be pulled on a machine without a registry, so its size is an argument.

    .venv/bin/python -m bench.image_sizes [--base-mb 57] [--arch x86_64|aarch64]
    make bench BENCH_ARGS="--only images"   (each image on linux/amd64 and linux/arm64)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.table import Row

ROOT = Path(__file__).resolve().parents[1]
GOAL_MB = 150
# python:3.12.8-alpine3.21 as Docker Hub lists it (uncompressed); not measurable here.
DEFAULT_BASE_MB = 57.0


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def python_services() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("services/*/requirements.txt"))


def dependency_layer_mb(service: str, arch: str) -> float:
    """pip installs the service's requirements as the Dockerfile does, for musllinux/arch.

    A requirement without a musl wheel (the image builds it from its sdist) is installed from
    its sdist for this machine instead: the same files, give or take a compiled optimisation.
    """
    requirements = ROOT / "services" / service / "requirements.txt"
    with tempfile.TemporaryDirectory() as target:
        missing = _install_wheels(requirements, arch, Path(target))
        for pin in missing:
            _install("--no-binary", pin.split("==")[0], "--target", target, pin)
        return size_mb(Path(target))


def _install_wheels(requirements: Path, arch: str, target: Path) -> list[str]:
    """Install every requirement that has a musl wheel; the pins of those that have none."""
    lines = requirements.read_text().splitlines()
    missing: list[str] = []
    platforms = [f"--platform=musllinux_1_{n}_{arch}" for n in (2, 1)]
    while True:
        kept = _without(lines, missing)
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as pinned:
            pinned.write("\n".join(kept) + "\n")
            pinned.flush()
            done = _install(
                "--require-hashes", "--only-binary", ":all:", *platforms,
                "--python-version=3.12", "--implementation=cp", "--target", str(target),
                "-r", pinned.name, check=False,
            )  # fmt: skip
        if done.returncode == 0:
            return missing
        found = re.search(r"No matching distribution found for (\S+)", done.stderr)
        if found is None:
            raise SystemExit(f"{requirements}: pip failed:\n{done.stderr}")
        missing.append(found.group(1))


def _without(lines: list[str], pins: list[str]) -> list[str]:
    """Requirement lines minus the entries (pin line and its hash lines) of `pins`."""
    kept: list[str] = []
    skipping = False
    for line in lines:
        if not line.startswith(" "):
            skipping = line.split(" ")[0] in pins
        if not skipping:
            kept.append(line)
    return kept


def _install(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`pip install` as the Dockerfile runs it: no dependencies resolved, no bytecode."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", "install"]
    return subprocess.run(  # noqa: S603 - our own interpreter and repository files
        [*pip, "--no-deps", "--no-compile", *args], check=check, capture_output=True, text=True
    )


def app_layer_mb(service: str) -> float:
    sources = [ROOT / "services" / name / "src" for name in ("servicekit", service)]
    return sum(size_mb(src) for src in sources)


# Docker's platform names for the architectures pip's musllinux tags use.
PLATFORMS = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}


def run(base_mb: float = DEFAULT_BASE_MB) -> list[Row]:
    """`make bench`'s rows: each Python image on each platform, beside its base image."""
    rows = []
    for service in python_services():
        app = app_layer_mb(service)
        for arch, platform in PLATFORMS.items():
            total = base_mb + dependency_layer_mb(service, arch) + app
            verdict = "ok" if total <= GOAL_MB else "OVER"
            note = f"anchor: the base (Docker Hub's figure, not pulled); <= {GOAL_MB} MB: {verdict}"
            rows.append(Row(f"image size: {service} {platform}", total, base_mb, "MB", note))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-mb", type=float, default=DEFAULT_BASE_MB, help="base image MB")
    parser.add_argument("--arch", choices=["x86_64", "aarch64"], default="x86_64")
    args = parser.parse_args()
    print(f"| service | dependencies MB | own code MB | base MB | image MB | goal <= {GOAL_MB} |")
    print("|---|---:|---:|---:|---:|---|")
    over = 0
    for service in python_services():
        deps, app = dependency_layer_mb(service, args.arch), app_layer_mb(service)
        total = args.base_mb + deps + app
        over += total > GOAL_MB
        verdict = "ok" if total <= GOAL_MB else "OVER"
        sizes = [f"{deps:.1f}", f"{app:.2f}", f"{args.base_mb:.0f}", f"{total:.1f}"]
        cells = [service, *sizes, verdict]
        print("| " + " | ".join(cells) + " |")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
