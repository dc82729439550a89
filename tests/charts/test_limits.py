"""Limits per environment on the one node: a ResourceQuota and a LimitRange in every namespace
that fit what the charts ask for, and PriorityClasses that keep production and the platform above
staging and previews."""

from __future__ import annotations

import inspect
import re
from decimal import Decimal

import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    DEPLOYABLE_CHARTS,
    ENVIRONMENTS,
    K3S,
    Manifest,
    Rendered,
    containers,
    kubernetes_version,
    load_values,
    namespace_for,
    pod_specs,
    problems_of,
    render,
    render_environment,
)
from ci.core.preview import write_preview

UNITS = {"m": Decimal("0.001"), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30)}
QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi)?$")
WORKLOAD_CHARTS = [chart for chart in DEPLOYABLE_CHARTS if chart != "platform"]
PEAK_KEYS = ("requests.cpu", "requests.memory", "limits.memory", "pods",
             "persistentvolumeclaims", "requests.storage")  # fmt: skip


def quantity(value: object) -> Decimal:
    match = QUANTITY.match(str(value))
    assert match, f"not a quantity this test knows: {value}"
    number, unit = match.groups()
    return Decimal(number) * UNITS.get(unit or "", Decimal(1))


def peak_pods(obj: Manifest, hpa_max: dict[str, int]) -> int:
    """Pods of one workload at its peak: the HPA's maximum or the replicas, plus the extra pod
    a rolling update starts (maxSurge 1); Jobs and CronJobs run one pod at a time."""
    if obj["kind"] == "Deployment":
        replicas = hpa_max.get(obj["metadata"]["name"], obj["spec"].get("replicas", 1))
        return int(replicas) + 1
    if obj["kind"] == "StatefulSet":
        return int(obj["spec"].get("replicas", 1))
    return 1


def rendered_for(chart: str, environment: str, postgres_engine: str | None) -> Rendered:
    """The chart as the environment renders it, postgres with another engine when asked."""
    if chart != "postgres" or postgres_engine is None:
        return render_environment(chart, environment)
    values = load_values(chart, environment)
    values["engine"] = postgres_engine
    objects = render(chart, values, namespace_for(environment))
    return Rendered(chart, environment, tuple(objects))


def add_cluster(total: dict[str, Decimal], cluster: Manifest) -> None:
    """A CloudNativePG Cluster's pods, which the operator makes: `instances` pods with the
    Cluster's resources (one container, postgres; its init container asks the same) plus one Job
    pod beside them (a replica's join, or the initdb import), and a claim of storage.size each."""
    spec = cluster["spec"]
    pods = spec["instances"] + 1
    resources = spec["resources"]
    total["pods"] += pods
    total["requests.cpu"] += pods * quantity(resources["requests"]["cpu"])
    total["requests.memory"] += pods * quantity(resources["requests"]["memory"])
    total["limits.memory"] += pods * quantity(resources["limits"]["memory"])
    total["persistentvolumeclaims"] += spec["instances"]
    total["requests.storage"] += spec["instances"] * quantity(spec["storage"]["size"])


def peak_usage(environment: str, postgres_engine: str | None = None) -> dict[str, Decimal]:
    """What every chart of the environment asks of the quota at its peak."""
    total = dict.fromkeys(("requests.cpu", "requests.memory", "limits.memory", "pods"), Decimal(0))
    total |= {"persistentvolumeclaims": Decimal(0), "requests.storage": Decimal(0)}
    for chart in WORKLOAD_CHARTS:
        rendered = rendered_for(chart, environment, postgres_engine)
        for cluster in rendered.of_kind("Cluster"):
            add_cluster(total, cluster)
        hpa_max = {
            h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
            for h in rendered.of_kind("HorizontalPodAutoscaler")
        }
        for obj in rendered.objects:
            for spec in pod_specs(obj):
                pods = peak_pods(obj, hpa_max)
                total["pods"] += pods
                for container in containers(spec):
                    resources = container["resources"]
                    total["requests.cpu"] += pods * quantity(resources["requests"]["cpu"])
                    total["requests.memory"] += pods * quantity(resources["requests"]["memory"])
                    total["limits.memory"] += pods * quantity(resources["limits"]["memory"])
            if obj["kind"] == "StatefulSet":
                for claim in obj["spec"].get("volumeClaimTemplates", []):
                    total["persistentvolumeclaims"] += obj["spec"].get("replicas", 1)
                    total["requests.storage"] += quantity(
                        claim["spec"]["resources"]["requests"]["storage"]
                    )
        for claim in rendered.of_kind("PersistentVolumeClaim"):
            total["persistentvolumeclaims"] += 1
            total["requests.storage"] += quantity(claim["spec"]["resources"]["requests"]["storage"])
    return total


def quota(environment: str) -> Manifest:
    (found,) = render_environment("platform", environment).of_kind("ResourceQuota")
    return found


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_namespace_has_a_quota_and_container_defaults(environment: str) -> None:
    rendered = render_environment("platform", environment)
    (limit_range,) = rendered.of_kind("LimitRange")
    assert problems_of([quota(environment), limit_range], kubernetes_version()) == []
    (container_limits,) = limit_range["spec"]["limits"]
    assert container_limits["type"] == "Container"
    # A quota on requests and limits refuses pods without them: the defaults must cover both.
    assert {"cpu", "memory"} <= set(container_limits["defaultRequest"])
    assert "memory" in container_limits["default"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_quota_holds_the_environment_at_its_peak(environment: str) -> None:
    hard = quota(environment)["spec"]["hard"]
    usage = peak_usage(environment)
    assert set(hard) == set(usage)
    for resource, used in usage.items():
        assert used <= quantity(hard[resource]), f"{environment}: {resource} {used} > {hard}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("engine", ["statefulset", "cloudnativepg"])
def test_quota_holds_the_environment_with_either_postgres_engine(
    environment: str, engine: str
) -> None:
    """Switching an environment's engine (charts/postgres README) must not need a new quota."""
    hard = quota(environment)["spec"]["hard"]
    for resource, used in peak_usage(environment, engine).items():
        assert used <= quantity(hard[resource]), f"{environment}/{engine}: {resource} {used}"


def test_a_clusters_instances_count_against_the_quota() -> None:
    one, three = (
        {"spec": {"instances": n, "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                                "limits": {"memory": "2Gi"}},
                  "storage": {"size": "10Gi"}}}
        for n in (1, 3)
    )  # fmt: skip
    totals = []
    for cluster in (one, three):
        total = dict.fromkeys(PEAK_KEYS, Decimal(0))
        add_cluster(total, cluster)
        totals.append(total)
    assert totals[1]["requests.cpu"] - totals[0]["requests.cpu"] == 2
    assert totals[1]["persistentvolumeclaims"] == 3
    assert totals[1]["requests.storage"] == 30 * 2**30


def test_quota_check_sees_an_environment_that_does_not_fit() -> None:
    usage = peak_usage("production")
    assert usage["requests.memory"] > quantity(quota("preview")["spec"]["hard"]["requests.memory"])


def test_previews_get_less_than_staging_and_production() -> None:
    preview = quota("preview")["spec"]["hard"]
    for environment in ("staging", "production"):
        other = quota(environment)["spec"]["hard"]
        for resource in ("requests.cpu", "requests.memory", "limits.memory"):
            assert quantity(preview[resource]) < quantity(other[resource]), (environment, resource)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_no_container_exceeds_the_limit_range(environment: str) -> None:
    (limit_range,) = render_environment("platform", environment).of_kind("LimitRange")
    ceiling = quantity(limit_range["spec"]["limits"][0]["max"]["memory"])
    for chart in WORKLOAD_CHARTS:
        for obj in render_environment(chart, environment).objects:
            for spec in pod_specs(obj):
                for container in containers(spec):
                    limit = quantity(container["resources"]["limits"]["memory"])
                    assert limit <= ceiling, f"{chart}/{environment}: {container['name']}"


# --- PriorityClasses ---


def priority_classes() -> dict[str, Manifest]:
    documents = yaml.safe_load_all((K3S / "cluster-policies.yaml").read_text())
    return {d["metadata"]["name"]: d for d in documents if d and d["kind"] == "PriorityClass"}


def test_priority_classes_order_platform_production_staging_previews() -> None:
    classes = priority_classes()
    assert problems_of(list(classes.values()), kubernetes_version()) == []
    values = [classes[name]["value"] for name in ("chat-platform", "chat-production")]
    values += [classes[name]["value"] for name in ("chat-staging", "chat-preview")]
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)
    assert classes["chat-preview"]["preemptionPolicy"] == "Never"
    assert not any(c.get("globalDefault") for c in classes.values())


@pytest.mark.parametrize("environment", ["staging", "production", "preview"])
def test_every_pod_of_an_environment_has_its_priority(environment: str) -> None:
    expected = f"chat-{environment}"
    assert expected in priority_classes()
    for chart in WORKLOAD_CHARTS:
        for obj in render_environment(chart, environment).objects:
            for spec in pod_specs(obj):
                assert spec.get("priorityClassName") == expected, f"{chart}: {obj['kind']}"


def test_platform_components_run_above_every_environment() -> None:
    ngf = yaml.safe_load((K3S / "nginx-gateway-fabric-values.yaml").read_text())
    cert_manager = yaml.safe_load((K3S / "cert-manager-values.yaml").read_text())
    argocd = yaml.safe_load((K3S.parent / "argocd" / "install" / "values.yaml").read_text())
    (patch,) = ngf["nginx"]["patches"]
    names = {
        patch["value"]["spec"]["template"]["spec"]["priorityClassName"],
        ngf["nginxGateway"]["priorityClassName"],
        cert_manager["global"]["priorityClassName"],
        argocd["global"]["priorityClassName"],
    }
    assert names == {"chat-platform"}
    assert "cluster-policies.yaml" in (K3S / "bootstrap.sh").read_text()


def test_app_charts_leave_dev_at_the_cluster_default() -> None:
    # The integration cluster installs no PriorityClasses; naming one there would fail the pods.
    for chart in APP_CHARTS:
        for obj in render_environment(chart, "dev").objects:
            for spec in pod_specs(obj):
                assert "priorityClassName" not in spec, chart


# --- the cap on concurrent previews, enforced by the API server ---


def cluster_policies() -> list[Manifest]:
    return [d for d in yaml.safe_load_all((K3S / "cluster-policies.yaml").read_text()) if d]


def test_previews_are_capped_by_a_quota_on_their_parent_applications() -> None:
    (quota_object,) = [o for o in cluster_policies() if o["kind"] == "ResourceQuota"]
    namespace = quota_object["metadata"]["namespace"]
    assert problems_of(cluster_policies(), kubernetes_version()) == []
    hard = quota_object["spec"]["hard"]
    # One parent Application per preview: the quota is the number of previews.
    pipeline_cap = inspect.signature(write_preview).parameters["max_previews"].default
    assert int(hard["count/applications.argoproj.io"]) == pipeline_cap

    argocd = K3S.parent / "argocd"
    (appset,) = yaml.safe_load_all((argocd / "apps" / "previews.yaml").read_text())
    assert appset["metadata"]["namespace"] == namespace
    # Argo CD puts generated Applications in the ApplicationSet's namespace; the template agrees.
    assert appset["spec"]["template"]["metadata"]["namespace"] == namespace
    params = yaml.safe_load((argocd / "install" / "values.yaml").read_text())["configs"]["params"]
    assert params["application.namespaces"] == namespace
    assert namespace in params["applicationsetcontroller.namespaces"].split(",")
    projects = {
        p["metadata"]["name"]: p
        for p in yaml.safe_load_all((argocd / "apps" / "projects.yaml").read_text())
    }
    project = projects[appset["spec"]["template"]["spec"]["project"]]
    assert namespace in project["spec"]["sourceNamespaces"]
