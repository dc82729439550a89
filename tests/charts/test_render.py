"""Every chart renders for every environment with real Helm, lints clean, and every object it
renders is valid for the Kubernetes version of the pinned K3s release."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import helm_python
import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    CHARTS,
    DEPLOYABLE_CHARTS,
    ENVIRONMENTS,
    LIBRARY_CHART,
    ManifestInvalidError,
    kubernetes_version,
    load_values,
    namespace_for,
    problems_of,
    render,
    render_environment,
    validate_strictly,
)

CHART_ENVS = [(chart, env) for chart in DEPLOYABLE_CHARTS for env in ENVIRONMENTS]
IDS = [f"{chart}-{env}" for chart, env in CHART_ENVS]


@pytest.mark.parametrize(("chart", "environment"), CHART_ENVS, ids=IDS)
def test_renders_objects_valid_for_pinned_kubernetes(chart: str, environment: str) -> None:
    rendered = render_environment(chart, environment)
    assert rendered.objects, f"{chart} rendered nothing for {environment}"
    version = kubernetes_version()
    problems = problems_of(rendered.objects, version)
    assert not problems, f"{chart}/{environment} against Kubernetes {version}:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize(("chart", "environment"), CHART_ENVS, ids=IDS)
def test_helm_lint_is_clean(chart: str, environment: str) -> None:
    report = helm_python.lint(
        CHARTS / chart,
        load_values(chart, environment),
        strict=True,
        namespace=namespace_for(environment),
        kube_version=f"v{kubernetes_version()}",
    )
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert not findings, report
    assert not report["errors"], report


def test_library_chart_lints_and_is_a_library() -> None:
    report = helm_python.lint(CHARTS / LIBRARY_CHART, strict=True)
    assert not [m for m in report["messages"] if m["severity"] >= 2], report
    with helm_python.Chart.load(CHARTS / LIBRARY_CHART) as chart:
        assert chart.metadata["type"] == "library"


def test_unknown_api_version_is_an_error_not_a_warning() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(ManifestInvalidError, match="Couldn't find schema for kind Widget"):
        validate_strictly(widget, kubernetes_version())


def test_gateway_api_objects_are_checked_against_their_crd_schema() -> None:
    route = copy.deepcopy(render_environment("auth", "staging").of_kind("HTTPRoute")[0])
    validate_strictly(route, kubernetes_version())
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = "http"
    with pytest.raises(ManifestInvalidError, match="port must be integer"):
        validate_strictly(route, kubernetes_version())


def test_an_unknown_custom_kind_is_an_error() -> None:
    route = copy.deepcopy(render_environment("auth", "staging").of_kind("HTTPRoute")[0])
    route["kind"] = "HTTPRoutez"
    with pytest.raises(ManifestInvalidError, match="no schema for kind HTTPRoutez"):
        validate_strictly(route, kubernetes_version())


def test_gateway_fabric_policy_rejects_an_unknown_field_and_a_bad_size() -> None:
    policy = copy.deepcopy(
        render_environment("backend", "staging").of_kind("ClientSettingsPolicy")[0]
    )
    validate_strictly(policy, kubernetes_version())
    policy["spec"]["body"]["maxSize"] = "12 MB"
    policy["spec"]["bodyy"] = {}
    with pytest.raises(ManifestInvalidError, match="maxSize") as error:
        validate_strictly(policy, kubernetes_version())
    assert "bodyy" in str(error.value)


def test_removed_api_version_is_rejected() -> None:
    # policy/v1beta1 PodDisruptionBudget was removed in Kubernetes 1.25.
    pdb = copy.deepcopy(render_environment("auth", "production").of_kind("PodDisruptionBudget")[0])
    pdb["apiVersion"] = "policy/v1beta1"
    with pytest.raises(ManifestInvalidError):
        validate_strictly(pdb, kubernetes_version())


def test_unknown_field_in_rendered_object_is_rejected() -> None:
    deployment = copy.deepcopy(render_environment("auth", "staging").of_kind("Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(ManifestInvalidError, match="imagePullPolicyy"):
        validate_strictly(deployment, kubernetes_version())


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_service_chart_renders_its_core_objects(environment: str) -> None:
    for chart in ("auth", "backend", "ai", "media-storage", "data-processor", "frontend"):
        kinds = {obj["kind"] for obj in render_environment(chart, environment).objects}
        expected = {"Deployment", "Service", "HTTPRoute", "ServiceAccount", "NetworkPolicy"}
        assert expected <= kinds, f"{chart}/{environment} lacks {expected - kinds}"


@pytest.mark.parametrize("number", [10485760, 0, -3, 2**40])
def test_a_whole_number_setting_reaches_the_pod_as_written(number: int) -> None:
    # Helm reads values-file numbers as float64: toString alone printed 1.048576e+07, which
    # media-storage's integer MEDIA_MAX_UPLOAD_BYTES refused at start (tests/images found it).
    values = load_values("media-storage", "staging")
    values["config"] = {**values.get("config", {}), "MEDIA_MAX_UPLOAD_BYTES": number}
    objects = render("media-storage", values, "chat-staging")
    configmap = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    assert configmap["data"]["MEDIA_MAX_UPLOAD_BYTES"] == str(number)
    jobs_env = [
        env["value"]
        for obj in objects
        if obj["kind"] == "Job"
        for c in obj["spec"]["template"]["spec"]["containers"]
        for env in c.get("env", [])
        if env["name"] == "MEDIA_MAX_UPLOAD_BYTES"
    ]
    assert all(value == str(number) for value in jobs_env), jobs_env


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "ab" * 32
    values = load_values("backend", "staging")
    values["image"] = {**values["image"], "tag": "1.2.3", "digest": digest}
    objects = render("backend", values, "chat-staging")
    images = {
        c["image"]
        for obj in objects
        if obj["kind"] in {"Deployment", "Job"}
        for c in obj["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"ghcr.io/example-org/chat-platform/backend@{digest}"}


def test_tag_is_used_without_digest() -> None:
    values = load_values("backend", "staging")
    values["image"] = {**values["image"], "tag": "1.2.3", "digest": ""}
    objects = render("backend", values, "chat-staging")
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/example-org/chat-platform/backend:1.2.3"


def test_replicas_unset_when_the_hpa_owns_them() -> None:
    rendered = render_environment("backend", "production")
    (hpa,) = rendered.of_kind("HorizontalPodAutoscaler")
    web = next(d for d in rendered.of_kind("Deployment") if d["metadata"]["name"] == "backend")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "backend"
    assert "replicas" not in web["spec"]
    staging_web = render_environment("backend", "staging").of_kind("Deployment")[0]
    assert staging_web["spec"]["replicas"] == 1
    assert not render_environment("backend", "staging").of_kind("HorizontalPodAutoscaler")


@pytest.mark.parametrize("chart", APP_CHARTS)
def test_every_environment_file_pins_its_image_in_one_top_level_map(chart: str) -> None:
    # The GitOps bump edits exactly image.tag and image.digest in these files.
    for environment in ENVIRONMENTS:
        values = yaml.safe_load((CHARTS / chart / f"values-{environment}.yaml").read_text())
        image = values["image"]
        assert set(image) == {"repository", "tag", "digest"}, f"{chart}/{environment}"
        assert image["repository"].endswith(f"/{chart}")
        assert isinstance(image["tag"], str)
        assert isinstance(image["digest"], str)


def test_lint_reports_a_broken_chart(tmp_path: Path) -> None:
    broken = tmp_path / "platform"
    shutil.copytree(CHARTS / "platform", broken)
    (broken / "templates" / "broken.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.missing }}\n"
    )
    report = helm_python.lint(broken, load_values("platform", "staging"), strict=True)
    assert [m for m in report["messages"] if m["severity"] >= 2] or report["errors"]
