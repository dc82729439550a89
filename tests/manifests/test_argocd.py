"""The Argo CD layout: one repository URL, paths and value files that exist, the documented
sync policies, projects that confine every Application, and a preview ApplicationSet whose
Applications render valid charts."""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    ARGOCD,
    DEPLOYABLE_CHARTS,
    REPO,
    Manifest,
    ManifestInvalidError,
    kubernetes_version,
    load_values,
    render,
    validate_strictly,
)

SOURCE = yaml.safe_load((ARGOCD / "source.yaml").read_text())
REPO_URL = SOURCE["repoURL"]
ENVIRONMENTS = ("staging", "production")
IN_CLUSTER = "https://kubernetes.default.svc"
WAVE_ORDER = ["platform", "postgres", "redis", "auth", "backend"]


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@functools.cache
def manifests() -> list[tuple[Path, Manifest]]:
    paths = [ARGOCD / "root.yaml", *sorted((ARGOCD / "apps").rglob("*.yaml"))]
    return [(path, doc) for path in paths for doc in load_documents(path)]


def of_kind(kind: str) -> list[Manifest]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def applications() -> dict[str, Manifest]:
    return {app["metadata"]["name"]: app for app in of_kind("Application")}


def projects() -> dict[str, Manifest]:
    return {p["metadata"]["name"]: p for p in of_kind("AppProject")}


def repo_urls(node: Any) -> list[str]:
    """Every repoURL and sourceRepos entry anywhere in a manifest."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "repoURL":
                found.append(value)
            elif key == "sourceRepos":
                found.extend(value)
            else:
                found.extend(repo_urls(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(repo_urls(item))
    return found


def test_repository_url_is_defined_once_and_used_everywhere() -> None:
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+\.git", REPO_URL)
    urls = [url for _, doc in manifests() for url in repo_urls(doc)]
    assert len(urls) > 2 * len(DEPLOYABLE_CHARTS)
    assert set(urls) == {REPO_URL}
    revisions = {doc["spec"]["source"]["targetRevision"] for doc in of_kind("Application")}
    assert revisions == {SOURCE["targetRevision"]}


def test_repo_url_check_sees_a_stray_url() -> None:
    app = copy.deepcopy(applications()["staging-auth"])
    app["spec"]["source"]["repoURL"] = "https://github.com/someone-else/fork.git"
    assert set(repo_urls(app)) != {REPO_URL}


def test_every_source_path_and_value_file_exists() -> None:
    for name, app in applications().items():
        source = app["spec"]["source"]
        path = REPO / source["path"]
        assert path.is_dir(), f"{name}: {source['path']} does not exist"
        for value_file in source.get("helm", {}).get("valueFiles", []):
            assert (path / value_file).is_file(), f"{name}: {source['path']}/{value_file} missing"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_one_application_per_chart_and_environment(environment: str) -> None:
    apps = applications()
    for chart in DEPLOYABLE_CHARTS:
        app = apps[f"{environment}-{chart}"]
        source = app["spec"]["source"]
        assert source["path"] == f"charts/{chart}"
        assert source["helm"]["valueFiles"] == ["values.yaml", f"values-{environment}.yaml"]
        assert source["helm"]["releaseName"] == chart
        assert app["spec"]["destination"] == {
            "server": IN_CLUSTER,
            "namespace": f"chat-{environment}",
        }
        assert "resources-finalizer.argocd.argoproj.io" in app["metadata"]["finalizers"]
    env_apps = [
        a
        for a in apps.values()
        if a["metadata"].get("labels", {}).get("chat-platform/environment") == environment
    ]
    assert len(env_apps) == len(DEPLOYABLE_CHARTS)


def test_staging_syncs_automatically_with_prune_and_self_heal() -> None:
    for chart in DEPLOYABLE_CHARTS:
        automated = applications()[f"staging-{chart}"]["spec"]["syncPolicy"]["automated"]
        assert automated == {"prune": True, "selfHeal": True}, chart


def test_production_syncs_automatically_but_never_prunes_on_its_own() -> None:
    # argocd/README.md documents this choice.
    for chart in DEPLOYABLE_CHARTS:
        automated = applications()[f"production-{chart}"]["spec"]["syncPolicy"]["automated"]
        assert automated == {"prune": False, "selfHeal": True}, chart
    assert "prune: false" in (ARGOCD / "README.md").read_text()


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_sync_waves_put_data_stores_and_auth_first(environment: str) -> None:
    apps = applications()

    def wave(chart: str) -> int:
        annotations = apps[f"{environment}-{chart}"]["metadata"]["annotations"]
        return int(annotations["argocd.argoproj.io/sync-wave"])

    assert wave("platform") < wave("postgres") == wave("redis") < wave("auth") < wave("backend")
    for chart in APP_CHARTS:
        assert wave(chart) >= wave("auth")


def destination_allowed(project: Manifest, destination: Manifest) -> bool:
    return any(
        fnmatch.fnmatchcase(destination["namespace"], allowed["namespace"])
        and destination["server"] == allowed["server"]
        for allowed in project["spec"]["destinations"]
    )


def test_every_application_is_confined_by_its_project() -> None:
    known = projects()
    for name, app in applications().items():
        project = known[app["spec"]["project"]]
        assert app["spec"]["project"] != "default", name
        assert destination_allowed(project, app["spec"]["destination"]), name
        assert app["spec"]["source"]["repoURL"] in project["spec"]["sourceRepos"]


def test_projects_are_limited_to_this_repository_and_the_platform_namespaces() -> None:
    known = projects()
    platform = known["chat-platform"]["spec"]
    assert platform["sourceRepos"] == [REPO_URL]
    assert {d["namespace"] for d in platform["destinations"]} == {
        "chat-staging",
        "chat-production",
        "preview-*",
    }
    assert {d["server"] for d in platform["destinations"]} == {IN_CLUSTER}
    assert platform["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    gitops = known["chat-platform-gitops"]["spec"]
    assert gitops["destinations"] == [{"server": IN_CLUSTER, "namespace": "argocd"}]
    assert {r["kind"] for r in gitops["namespaceResourceWhitelist"]} == {
        "Application",
        "ApplicationSet",
        "AppProject",
    }
    default = known["default"]["spec"]
    assert default["sourceRepos"] == [] and default["destinations"] == []  # noqa: PT018


def test_project_check_rejects_a_foreign_namespace() -> None:
    project = projects()["chat-platform"]
    assert not destination_allowed(project, {"server": IN_CLUSTER, "namespace": "kube-system"})
    assert destination_allowed(project, {"server": IN_CLUSTER, "namespace": "preview-x"})


def test_root_app_of_apps_tracks_argocd_apps() -> None:
    root = applications()["root"]
    assert root["spec"]["project"] == "chat-platform-gitops"
    assert root["spec"]["source"]["path"] == "argocd/apps"
    assert root["spec"]["source"]["directory"]["recurse"] is True
    assert root["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    # The root app's own file is outside what it tracks, so it cannot prune itself.
    assert not (ARGOCD / "apps" / "root.yaml").exists()


# --- previews ---

PREVIEW_SCHEMA = json.loads((ARGOCD / "previews" / "schema.json").read_text())


def sample_preview(**changes: Any) -> dict[str, Any]:
    preview: dict[str, Any] = {
        "branch": "feature/Login Form",
        "slug": "feature-login-form",
        "namespace": "preview-feature-login-form",
        "host": "feature-login-form.preview.chat.example.com",
        "expires": "2026-12-01T00:00:00Z",
        "images": {
            name: {"tag": "feature-login-form-1a2b3c4", "digest": "sha256:" + "c" * 64}
            for name in APP_CHARTS
        },
    }
    preview.update(changes)
    return preview


def preview_problems(preview: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        PREVIEW_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(preview)]


def test_committed_preview_files_are_valid() -> None:
    # Usually none are committed by hand; the pipeline writes them (and this checks them then).
    for path in sorted((ARGOCD / "previews").glob("*.yaml")):
        assert preview_problems(yaml.safe_load(path.read_text())) == [], path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"namespace": "chat-production"}, "namespace"),
        ({"slug": "Feature_Login"}, "slug"),
        ({"images": {"auth": {"tag": "latest", "digest": ""}}}, "images"),
        ({"expires": "tomorrow"}, "expires"),
        ({"images": {}}, "images"),
        ({"images": {"search": {"tag": "1.0", "digest": ""}}}, "search"),
        ({"owner": "someone"}, "owner"),
    ],
)
def test_preview_schema_rejects_bad_files(changes: dict[str, Any], expected: str) -> None:
    assert preview_problems(sample_preview()) == []
    problems = preview_problems(sample_preview(**changes))
    assert problems
    assert expected in " ".join(problems)


def applicationset() -> Manifest:
    (appset,) = of_kind("ApplicationSet")
    return appset


def generated_applications(preview: dict[str, Any]) -> list[Manifest]:
    """The Applications the controller makes from one preview file: the template rendered with
    Go templating (through Helm's engine) for every element of the list generator."""
    spec = applicationset()["spec"]
    (matrix,) = spec["generators"]
    elements = matrix["matrix"]["generators"][1]["list"]["elements"]
    template = yaml.safe_dump(spec["template"])
    with tempfile.TemporaryDirectory() as workdir:
        return [
            yaml.safe_load(
                render_go_template(template, {**preview, **element}, Path(workdir) / str(index))
            )
            for index, element in enumerate(elements)
        ]


def test_previews_come_from_one_git_file_per_preview() -> None:
    spec = applicationset()["spec"]
    assert spec["goTemplate"] is True
    (matrix,) = spec["generators"]
    git, components = matrix["matrix"]["generators"]
    assert git["git"]["repoURL"] == REPO_URL
    assert git["git"]["files"] == [{"path": "argocd/previews/*.yaml"}]
    listed = [e["component"] for e in components["list"]["elements"]]
    assert sorted(listed) == sorted(DEPLOYABLE_CHARTS)
    assert spec["syncPolicy"]["applicationsSync"] == "sync"
    assert spec["syncPolicy"]["preserveResourcesOnDeletion"] is False


def test_preview_applications_are_confined_and_point_at_existing_files() -> None:
    project = projects()["chat-platform"]
    preview = sample_preview()
    apps = generated_applications(preview)
    assert len({app["metadata"]["name"] for app in apps}) == len(DEPLOYABLE_CHARTS)
    for app in apps:
        assert app["spec"]["project"] == "chat-platform"
        assert app["spec"]["destination"]["namespace"] == preview["namespace"]
        assert destination_allowed(project, app["spec"]["destination"])
        assert "resources-finalizer.argocd.argoproj.io" in app["metadata"]["finalizers"]
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        source = app["spec"]["source"]
        for value_file in source["helm"]["valueFiles"]:
            assert (REPO / source["path"] / value_file).is_file()


def test_preview_namespace_goes_with_the_preview() -> None:
    values = yaml.safe_load((REPO / "charts/platform/values-preview.yaml").read_text())
    assert values["namespace"] == {**values["namespace"], "create": True, "keepOnDelete": False}


def test_preview_parameters_exist_and_render_valid_charts() -> None:
    patch = applicationset()["spec"]["templatePatch"]
    parameters = re.findall(r"- name: ([\w.]+)", patch)
    assert parameters == ["image.tag", "image.digest", "httpRoute.host"]
    preview = sample_preview()
    for chart in APP_CHARTS:
        values = load_values(chart, "preview")
        image = preview["images"][chart]
        values["image"] = {**values["image"], **image}
        values["httpRoute"] = {**values["httpRoute"], "host": preview["host"]}
        objects = render(chart, values, preview["namespace"])
        for obj in objects:
            try:
                validate_strictly(obj, kubernetes_version())
            except ManifestInvalidError as error:
                pytest.fail(str(error))
        (route,) = [o for o in objects if o["kind"] == "HTTPRoute"]
        assert route["spec"]["hostnames"] == [preview["host"]]


def test_a_stuck_sync_is_ended_so_that_retries_happen() -> None:
    """Argo CD's default sync timeout (0) lets a sync wait forever on a resource that never gets
    healthy; `retry` only runs after an attempt failed."""
    params = yaml.safe_load((ARGOCD / "install" / "values.yaml").read_text())["configs"]["params"]
    timeout = int(params.get("controller.sync.timeout.seconds", 0))
    assert 0 < timeout <= 1800
    for app in applications().values():
        assert app["spec"]["syncPolicy"]["retry"]["limit"] > 0, app["metadata"]["name"]


def test_argocd_install_values_give_child_applications_a_health_check() -> None:
    values = yaml.safe_load((ARGOCD / "install" / "values.yaml").read_text())
    assert "resource.customizations.health.argoproj.io_Application" in values["configs"]["cm"]
    assert values["configs"]["repositories"] == {}


def test_preview_files_written_by_the_pipeline_fit_the_applicationset() -> None:
    """The delivery core's preview writer and this ApplicationSet agree on the file format."""
    from datetime import UTC, datetime

    from ci.core.gitops import ImageRef
    from ci.core.preview import build_preview
    from ci.core.preview import render as render_preview

    images = {"backend": ImageRef(tag="feat-x-1a2b3c4", digest="sha256:" + "d" * 64)}
    branch = "feature/A very long branch name that keeps going and going/with-slashes"
    preview = build_preview(branch, images, "preview.chat.example.com", datetime.now(UTC))
    written = yaml.safe_load(render_preview(preview))
    assert preview_problems(written) == []
    project = projects()["chat-platform"]
    for app in generated_applications(written):
        assert destination_allowed(project, app["spec"]["destination"])
        assert len(app["metadata"]["name"]) <= 63, app["metadata"]["name"]


def render_go_template(text: str, params: dict[str, Any], workdir: Path) -> str:
    """Render an ApplicationSet Go template (goTemplate: true, Sprig functions) with Helm's
    engine: the generator parameters become .Values, so `.images` reads `.Values.images`."""
    as_helm = re.sub(r"(?<=[\s({])\.(?=[a-z])", ".Values.", text)
    chart = workdir / "gotemplate"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: gotemplate\nversion: 0.1.0\n")
    (chart / "templates" / "patch.yaml").write_text(as_helm)
    with helm_python.Chart.load(chart) as loaded:
        (rendered,) = loaded.render(params, name="patch").values()
    return rendered


@pytest.mark.parametrize("component", DEPLOYABLE_CHARTS)
def test_template_patch_sets_images_and_host_of_services_only(
    component: str, tmp_path: Path
) -> None:
    preview = sample_preview()
    patch_text = applicationset()["spec"]["templatePatch"]
    patch = yaml.safe_load(
        render_go_template(patch_text, {**preview, "component": component}, tmp_path)
    )
    if component not in APP_CHARTS:
        assert patch is None
        return
    parameters = {p["name"]: p["value"] for p in patch["spec"]["source"]["helm"]["parameters"]}
    assert parameters == {
        "image.tag": preview["images"][component]["tag"],
        "image.digest": preview["images"][component]["digest"],
        "httpRoute.host": preview["host"],
    }


def test_template_patch_leaves_a_service_without_a_preview_image_alone(tmp_path: Path) -> None:
    preview = sample_preview(images={"backend": {"tag": "b-1", "digest": ""}})
    patch_text = applicationset()["spec"]["templatePatch"]
    ai = render_go_template(patch_text, {**preview, "component": "ai"}, tmp_path / "ai")
    backend = render_go_template(patch_text, {**preview, "component": "backend"}, tmp_path / "b")
    assert yaml.safe_load(ai) is None
    assert "b-1" in backend
