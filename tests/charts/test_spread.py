"""Production survives the loss or drain of a node for every stateless service: two or more
pods of each process, spread over nodes by hostname (preferred, so one node still schedules them
all), and a PodDisruptionBudget per process that lets a drain take one pod at a time."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
from chartkit import (
    APP_CHARTS,
    Manifest,
    kubernetes_version,
    load_values,
    namespace_for,
    problems_of,
    render,
    render_environment,
    selector_matches,
)

# media-storage keeps its files on a ReadWriteOnce volume: one pod until it moves to S3.
STATELESS = [chart for chart in APP_CHARTS if chart != "media-storage"]


def replicas_at_least(deployment: Manifest, hpas: list[Manifest]) -> int:
    """The fewest pods a Deployment runs: the HPA's minimum when one owns it."""
    for hpa in hpas:
        if hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]:
            return int(hpa["spec"]["minReplicas"])
    return int(deployment["spec"]["replicas"])


def budgets_of(deployment: Manifest, budgets: list[Manifest]) -> list[Manifest]:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return [b for b in budgets if selector_matches(b["spec"]["selector"], labels)]


def disruptions_allowed(budget: Manifest, healthy: int) -> int:
    """How many of `healthy` pods a drain may evict at once under the budget."""
    spec = budget["spec"]
    if "maxUnavailable" in spec:
        return int(spec["maxUnavailable"])
    return healthy - int(spec["minAvailable"])


@pytest.mark.parametrize("chart", STATELESS)
def test_every_process_runs_two_or_more_pods_in_production(chart: str) -> None:
    rendered = render_environment(chart, "production")
    deployments = rendered.of_kind("Deployment")
    assert deployments
    hpas = rendered.of_kind("HorizontalPodAutoscaler")
    counts = {d["metadata"]["name"]: replicas_at_least(d, hpas) for d in deployments}
    assert all(count >= 2 for count in counts.values()), counts


@pytest.mark.parametrize("chart", STATELESS)
def test_a_drain_may_evict_one_pod_of_each_process_and_never_all(chart: str) -> None:
    rendered = render_environment(chart, "production")
    budgets = rendered.of_kind("PodDisruptionBudget")
    hpas = rendered.of_kind("HorizontalPodAutoscaler")
    for deployment in rendered.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        (budget,) = budgets_of(deployment, budgets)
        fewest = replicas_at_least(deployment, hpas)
        assert 1 <= disruptions_allowed(budget, fewest) < fewest, name


def spread_of(deployment: Manifest) -> Manifest:
    (constraint,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    spread: Manifest = constraint
    return spread


@pytest.mark.parametrize("chart", APP_CHARTS)
def test_each_process_spreads_over_nodes_and_still_schedules_on_one(chart: str) -> None:
    for deployment in render_environment(chart, "production").of_kind("Deployment"):
        spread = spread_of(deployment)
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
        assert spread["maxSkew"] == 1
        # Its own process only (web and a worker spread apart), and this revision's pods only
        # (a rolling update is not skewed by the pods it replaces).
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector_matches(spread["labelSelector"], labels)
        assert spread["labelSelector"] == deployment["spec"]["selector"]
        assert spread["matchLabelKeys"] == ["pod-template-hash"]


def production_with(chart: str, **changes: Any) -> list[Manifest]:
    values = load_values(chart, "production")
    values.update(changes)
    return render(chart, values, namespace_for("production"))


def test_the_spread_is_tunable_and_can_be_turned_off() -> None:
    tuned = production_with(
        "backend",
        topologySpread={"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "DoNotSchedule"},
    )  # fmt: skip
    (deployment,) = [o for o in tuned if o["kind"] == "Deployment"]
    spread = spread_of(deployment)
    assert (spread["maxSkew"], spread["topologyKey"], spread["whenUnsatisfiable"]) == (
        2,
        "topology.kubernetes.io/zone",
        "DoNotSchedule",
    )
    assert problems_of(tuned, kubernetes_version()) == []
    off = production_with("backend", topologySpread={"enabled": False})
    (deployment,) = [o for o in off if o["kind"] == "Deployment"]
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]


def test_a_worker_has_its_own_budget_and_count() -> None:
    objects = production_with("data-processor", workerReplicas={"consumer": 3})
    (worker,) = [o for o in objects if o["metadata"]["name"] == "data-processor-consumer"
                 and o["kind"] == "Deployment"]  # fmt: skip
    assert worker["spec"]["replicas"] == 3
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    (budget,) = budgets_of(worker, budgets)
    assert budget["metadata"]["name"] == "data-processor-consumer"
    assert problems_of(objects, kubernetes_version()) == []


def test_a_count_for_no_such_worker_is_an_error_naming_it() -> None:
    no_such_worker = r"workerReplicas\.consumr: no worker of that name \(workers: consumer\)"
    with pytest.raises(helm_python.HelmRenderError, match=no_such_worker):
        production_with("data-processor", workerReplicas={"consumr": 2})
