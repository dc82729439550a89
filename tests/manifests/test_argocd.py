"""The Argo CD layout, rendered the way Argo CD renders it: the root app, the environment chart
(argocd/environments) behind staging, production and every preview, and the Applications it
makes, each rendered down to the chart objects. Checks one repository URL, paths and value files
that exist, sync order, projects that confine every Application, production's pinned revision and
its protection against deletion, and previews that converge on their own without colliding."""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
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
    kubernetes_version,
    pod_specs,
    problems_of,
    render_at,
    require_full_history,
)
from ci.core.catalog import load_catalog

SOURCE = yaml.safe_load((ARGOCD / "source.yaml").read_text())
REPO_URL = SOURCE["repoURL"]
MAIN = SOURCE["targetRevision"]
ENV_CHART = ARGOCD / "environments"
ENVIRONMENTS = ("staging", "production")
IN_CLUSTER = "https://kubernetes.default.svc"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@functools.cache
def manifests() -> list[tuple[Path, Manifest]]:
    """What git holds for Argo CD: root.yaml and everything the root app tracks."""
    paths = [ARGOCD / "root.yaml", *sorted((ARGOCD / "apps").rglob("*.yaml"))]
    return [(path, doc) for path in paths for doc in load_documents(path)]


def of_kind(kind: str) -> list[Manifest]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def applications() -> dict[str, Manifest]:
    """The Applications written in git: root and the environments' parents."""
    return {app["metadata"]["name"]: app for app in of_kind("Application")}


def projects() -> dict[str, Manifest]:
    return {p["metadata"]["name"]: p for p in of_kind("AppProject")}


def annotations_of(obj: Manifest) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def sync_options(obj: Manifest) -> set[str]:
    value = annotations_of(obj).get("argocd.argoproj.io/sync-options", "")
    return {option.strip() for option in value.split(",") if option.strip()}


# --- rendering an Application's source the way Argo CD's repo server does ---


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of one values layer over another: maps merge, the rest is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def helm_values(app: Manifest) -> dict[str, Any]:
    """valueFiles in order, then `values`, then parameters (as `--set` / `--set-string`)."""
    source = app["spec"]["source"]
    helm = source.get("helm", {})
    values: dict[str, Any] = {}
    for name in helm.get("valueFiles", []):
        path = REPO / source["path"] / name
        values = merge(values, helm_python.values_from_yaml(path.read_text()))
    if helm.get("values"):
        values = merge(values, helm_python.values_from_yaml(helm["values"]))
    for parameter in helm.get("parameters", []):
        expression = f"{parameter['name']}={parameter['value']}"
        parse = helm_python.parse_set_literal if parameter.get("forceString") else None
        values = merge(values, (parse or helm_python.parse_set_string)(expression))
    return values


def render_source(app: Manifest) -> list[Manifest]:
    source = app["spec"]["source"]
    return render_at(
        REPO / source["path"],
        helm_values(app),
        app["spec"]["destination"]["namespace"],
        source["helm"]["releaseName"],
    )


@functools.cache
def environment_applications(environment: str) -> dict[str, Manifest]:
    """The Applications the `staging` / `production` parent renders."""
    return {a["metadata"]["name"]: a for a in render_source(applications()[environment])}


def all_applications() -> Iterator[Manifest]:
    yield from applications().values()
    for environment in ENVIRONMENTS:
        yield from environment_applications(environment).values()


# --- the structure ---


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
    everything = [doc for _, doc in manifests()] + list(all_applications())
    urls = [url for doc in everything for url in repo_urls(doc)]
    assert len(urls) > 2 * len(DEPLOYABLE_CHARTS)
    assert set(urls) == {REPO_URL}
    env_defaults = yaml.safe_load((ENV_CHART / "values.yaml").read_text())
    assert env_defaults["repoURL"] == REPO_URL


def test_repo_url_check_sees_a_stray_url() -> None:
    app = copy.deepcopy(environment_applications("staging")["staging-auth"])
    app["spec"]["source"]["repoURL"] = "https://github.com/someone-else/fork.git"
    assert set(repo_urls(app)) != {REPO_URL}


def test_what_git_holds_is_read_at_main() -> None:
    # Except production's parent, which reads at the pin (test_the_production_parent_reads_...).
    for app in applications().values():
        if app["metadata"]["name"] != "production":
            assert app["spec"]["source"]["targetRevision"] == MAIN, app["metadata"]["name"]
    template = applicationset()["spec"]["template"]["spec"]["source"]
    assert template["targetRevision"] == MAIN
    assert {
        a["spec"]["source"]["targetRevision"] for a in environment_applications("staging").values()
    } == {MAIN}


def test_every_source_path_and_value_file_exists() -> None:
    for app in all_applications():
        source = app["spec"]["source"]
        path = REPO / source["path"]
        assert path.is_dir(), f"{app['metadata']['name']}: {source['path']} does not exist"
        for value_file in source.get("helm", {}).get("valueFiles", []):
            assert (path / value_file).is_file(), f"{source['path']}/{value_file} missing"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_one_application_per_chart_and_environment(environment: str) -> None:
    apps = environment_applications(environment)
    assert len(apps) == len(DEPLOYABLE_CHARTS)
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
        assert app["spec"]["project"] == "chat-platform"
        assert app["spec"]["syncPolicy"]["retry"]["limit"] > 0


def test_adding_a_component_is_one_entry() -> None:
    values = yaml.safe_load((ENV_CHART / "values.yaml").read_text())
    values = merge(values, yaml.safe_load((ENV_CHART / "values-staging.yaml").read_text()))
    values["components"].append({"name": "search", "wave": 0, "public": True})
    apps = render_at(ENV_CHART, values, "argocd", "staging")
    assert "staging-search" in {a["metadata"]["name"] for a in apps}


def test_staging_follows_main_with_prune_and_self_heal() -> None:
    for app in environment_applications("staging").values():
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert FINALIZER in app["metadata"]["finalizers"]
    assert applications()["staging"]["spec"]["syncPolicy"]["automated"]["prune"] is True


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_sync_waves_start_data_stores_and_auth_first(environment: str) -> None:
    apps = environment_applications(environment)

    def wave(chart: str) -> int:
        return int(annotations_of(apps[f"{environment}-{chart}"])["argocd.argoproj.io/sync-wave"])

    assert wave("platform") < wave("postgres") == wave("redis") < wave("auth") < wave("backend")
    for chart in APP_CHARTS:
        assert wave(chart) >= wave("auth")


def test_the_waves_have_a_parent_that_syncs_them() -> None:
    """Sync waves order only the resources of one sync: the components must be rendered by a
    parent Application (never generated straight by an ApplicationSet, whose waves do nothing
    without progressive syncs)."""
    for environment in ENVIRONMENTS:
        parent = applications()[environment]
        assert parent["spec"]["source"]["path"] == "argocd/environments"
        assert parent["spec"]["syncPolicy"]["automated"]["selfHeal"] is True
    template = applicationset()["spec"]["template"]["spec"]
    assert template["source"]["path"] == "argocd/environments"
    values = yaml.safe_load((ARGOCD / "install" / "values.yaml").read_text())
    assert "resource.customizations.health.argoproj.io_Application" in values["configs"]["cm"]


# --- production: pinned, and safe from deletion ---


def production_values() -> dict[str, Any]:
    return dict(yaml.safe_load((ENV_CHART / "values-production.yaml").read_text()))


def test_production_reads_the_charts_at_a_pinned_commit() -> None:
    revision = production_values()["revision"]
    assert COMMIT.match(revision), "production must pin a commit, not follow a branch"
    for app in environment_applications("production").values():
        assert app["spec"]["source"]["targetRevision"] == revision


def test_the_production_parent_reads_the_environment_chart_at_the_pin() -> None:
    """Else a template change in argocd/environments reaches production without the pin."""
    revision = production_values()["revision"]
    source = applications()["production"]["spec"]["source"]
    assert source["targetRevision"] == revision
    # At the pinned commit values-production.yaml names the pin before it: the parameter wins.
    assert helm_values(applications()["production"])["revision"] == revision
    assert {"name": "revision", "value": revision} in source["helm"]["parameters"]


def test_the_pinned_commit_is_in_mains_history() -> None:
    require_full_history()
    revision = production_values()["revision"]
    ancestor = subprocess.run(
        ["git", "-C", str(REPO), "merge-base", "--is-ancestor", revision, "HEAD"], check=False
    )
    assert ancestor.returncode == 0, f"production's revision {revision} is not in HEAD's history"


def test_production_rejects_a_branch_as_its_revision() -> None:
    values = merge(yaml.safe_load((ENV_CHART / "values.yaml").read_text()), production_values())
    values["revision"] = "main"
    with pytest.raises(helm_python.HelmValuesError, match="revision"):
        render_at(ENV_CHART, values, "argocd", "production")


def test_production_applies_automatically_but_never_prunes_or_cascades() -> None:
    for app in environment_applications("production").values():
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": False, "selfHeal": True}
        assert {"Prune=false", "Delete=false"} <= sync_options(app)
        assert FINALIZER not in app["metadata"].get("finalizers", [])
    parent = applications()["production"]
    assert {"Prune=false", "Delete=false"} <= sync_options(parent)
    assert FINALIZER not in parent["metadata"].get("finalizers", [])
    readme = (ARGOCD / "README.md").read_text()
    assert "Prune=false" in readme
    assert "Delete=false" in readme


class Cluster:
    """What Argo CD does to live objects when git loses an object or an Application is deleted.

    Each Application owns the objects its source renders. A sync with automated prune deletes an
    owned object that left git unless it says Prune=false. Deleting an Application with the
    resources finalizer deletes what it owns, except objects that say Delete=false; deleting an
    Application without it leaves them. Deleted Applications cascade the same way, recursively.
    """

    def __init__(self, root: Manifest) -> None:
        self.live: dict[str, Manifest] = {}
        self.owned: dict[str, list[str]] = {}
        self.add(root)

    @staticmethod
    def key(obj: Manifest) -> str:
        metadata = obj["metadata"]
        return f"{obj['kind']}/{metadata.get('namespace', '')}/{metadata['name']}"

    def add(self, app: Manifest, desired: list[Manifest] | None = None) -> None:
        self.live[self.key(app)] = app
        children = desired if desired is not None else self.desired(app)
        namespace = app["spec"]["destination"]["namespace"]
        keys = []
        for obj in children:
            obj = copy.deepcopy(obj)
            obj["metadata"].setdefault("namespace", namespace)
            if obj["kind"] == "Application":
                self.add(obj)
            else:
                self.live[self.key(obj)] = obj
            keys.append(self.key(obj))
        self.owned[self.key(app)] = keys

    @staticmethod
    def desired(app: Manifest) -> list[Manifest]:
        if app["metadata"]["name"] == "root":
            return [doc for _, doc in manifests() if doc["metadata"]["name"] != "root"]
        if app["kind"] == "ApplicationSet":
            return []
        return render_source(app)

    def sync(self, app_key: str, desired: list[Manifest]) -> None:
        """Sync an Application against a changed git: prune what left, per its policy."""
        app = self.live[app_key]
        namespace = app["spec"]["destination"]["namespace"]
        wanted = set()
        for obj in desired:
            obj = copy.deepcopy(obj)
            obj["metadata"].setdefault("namespace", namespace)
            wanted.add(self.key(obj))
        prune = app["spec"].get("syncPolicy", {}).get("automated", {}).get("prune", False)
        for key in self.owned[app_key]:
            gone = key not in wanted and key in self.live
            if gone and prune and "Prune=false" not in sync_options(self.live[key]):
                self.delete(key)

    def delete(self, key: str) -> None:
        obj = self.live.pop(key)
        if obj["kind"] == "Application" and FINALIZER in obj["metadata"].get("finalizers", []):
            for child in self.owned.get(key, []):
                if child in self.live and "Delete=false" not in sync_options(self.live[child]):
                    self.delete(child)

    def workloads(self, namespace: str) -> set[str]:
        kinds = {"Deployment", "StatefulSet", "PersistentVolumeClaim", "Service", "Namespace"}
        return {
            key
            for key, obj in self.live.items()
            if obj["kind"] in kinds
            and (
                obj["metadata"].get("namespace") == namespace
                or obj["metadata"]["name"] == namespace
            )
        }


@functools.cache
def cluster_snapshot() -> Cluster:
    return Cluster(applications()["root"])


def fresh_cluster() -> Cluster:
    return copy.deepcopy(cluster_snapshot())


def without_file(name: str) -> list[Manifest]:
    """What the root app tracks after argocd/apps/<name> was deleted (or renamed away)."""
    removed = ARGOCD / "apps" / name
    return [doc for path, doc in manifests() if path not in {removed, ARGOCD / "root.yaml"}]


def root_key() -> str:
    return Cluster.key(applications()["root"])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_model_runs_what_git_declares(environment: str) -> None:
    cluster = fresh_cluster()
    workloads = cluster.workloads(f"chat-{environment}")
    assert any(k.startswith("StatefulSet/") for k in workloads), workloads
    assert any(k.startswith("Deployment/") for k in workloads), workloads


def test_deleting_the_production_file_leaves_production_running() -> None:
    cluster = fresh_cluster()
    before = cluster.workloads("chat-production")
    cluster.sync(root_key(), without_file("production.yaml"))
    assert cluster.workloads("chat-production") == before


def test_deleting_the_staging_file_empties_staging() -> None:
    """The same model on staging, which does cascade: the protection above is what differs."""
    cluster = fresh_cluster()
    assert cluster.workloads("chat-staging")
    cluster.sync(root_key(), without_file("staging.yaml"))
    # Only the Namespace stays (charts/platform marks it Delete=false); everything in it is gone.
    assert cluster.workloads("chat-staging") == {"Namespace/chat-staging/chat-staging"}


def test_renaming_a_production_component_leaves_its_workloads() -> None:
    cluster = fresh_cluster()
    before = cluster.workloads("chat-production")
    values = merge(yaml.safe_load((ENV_CHART / "values.yaml").read_text()), production_values())
    for component in values["components"]:
        if component["name"] == "postgres":
            component["name"] = "database"  # what a rename in git looks like to Argo CD
    renamed = render_at(ENV_CHART, values, "argocd", "production")
    parent = Cluster.key(applications()["production"])
    cluster.sync(parent, [a for a in renamed if a["metadata"]["name"] != "production-database"])
    assert cluster.workloads("chat-production") == before


def test_deleting_the_root_app_leaves_production_running() -> None:
    cluster = fresh_cluster()
    before = cluster.workloads("chat-production")
    cluster.delete(root_key())
    assert cluster.workloads("chat-production") == before


# --- projects ---


def destination_allowed(project: Manifest, destination: Manifest) -> bool:
    return any(
        fnmatch.fnmatchcase(destination["namespace"], allowed["namespace"])
        and destination["server"] == allowed["server"]
        for allowed in project["spec"]["destinations"]
    )


def test_every_application_is_confined_by_its_project() -> None:
    known = projects()
    preview_apps = list(preview_applications(sample_preview()).values())
    for app in [*all_applications(), preview_parent(sample_preview()), *preview_apps]:
        name = app["metadata"]["name"]
        project = known[app["spec"]["project"]]
        assert app["spec"]["project"] != "default", name
        assert destination_allowed(project, app["spec"]["destination"]), name
        assert app["spec"]["source"]["repoURL"] in project["spec"]["sourceRepos"]


def test_projects_are_limited_to_this_repository_and_their_namespaces() -> None:
    known = projects()
    expected = {
        "chat-platform": {"chat-staging", "chat-production"},
        "chat-previews": {"preview-*"},
        "chat-preview-apps": {"argocd"},
        "chat-platform-gitops": {"argocd", "argocd-previews"},
        "chat-monitoring": {"monitoring"},
    }
    for name, namespaces in expected.items():
        spec = known[name]["spec"]
        assert spec["sourceRepos"] == [REPO_URL], name
        assert {d["namespace"] for d in spec["destinations"]} == namespaces, name
        assert {d["server"] for d in spec["destinations"]} == {IN_CLUSTER}, name
    for workloads in ("chat-platform", "chat-previews"):
        spec = known[workloads]["spec"]
        assert spec["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    for parents in ("chat-preview-apps", "chat-platform-gitops"):
        assert known[parents]["spec"]["clusterResourceWhitelist"] == []
    assert {
        r["kind"] for r in known["chat-preview-apps"]["spec"]["namespaceResourceWhitelist"]
    } == {"Application"}
    default = known["default"]["spec"]
    assert default["sourceRepos"] == []
    assert default["destinations"] == []


def kind_permitted(project: Manifest, obj: Manifest) -> bool:
    """Argo CD's project check of one object's group and kind."""
    spec = project["spec"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""

    def listed(entries: list[Manifest]) -> bool:
        return any(
            fnmatch.fnmatchcase(group, e["group"]) and fnmatch.fnmatchcase(obj["kind"], e["kind"])
            for e in entries
        )

    if obj["kind"] in CLUSTER_SCOPED:
        return listed(spec.get("clusterResourceWhitelist", []))
    if "namespaceResourceWhitelist" in spec and not listed(spec["namespaceResourceWhitelist"]):
        return False
    return not listed(spec.get("namespaceResourceBlacklist", []))


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}


def test_every_object_a_component_renders_is_permitted_by_its_project() -> None:
    """A kind the project does not permit fails the whole sync (and every later wave waits)."""
    known = projects()
    components = [
        *environment_applications("staging").values(),
        *environment_applications("production").values(),
        *preview_applications(sample_preview()).values(),
    ]
    for app in components:
        project = known[app["spec"]["project"]]
        refused = [o["kind"] for o in render_source(app) if not kind_permitted(project, o)]
        assert not refused, (
            f"{app['metadata']['name']}: {project['metadata']['name']} refuses {refused}"
        )


def test_the_monitoring_application_renders_valid_objects_its_project_permits() -> None:
    app = applications()["monitoring"]
    project = projects()[app["spec"]["project"]]
    objects = render_source(app)
    # Rules, dashboards and the datasource; the trace store (StatefulSet, Service, policy).
    assert {o["kind"] for o in objects} == {
        "PrometheusRule",
        "ConfigMap",
        "StatefulSet",
        "Service",
        "NetworkPolicy",
    }
    assert [o["kind"] for o in objects if not kind_permitted(project, o)] == []
    assert problems_of(objects, kubernetes_version()) == []
    assert project["spec"]["clusterResourceWhitelist"] == []


def test_the_kind_check_sees_a_refused_kind() -> None:
    project = projects()["chat-platform"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {}}
    assert not kind_permitted(project, role)
    assert kind_permitted(project, {"apiVersion": "v1", "kind": "Namespace", "metadata": {}})
    parents = projects()["chat-preview-apps"]
    assert not kind_permitted(parents, {"apiVersion": "v1", "kind": "Secret", "metadata": {}})


def test_project_check_rejects_a_foreign_namespace() -> None:
    previews = projects()["chat-previews"]
    assert not destination_allowed(previews, {"server": IN_CLUSTER, "namespace": "chat-production"})
    assert destination_allowed(previews, {"server": IN_CLUSTER, "namespace": "preview-x"})
    platform = projects()["chat-platform"]
    assert not destination_allowed(platform, {"server": IN_CLUSTER, "namespace": "preview-x"})


def test_root_app_of_apps_tracks_argocd_apps() -> None:
    root = applications()["root"]
    assert root["spec"]["project"] == "chat-platform-gitops"
    assert root["spec"]["source"]["path"] == "argocd/apps"
    assert root["spec"]["source"]["directory"]["recurse"] is True
    assert root["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    # The root app's own file is outside what it tracks, so it cannot prune itself.
    assert not (ARGOCD / "apps" / "root.yaml").exists()
    for project in projects().values():
        assert int(annotations_of(project)["argocd.argoproj.io/sync-wave"]) < 0


def test_a_stuck_sync_is_ended_so_that_retries_happen() -> None:
    """Argo CD's default sync timeout (0) lets a sync wait forever on a resource that never gets
    healthy; `retry` only runs after an attempt failed."""
    params = yaml.safe_load((ARGOCD / "install" / "values.yaml").read_text())["configs"]["params"]
    timeout = int(params.get("controller.sync.timeout.seconds", 0))
    assert 0 < timeout <= 1800
    for app in [*all_applications(), preview_parent(sample_preview())]:
        if app["metadata"]["name"] != "root":
            assert app["spec"]["syncPolicy"]["retry"]["limit"] > 0, app["metadata"]["name"]


def test_argocd_install_values_keep_repository_credentials_out_of_git() -> None:
    values = yaml.safe_load((ARGOCD / "install" / "values.yaml").read_text())
    assert values["configs"]["repositories"] == {}


# --- previews ---

PREVIEW_SCHEMA = json.loads((ARGOCD / "previews" / "schema.json").read_text())


def sample_preview(slug: str = "feature-login-form", **changes: Any) -> dict[str, Any]:
    preview: dict[str, Any] = {
        "branch": f"feature/{slug}",
        "slug": slug,
        "namespace": f"preview-{slug}",
        "host": f"{slug}.preview.chat.example.com",
        "revision": "1a2b3c4d" * 5,
        "expires": "2026-12-01T00:00:00Z",
        "images": {
            name: {"tag": f"{slug}-1a2b3c4", "digest": "sha256:" + "c" * 64} for name in APP_CHARTS
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
        ({"revision": "main..evil"}, "revision"),
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


def strings_of(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_of(item)


def replaced(node: Any, rendered: dict[str, str]) -> Any:
    if isinstance(node, str):
        return rendered[node]
    if isinstance(node, dict):
        return {key: replaced(value, rendered) for key, value in node.items()}
    if isinstance(node, list):
        return [replaced(item, rendered) for item in node]
    return node


def render_go_templates(texts: list[str], params: dict[str, Any]) -> dict[str, str]:
    """Render Go templates (goTemplate: true, Sprig functions, missingkey=error) with Helm's
    engine: the generator parameters become .Values, so `.images` reads `.Values.images`."""
    with tempfile.TemporaryDirectory() as workdir:
        chart = Path(workdir) / "gotemplate"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: gotemplate\nversion: 0.1.0\n")
        for index, text in enumerate(texts):
            as_helm = re.sub(r"(?<=[\s({])\.(?=[a-z])", ".Values.", text)
            (chart / "templates" / f"t{index}.txt").write_text(as_helm)
        with helm_python.Chart.load(chart) as loaded:
            files = loaded.render(params, name="template")
    return {text: files[f"gotemplate/templates/t{i}.txt"] for i, text in enumerate(texts)}


def preview_parent(preview: dict[str, Any]) -> Manifest:
    """The Application the ApplicationSet makes from one preview file: like the controller,
    every string field of the template is rendered on its own."""
    template = applicationset()["spec"]["template"]
    rendered = render_go_templates(sorted(set(strings_of(template))), preview)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        **replaced(template, rendered),
    }


def preview_applications(preview: dict[str, Any]) -> dict[str, Manifest]:
    """The components' Applications that the preview's parent renders."""
    return {a["metadata"]["name"]: a for a in render_source(preview_parent(preview))}


def test_previews_come_from_one_git_file_per_preview() -> None:
    spec = applicationset()["spec"]
    assert spec["goTemplate"] is True
    (generator,) = spec["generators"]
    assert generator["git"]["repoURL"] == REPO_URL
    assert generator["git"]["revision"] == MAIN
    assert generator["git"]["files"] == [{"path": "argocd/previews/*.yaml"}]
    assert spec["syncPolicy"]["applicationsSync"] == "sync"
    assert spec["syncPolicy"]["preserveResourcesOnDeletion"] is False


def test_a_preview_is_one_parent_with_one_application_per_component() -> None:
    preview = sample_preview()
    parent = preview_parent(preview)
    assert parent["metadata"]["name"] == f"preview-{preview['slug']}"
    assert parent["spec"]["project"] == "chat-preview-apps"
    assert FINALIZER in parent["metadata"]["finalizers"]
    apps = preview_applications(preview)
    assert sorted(apps) == sorted(f"preview-{preview['slug']}-{c}" for c in DEPLOYABLE_CHARTS)
    for app in apps.values():
        assert app["spec"]["project"] == "chat-previews"
        assert app["spec"]["destination"]["namespace"] == preview["namespace"]
        assert FINALIZER in app["metadata"]["finalizers"]
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        source = app["spec"]["source"]
        assert source["helm"]["valueFiles"] == ["values.yaml", "values-preview.yaml"]
        for value_file in source["helm"]["valueFiles"]:
            assert (REPO / source["path"] / value_file).is_file()


def test_a_preview_renders_the_branchs_charts() -> None:
    preview = sample_preview()
    for app in preview_applications(preview).values():
        assert app["spec"]["source"]["targetRevision"] == preview["revision"]
    # ... while the environment chart that decides projects and namespaces is main's.
    assert preview_parent(preview)["spec"]["source"]["targetRevision"] == MAIN


def test_a_preview_naming_another_namespace_is_refused_by_the_projects() -> None:
    """The schema stops such a file in CI; the projects refuse it in the cluster anyway."""
    hostile = sample_preview(namespace="chat-production")
    values = helm_values(preview_parent(hostile))
    with pytest.raises(helm_python.HelmValuesError, match="namespace"):
        render_at(ENV_CHART, values, "argocd", "preview")
    # Even rendered without the schema, each Application lands in chat-previews, which may not
    # deploy there.
    project = projects()["chat-previews"]
    assert not destination_allowed(project, {"server": IN_CLUSTER, "namespace": "chat-production"})
    assert values["project"] == "chat-previews"


def public_routes(objects: list[Manifest]) -> set[tuple[str, str]]:
    """(host, path) pairs a set of rendered objects claims at the edge: Ingress rules or
    Gateway API HTTPRoutes, whichever the charts render."""
    routes = set()
    for obj in objects:
        if obj["kind"] == "Ingress":
            for rule in obj["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    routes.add((rule.get("host", "*"), path["path"]))
        elif obj["kind"] == "HTTPRoute":
            for host in obj["spec"].get("hostnames", ["*"]):
                for rule in obj["spec"]["rules"]:
                    for match in rule.get("matches", [{}]):
                        routes.add((host, match.get("path", {}).get("value", "/")))
    return routes


def preview_objects(preview: dict[str, Any]) -> list[Manifest]:
    return [obj for app in preview_applications(preview).values() for obj in render_source(app)]


def test_two_previews_never_claim_the_same_host_and_path() -> None:
    """Every public service of a preview gets the preview's host, also the services the branch
    did not build (those it leaves out of `images`)."""
    one = sample_preview("one")
    two = sample_preview("two", images={"backend": {"tag": "two-1", "digest": ""}})
    routes_one, routes_two = (
        public_routes(preview_objects(one)),
        public_routes(preview_objects(two)),
    )
    assert len(routes_one) == len(routes_two) == len(APP_CHARTS)
    assert routes_one.isdisjoint(routes_two), routes_one & routes_two
    assert {host for host, _ in routes_two} == {two["host"]}


def test_previews_share_one_wildcard_certificate() -> None:
    """No preview asks for a certificate of its own: its routes attach to the Gateway listener
    whose wildcard certificate (DNS-01, k3s/README.md) covers every preview host."""
    gateway = next(
        doc
        for doc in yaml.safe_load_all((REPO / "k3s" / "gateway.yaml").read_text())
        if doc and doc["kind"] == "Gateway"
    )
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    preview = sample_preview()
    objects = preview_objects(preview)
    routes = [o for o in objects if o["kind"] == "HTTPRoute"]
    assert len(routes) == len(APP_CHARTS)
    for route in routes:
        (parent,) = route["spec"]["parentRefs"]
        listener = listeners[parent["sectionName"]]
        assert listener["hostname"].startswith("*.")
        assert fnmatch.fnmatchcase(preview["host"], listener["hostname"])
        assert len(listener["tls"]["certificateRefs"]) == 1
    for obj in objects:
        assert obj["kind"] != "Certificate", obj["metadata"]["name"]
        assert not any(k.startswith("cert-manager.io/") for k in annotations_of(obj))


def test_preview_images_and_hosts_reach_the_charts() -> None:
    preview = sample_preview(images={"backend": {"tag": "b-1", "digest": "sha256:" + "d" * 64}})
    apps = preview_applications(preview)
    backend = render_source(apps[f"preview-{preview['slug']}-backend"])
    (deployment,) = [o for o in backend if o["kind"] == "Deployment"]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith("@sha256:" + "d" * 64)
    for app in apps.values():
        for parameter in app["spec"]["source"]["helm"].get("parameters", []):
            assert parameter.get("forceString") is True, parameter  # "1.0" stays a string


def test_preview_objects_are_valid_for_the_pinned_kubernetes() -> None:
    assert problems_of(preview_objects(sample_preview()), kubernetes_version()) == []


def secret_references(objects: list[Manifest]) -> set[tuple[str, str | None]]:
    """(Secret, key) every pod needs to start; key None for a whole-Secret volume."""
    needed: set[tuple[str, str | None]] = set()
    for obj in objects:
        for spec in pod_specs(obj):
            for volume in spec.get("volumes", []):
                if "secret" in volume and not volume["secret"].get("optional"):
                    items = volume["secret"].get("items") or [{"key": None}]
                    needed |= {(volume["secret"]["secretName"], i["key"]) for i in items}
            for container in spec.get("initContainers", []) + spec.get("containers", []):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref and not ref.get("optional"):
                        needed.add((ref["name"], ref["key"]))
    return needed


def test_a_preview_brings_every_secret_its_pods_need() -> None:
    objects = preview_objects(sample_preview())
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    missing = {
        (name, key)
        for name, key in secret_references(objects)
        if name not in secrets or (key is not None and key not in secrets[name]["data"])
    }
    assert not missing, f"a preview would wait for ever on: {sorted(missing)}"
    # Generated once: later syncs keep the values (and the URLs agree with the passwords).
    apps = preview_applications(sample_preview())
    platform = apps["preview-feature-login-form-platform"]
    assert platform["spec"]["ignoreDifferences"] == [
        {"group": "", "kind": "Secret", "jsonPointers": ["/data"]}
    ]
    assert "RespectIgnoreDifferences=true" in platform["spec"]["syncPolicy"]["syncOptions"]


def test_the_secret_check_sees_a_missing_secret() -> None:
    objects = [o for o in preview_objects(sample_preview()) if o["kind"] != "Secret"]
    assert secret_references(objects)


def test_generated_database_urls_carry_the_passwords_postgres_sets() -> None:
    import base64

    def decoded(secret: Manifest) -> dict[str, str]:
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    objects = preview_objects(sample_preview())
    secrets = {o["metadata"]["name"]: decoded(o) for o in objects if o["kind"] == "Secret"}
    passwords = secrets["postgres-service-passwords"]
    # Every service whose service.yaml needs PostgreSQL has its own database and password.
    with_database = {s.name for s in load_catalog(REPO).services if "postgres" in s.needs}
    assert set(passwords) == with_database
    assert "media-storage" in with_database  # its catalog moved to PostgreSQL (issue 30.1)
    for service, password in passwords.items():
        database = service.replace("-", "_")
        assert secrets[f"{service}-database"]["url"] == (
            f"postgresql://{database}:{password}@postgres-rw:5432/{database}"  # CloudNativePG
        )
    redis_password = secrets["redis-auth"]["password"]
    assert secrets["backend-redis"]["url"] == f"redis://:{redis_password}@redis:6379/0"
    assert secrets["auth-signing-keys"]["preview.pem"].startswith("-----BEGIN PRIVATE KEY-----")
    clients = json.loads(secrets["auth-service-clients"]["clients"])
    assert clients == {"backend": secrets["backend-ai-client"]["secret"]}


def test_preview_files_written_by_the_pipeline_fit_the_applicationset() -> None:
    """The delivery core's preview writer and this ApplicationSet agree on the file format."""
    from datetime import UTC, datetime

    from ci.core.gitops import ImageRef
    from ci.core.preview import build_preview
    from ci.core.preview import render as render_preview

    images = {"backend": ImageRef(tag="feat-x-1a2b3c4", digest="sha256:" + "d" * 64)}
    branch = "feature/A-very-long-branch-name-that-keeps-going-and-going/with-slashes"
    preview = build_preview(branch, images, "preview.chat.example.com", datetime.now(UTC))
    written = yaml.safe_load(render_preview(preview))
    assert preview_problems(written) == []
    assert written["revision"] == branch
    previews = projects()["chat-previews"]
    for app in preview_applications(written).values():
        assert destination_allowed(previews, app["spec"]["destination"])
        assert len(app["metadata"]["name"]) <= 63, app["metadata"]["name"]
        assert app["spec"]["source"]["targetRevision"] == branch


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_generated_secrets_are_made_once_and_never_rotated_by_a_resync(environment: str) -> None:
    """Argo CD renders with `helm template` (lookup finds nothing), so every render has new random
    values: the platform Application must ignore Secret data and keep the live values at sync."""
    (platform,) = [
        a for name, a in environment_applications(environment).items() if name.endswith("-platform")
    ]
    assert "RespectIgnoreDifferences=true" in platform["spec"]["syncPolicy"]["syncOptions"]
    ignored = platform["spec"]["ignoreDifferences"]
    assert {"group": "", "kind": "Secret", "jsonPointers": ["/data"]} in ignored
