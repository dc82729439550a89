"""Host mode of `check` (`python -m ci.check`): what runs on this machine, and what cannot.

The stages and their commands are the engine's (ci.core.recipes); this module decides only
what differs on a host: which optional tools are missing (each such stage is reported as
"not run: <reason>", never as a silent pass nor as a failure), the order the jobs start in,
and how many run at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from ci.core import checks, recipes
from ci.core.affected import Plan

SCAN_IGNORE_FILE = "ci/scan-ignore.yaml"
NO_DOCKER = "no Docker daemon"
NO_TRIVY = "trivy not installed"
NO_HADOLINT = "hadolint not installed"


class Tools(BaseModel):
    """What this machine offers for the build and scan stages."""

    model_config = ConfigDict(frozen=True)

    docker: str  # empty when a Docker daemon answers, else why not (e.g. NO_DOCKER)
    trivy: bool
    hadolint: bool


class Job(BaseModel):
    """One unit of host work: a stage of a service (build and scan run as one job, scan
    needs the image the build made)."""

    model_config = ConfigDict(frozen=True)

    service: str
    stage: str  # "lint", "test", "build+scan", "generated"


def image_scan_not_run(tools: Tools, built: bool) -> str:
    """Why Trivy cannot scan the image here, or "" when it can."""
    if tools.docker:
        return tools.docker
    if not built:
        return "the image was not built"
    return "" if tools.trivy else NO_TRIVY


def scan_not_run(tools: Tools, built: bool) -> str:
    """The scan row's "not run" reason: the parts of the scan that could not run here."""
    image = image_scan_not_run(tools, built)
    if not tools.hadolint:
        return f"{NO_HADOLINT}; image scan: {image}" if image else NO_HADOLINT
    return f"image scan: {image} (hadolint ran)" if image else ""


def jobs(plan: Plan) -> list[Job]:
    """Every job of the plan, longest first so the slow ones do not start last: the repository
    suite, then the services' tests, lints, and builds with their scans."""
    names = plan.names()
    found: list[Job] = []
    if recipes.runs_repo_tests(plan):
        found.append(Job(service=recipes.REPO_SUITE, stage="test"))
    found += [Job(service=name, stage="test") for name in names]
    found += [Job(service=name, stage="lint") for name in names]
    found += [Job(service=name, stage="build+scan") for name in names]
    return found


GENERATED_JOB = Job(service=recipes.REPO_SUITE, stage="generated")


def check_name(job: Job) -> str:
    """The job's name under `dagger check` (ci.core.checks): scan-<service> for build+scan."""
    if job.service == recipes.REPO_SUITE:
        return checks.GENERATED if job == GENERATED_JOB else checks.REPOSITORY
    stage = "scan" if job.stage == "build+scan" else job.stage
    return checks.ServiceCheck(stage, job.service).name


def checked_jobs(plan: Plan, patterns: Sequence[str]) -> list[Job]:
    """The jobs of `dagger check PATTERN...` (every check the patterns select), longest first."""
    every = [*jobs(plan), GENERATED_JOB]
    wanted = set(checks.select(patterns, [check_name(job) for job in every]))
    return [job for job in every if check_name(job) in wanted]


def parallelism(cores: int | None, requested: int | None) -> int:
    """Jobs at once: as asked, else one per core (at least one)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--jobs {requested}: must be at least 1")
        return requested
    return max(1, cores or 1)


# The docker CLI's notice when buildx is missing (legacy builder); it says nothing about the
# service, and repeated under every failed build it buries the real error.
BUILDER_BANNER = re.compile(
    r"^DEPRECATED: The legacy builder is deprecated.*\n(?:[ \t]+\S.*\n?)*", re.MULTILINE
)


def without_builder_banner(text: str) -> str:
    """A build log's text without the legacy builder's deprecation banner."""
    return BUILDER_BANNER.sub("", text)
