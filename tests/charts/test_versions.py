"""Chart versions that mean something: a chart changed since the revision production runs has a
new version, every chart states the Kubernetes it needs, the library chart is a versioned
dependency, and the data stores' images are pinned by digest like the services' images."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chartkit import (
    ARGOCD,
    CHARTS,
    ENVIRONMENTS,
    LIBRARY_CHART,
    REPO,
    containers,
    kubernetes_version,
    load_values,
    namespace_for,
    pod_specs,
    production_revision,
    render,
    render_environment,
    require_full_history,
)

ALL_CHARTS = [*sorted(p.parent for p in CHARTS.glob("*/Chart.yaml")), ARGOCD / "environments"]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
KUBE_VERSION = re.compile(r"^>=(\d+)\.(\d+)\.(\d+)-0$")


def chart_yaml(chart: Path) -> dict[str, object]:
    return dict(yaml.safe_load((chart / "Chart.yaml").read_text()))


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60
    )


def unbumped_charts(repo: Path, base: str) -> list[str]:
    """Charts under repo/charts whose files differ from `base` while their version does not."""
    stale = []
    for chart in sorted((repo / "charts").glob("*/Chart.yaml")):
        relative = chart.parent.relative_to(repo).as_posix()
        then = git(repo, "show", f"{base}:{relative}/Chart.yaml")
        if then.returncode != 0:
            continue  # a new chart
        changed = git(repo, "diff", "--quiet", base, "--", relative).returncode != 0
        untracked = git(repo, "ls-files", "--others", "--exclude-standard", relative).stdout
        version_then = yaml.safe_load(then.stdout)["version"]
        if (changed or untracked.strip()) and chart_yaml(chart.parent)["version"] == version_then:
            stale.append(f"{relative} changed since {base[:12]} but is still {version_then}")
    return stale


def test_a_chart_changed_since_production_has_a_new_version() -> None:
    """What production would get at the next promotion is told apart by its version."""
    require_full_history()
    base = production_revision()
    assert git(REPO, "cat-file", "-e", f"{base}^{{commit}}").returncode == 0, base
    stale = unbumped_charts(REPO, base)
    assert not stale, "bump the chart version (Chart.yaml): " + "; ".join(stale)


def test_the_version_check_sees_a_change_without_a_bump(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    chart = repo / "charts" / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 1.0.0\n")
    (chart / "values.yaml").write_text("replicas: 1\n")
    for command in (
        ["init", "--quiet", "--initial-branch=main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "--quiet", "-m", "c"],
    ):
        assert git(repo, *command).returncode == 0
    base = git(repo, "rev-parse", "HEAD").stdout.strip()
    assert unbumped_charts(repo, base) == []
    (chart / "values.yaml").write_text("replicas: 2\n")
    assert len(unbumped_charts(repo, base)) == 1
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 1.0.1\n")
    assert unbumped_charts(repo, base) == []
    (chart / "templates" / "new.yaml").write_text("kind: ConfigMap\n")
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 1.0.0\n")
    assert len(unbumped_charts(repo, base)) == 1


@pytest.mark.parametrize("chart", ALL_CHARTS, ids=lambda p: p.name)
def test_every_chart_states_the_kubernetes_it_needs(chart: Path) -> None:
    match = KUBE_VERSION.match(str(chart_yaml(chart).get("kubeVersion", "")))
    assert match, f"{chart}/Chart.yaml: kubeVersion must read >=X.Y.Z-0"
    needed = tuple(int(part) for part in match.groups())
    pinned = tuple(int(part) for part in kubernetes_version().split("."))
    assert needed <= pinned, f"{chart}: needs {needed}, K3s pins {pinned}"


@pytest.mark.parametrize("chart", [c for c in ALL_CHARTS if (c / "charts").is_dir()], ids=str)
def test_the_library_chart_is_a_versioned_dependency(chart: Path) -> None:
    dependencies = helm_python.dependency_list(str(chart))
    (library,) = [d for d in dependencies if d["name"] == LIBRARY_CHART]
    assert library["status"] in {"ok", "unpacked"}, library
    assert library["version"] != "*", "name the library versions this chart works with"


def test_a_library_version_outside_the_constraint_is_reported(tmp_path: Path) -> None:
    copy = tmp_path / "auth"
    shutil.copytree(CHARTS / "auth", copy, symlinks=False)
    text = (copy / "Chart.yaml").read_text()
    (copy / "Chart.yaml").write_text(re.sub(r'version: "~[^"]+"', 'version: "~9.0.0"', text))
    (library,) = helm_python.dependency_list(str(copy))
    assert library["status"] == "wrong version"


def deployed_images(objects: Iterable[dict[str, Any]]) -> set[str]:
    """Every image a rendered chart runs: its pods' containers and a CloudNativePG Cluster's
    operand (the operator makes those pods, so no pod spec names it)."""
    images = {
        container["image"]
        for obj in objects
        for spec in pod_specs(obj)
        for container in containers(spec)
    }
    return images | {obj["spec"]["imageName"] for obj in objects if obj["kind"] == "Cluster"}


def unpinned(images: set[str]) -> list[str]:
    return sorted(image for image in images if not DIGEST.search(image))


def postgres_on_cloudnativepg(environment: str, **image: str) -> list[dict[str, Any]]:
    values = load_values("postgres", environment)
    values["engine"] = "cloudnativepg"
    cloudnativepg = values.setdefault("cloudnativepg", {})
    cloudnativepg["image"] = {**cloudnativepg.get("image", chart_default_image()), **image}
    return render("postgres", values, namespace_for(environment))


def chart_default_image() -> dict[str, str]:
    values = yaml.safe_load((CHARTS / "postgres" / "values.yaml").read_text())
    return dict(values["cloudnativepg"]["image"])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", ["postgres", "postgres-cloudnativepg", "redis"])
def test_data_store_images_are_pinned_by_digest(chart: str, environment: str) -> None:
    if chart == "postgres-cloudnativepg":
        objects: Iterable[dict[str, Any]] = postgres_on_cloudnativepg(environment)
    else:
        objects = render_environment(chart, environment).objects
    images = deployed_images(objects)
    assert images
    assert not unpinned(images), f"{chart}/{environment}: not pinned by digest"


def test_the_pin_check_sees_a_tag_only_operand_image() -> None:
    images = deployed_images(postgres_on_cloudnativepg("production", digest=""))
    assert unpinned(images) == [f"ghcr.io/cloudnative-pg/postgresql:{chart_default_image()['tag']}"]
