"""One version per tool, written once here.

The Dagger module's default images come from these constants; every other place that names a
version (Dockerfiles, charts, the Makefile, pyproject.toml, .python-version files, the GitHub
workflows, package.json's engine range) is checked against them by
tests/pipeline/test_tool_versions.py, so two places can no longer drift apart silently.
Elsewhere a tag must start with the version below; its variant may differ (the Debian toolchain
beside Alpine runtime images: `python:3.12.8-alpine3.21@sha256:...`).

Not covered: the PostgreSQL and Redis *binaries* the test harness starts itself (the repository
suite, and the service tests that stop and restart a server of their own) come from Debian
bookworm (PostgreSQL 15, Redis 7.0), on a developer machine and in the toolchain container
alike. The services' suites in the engine talk to the pinned images below, the versions the
charts deploy.
"""

from __future__ import annotations

PYTHON = "3.12.8"
NODE = "20.20.2"
UV = "0.13.9"
POSTGRES = "16.6"
REDIS = "7.4.2"
TRIVY = "0.58.1"
DAGGER = "0.21.11"
GIT = "2.47.1"

PYTHON_IMAGE = f"python:{PYTHON}-slim-bookworm"
# The Python services' base (ci.core.dockerfiles renders it into their Dockerfiles).
PYTHON_RUNTIME_IMAGE = (
    f"python:{PYTHON}-alpine3.21"
    "@sha256:ba13ef990f6e5d13014e9e8d04c02a8fdb0fe53d6dccf6e19147f316e6cc3a84"
)
NODE_IMAGE = f"node:{NODE}-bookworm-slim"
UV_IMAGE = f"ghcr.io/astral-sh/uv:{UV}"
POSTGRES_IMAGE = f"postgres:{POSTGRES}-bookworm"
REDIS_IMAGE = f"redis:{REDIS}-bookworm"
TRIVY_IMAGE = f"aquasec/trivy:{TRIVY}"
GIT_IMAGE = f"alpine/git:v{GIT}"


def python_minor(version: str = PYTHON) -> str:
    """`3.12.8` -> `3.12` (what .python-version files name)."""
    return ".".join(version.split(".")[:2])
