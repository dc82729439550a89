"""What a Python service's Dockerfile does, read with the official (BuildKit) parser.

The closure tier replays a Dockerfile on the host without Docker: its build stage's RUN steps
(the venv and its pip installs, with the Dockerfile's own flags), then its runtime stage's ENV,
USER and CMD. Only the steps understood here are replayed; anything else is an error naming the
file and line, so a Dockerfile that changes shape fails the tier instead of being half-replayed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import dockerfile


class RecipeError(ValueError):
    """A Dockerfile instruction the replay does not understand."""


@dataclass(frozen=True)
class BuildStep:
    """One command of a build-stage RUN, as argv in the image's paths."""

    argv: tuple[str, ...]
    line: int

    @property
    def creates_venv(self) -> bool:
        return self.argv[:3] == ("python", "-m", "venv")


@dataclass(frozen=True)
class BuildStage:
    env: dict[str, str]
    steps: tuple[BuildStep, ...]
    copied_files: dict[str, str]  # image path -> repository path (files the steps read)
    copied_trees: dict[str, tuple[str, ...]]  # image dir -> repository dirs copied into it


@dataclass(frozen=True)
class RuntimeStage:
    env: tuple[tuple[str, str], ...]  # in order; values may name $VARIABLES
    copies: dict[str, str]  # runtime path -> build-stage path (COPY --from)
    user: str | None
    cmd: tuple[str, ...]


@dataclass(frozen=True)
class Recipe:
    dockerfile: Path
    build: BuildStage
    runtime: RuntimeStage

    @property
    def venvs(self) -> tuple[str, ...]:
        return tuple(step.argv[3] for step in self.build.steps if step.creates_venv)

    def cache_key_material(self) -> str:
        """Everything the build stage's result depends on but the copied files and trees."""
        steps = "\n".join(shlex.join(step.argv) for step in self.build.steps)
        env = "\n".join(f"{k}={v}" for k, v in sorted(self.build.env.items()))
        return f"{steps}\n{env}"


def read_recipe(path: Path) -> Recipe:
    """The two stages (`build`, then the runtime stage that copies from it) of a Dockerfile."""
    stages = _stages(path)
    if len(stages) != 2:
        raise RecipeError(f"{path}: {len(stages)} stages; the replay knows build + runtime")
    build, runtime = stages
    return Recipe(path, _build_stage(path, build), _runtime_stage(path, runtime))


def _stages(path: Path) -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append(command)
    return stages


def _build_stage(path: Path, commands: list[dockerfile.Command]) -> BuildStage:
    env: dict[str, str] = {}
    steps: list[BuildStep] = []
    files: dict[str, str] = {}
    trees: dict[str, list[str]] = {}
    for command in commands:
        where = f"{path}:{command.start_line}"
        if command.cmd == "ENV":
            env.update(_pairs(command.value))
        elif command.cmd == "RUN":
            if command.json:
                raise RecipeError(f"{where}: RUN in JSON form is not replayed")
            for argv in _and_list(where, command.value[0]):
                steps.append(BuildStep(tuple(argv), command.start_line))
        elif command.cmd == "COPY":
            *sources, destination = command.value
            if command.flags:
                raise RecipeError(f"{where}: COPY {' '.join(command.flags)} in the build stage")
            for source in sources:
                if destination.endswith("/"):
                    trees.setdefault(destination.rstrip("/"), []).append(source.rstrip("/"))
                else:
                    files[destination] = source
        elif command.cmd not in ("ARG", "LABEL"):
            raise RecipeError(f"{where}: {command.cmd} in the build stage is not replayed")
    return BuildStage(env, tuple(steps), files, {k: tuple(v) for k, v in trees.items()})


def _runtime_stage(path: Path, commands: list[dockerfile.Command]) -> RuntimeStage:
    env: list[tuple[str, str]] = []
    copies: dict[str, str] = {}
    user: str | None = None
    cmd: tuple[str, ...] = ()
    for command in commands:
        where = f"{path}:{command.start_line}"
        if command.cmd == "ENV":
            env.extend(_pairs(command.value).items())
        elif command.cmd == "COPY":
            if not any(flag.startswith("--from=") for flag in command.flags):
                raise RecipeError(f"{where}: the runtime stage copies only from the build stage")
            source, destination = command.value
            copies[destination.rstrip("/")] = source.rstrip("/")
        elif command.cmd == "USER":
            user = command.value[0]
        elif command.cmd == "CMD":
            if not command.json:
                raise RecipeError(f"{where}: CMD in shell form (the replay runs JSON argv only)")
            cmd = tuple(command.value)
        elif command.cmd == "RUN":
            # Changes to the base image's own Python (pip removed): nothing the venv sees.
            # tests/pipeline/test_images.py checks that no runtime RUN installs anything.
            continue
        elif command.cmd not in ("ARG", "LABEL", "EXPOSE"):
            # ENTRYPOINT and WORKDIR too: the runs assume neither (argv is CMD, cwd is /).
            raise RecipeError(f"{where}: {command.cmd} in the runtime stage is not replayed")
    if not cmd:
        raise RecipeError(f"{path}: the runtime stage has no CMD")
    return RuntimeStage(tuple(env), copies, user, cmd)


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    """ENV's value tuple (name, value, name, value, ...) as a dict, in order."""
    return dict(zip(values[::2], values[1::2], strict=True))


def _and_list(where: str, script: str) -> list[list[str]]:
    """A RUN script of commands joined by `&&` (and nothing else of the shell) as argvs."""
    if re.search(r"[|;<>`$]|\|\||\(", script):
        raise RecipeError(f"{where}: RUN uses shell syntax beyond `&&`: {script!r}")
    return [shlex.split(part) for part in script.split("&&")]


def image_path_of(path: str, mapping: dict[str, Path]) -> Path | None:
    """`path` (an absolute image path) on the host through `mapping`, longest prefix first."""
    pure = PurePosixPath(path)
    for image_root in sorted(mapping, key=len, reverse=True):
        if pure == PurePosixPath(image_root) or PurePosixPath(image_root) in pure.parents:
            return mapping[image_root] / pure.relative_to(image_root)
    return None
