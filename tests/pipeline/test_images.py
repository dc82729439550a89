"""The service images' Dockerfiles: pinned bases, hashed wheels only, no pip at run time.

No image can be built here (no registry for the base images), so the rules a build depends on
are read from the Dockerfiles themselves; the engine builds them in GitHub Actions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))
PYTHON_DOCKERFILES = [p for p in DOCKERFILES if p.with_name("requirements.txt").exists()]
PINNED = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    rest: str


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    keyword_and_rest = ([*line.split(None, 1), ""] for line in logical)
    return [Instruction(keyword.upper(), rest) for keyword, rest, *_ in keyword_and_rest]


def stages(path: Path) -> list[list[Instruction]]:
    """Instructions grouped by build stage (before the first FROM: the global ARGs)."""
    grouped: list[list[Instruction]] = [[]]
    for instruction in instructions(path):
        if instruction.keyword == "FROM":
            grouped.append([])
        grouped[-1].append(instruction)
    return grouped


def runs(path: Path) -> list[str]:
    return [i.rest for i in instructions(path) if i.keyword == "RUN"]


def test_every_service_has_a_dockerfile() -> None:
    assert len(DOCKERFILES) == 6, [str(p) for p in DOCKERFILES]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_pinned_by_digest(dockerfile: Path) -> None:
    defaults = {
        name: value
        for i in stages(dockerfile)[0]
        if i.keyword == "ARG" and "=" in i.rest
        for name, value in [i.rest.split("=", 1)]
    }
    for i in instructions(dockerfile):
        if i.keyword != "FROM":
            continue
        image = i.rest.split()[0]
        image = defaults.get(image.removeprefix("${").removesuffix("}"), image)
        if image in set(re.findall(r"AS (\S+)", dockerfile.read_text())):
            continue  # a previous stage of the same file
        assert PINNED.match(image), f"{dockerfile}: FROM {image} is not tag@sha256:<digest>"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_no_floating_frontend_syntax_line(dockerfile: Path) -> None:
    # `# syntax=docker/dockerfile:1` pulls a floating frontend image at build time; the
    # builder's own frontend supports everything these files use (RUN --mount included).
    assert not re.search(r"^#\s*syntax=", dockerfile.read_text(), re.MULTILINE)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_package_installs_are_hashed_with_a_cache_mount(dockerfile: Path) -> None:
    for command in runs(dockerfile):
        for install in command.split("&&"):
            if not re.search(r"\bpip install\b", install):
                continue
            for flag in ("--require-hashes", "--no-deps"):
                assert flag in install, f"{dockerfile}: pip install without {flag}: {install}"
            # Wheels only, or sdists built by the pinned setuptools: never a build backend
            # that pip would fetch, unhashed, into an isolated build environment.
            assert "--only-binary :all:" in install or "--no-build-isolation" in install, install
        if re.search(r"\bpip install\b", command):
            assert "--mount=type=cache,target=/root/.cache/pip" in command, command
        if re.search(r"\bnpm (ci|install)\b", command):
            assert "npm ci" in command, f"{dockerfile}: npm install instead of npm ci"
            assert "--mount=type=cache,target=/root/.npm" in command, command


def test_the_build_backend_is_pinned_with_hashes() -> None:
    pins = (ROOT / "services/servicekit/build-requirements.txt").read_text()
    entries = [line for line in pins.splitlines() if line and not line.startswith((" ", "#"))]
    assert [e.split("==")[0] for e in entries] == ["setuptools"], entries
    assert re.search(r"setuptools==[\d.]+ \\\n\s+--hash=sha256:[0-9a-f]{64}", pins)


@pytest.mark.parametrize("dockerfile", PYTHON_DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_build_backend_is_installed_before_any_sdist_build(dockerfile: Path) -> None:
    steps = [s for c in runs(dockerfile) for s in c.split("&&") if "pip install" in s]
    assert "build-requirements.txt" in steps[0], f"{dockerfile}: setuptools must come first"
    assert all("--no-build-isolation" in s for s in steps[1:]), steps


@pytest.mark.parametrize("dockerfile", PYTHON_DOCKERFILES, ids=lambda p: p.parent.name)
def test_python_runtime_stage_has_no_pip_and_builds_nothing(dockerfile: Path) -> None:
    runtime = stages(dockerfile)[-1]
    commands = [i.rest for i in runtime if i.keyword == "RUN"]
    assert any("pip uninstall" in c for c in commands), f"{dockerfile}: runtime keeps pip"
    assert not any(" install " in f" {c} " for c in commands), f"{dockerfile}: installs at run time"
    users = [i.rest for i in runtime if i.keyword == "USER"]
    assert users == ["10001:10001"], f"{dockerfile}: runtime user {users}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_no_dead_data_paths(dockerfile: Path) -> None:
    # The root filesystem is read-only in the cluster; volumes are mounted by the charts.
    assert not re.search(r"(?<![\w-])/data\b", dockerfile.read_text()), f"{dockerfile}: /data"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_each_build_context_is_an_allow_list(dockerfile: Path) -> None:
    ignore = dockerfile.with_name("Dockerfile.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", f"{dockerfile}.dockerignore must start by excluding everything"
    copies = [i.rest.split() for i in instructions(dockerfile) if i.keyword == "COPY"]
    sources = [s for c in copies if not c[0].startswith("--from") for s in c[:-1]]
    for source in sources:
        assert any(source.startswith(r.removeprefix("!")) for r in rules if r.startswith("!")), (
            f"{dockerfile}: COPY {source} is not in the allow-list"
        )


def test_root_dockerignore_keeps_local_environments_out() -> None:
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    for needed in (".git", "**/.venv", "**/node_modules", "**/test-output"):
        assert needed in rules, f".dockerignore lacks {needed}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_runs_what_service_yaml_says(dockerfile: Path) -> None:
    """The CMD is service.yaml's `run` (the chart's command, the local stack's): server flags
    such as the uvicorn services' header bound hold however the image is started."""
    (cmd,) = (i.rest for i in instructions(dockerfile) if i.keyword == "CMD")
    service = yaml.safe_load(dockerfile.with_name("service.yaml").read_text())
    assert json.loads(cmd) == service["run"], f"{dockerfile}: CMD differs from service.yaml run"
