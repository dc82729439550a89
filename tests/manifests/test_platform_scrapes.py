"""Prometheus's scrapes of the platform components (k3s/platform-monitoring.yaml and the charts'
ServiceMonitor values): valid against the Prometheus Operator CRDs and the Kubernetes schemas,
pointed at the pods and ports the pinned upstream charts render, and NetworkPolicies that let
exactly Prometheus reach each metrics port while keeping the component's own traffic open."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chartkit import (
    K3S,
    REPO,
    Manifest,
    ingress_allowed,
    kubernetes_version,
    problems_of,
    selector_matches,
)

MONITORING = K3S / "platform-monitoring.yaml"
PROMETHEUS = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
# Another workload of the cluster, which must not reach a metrics port.
INTRUDER = ("production", {"app.kubernetes.io/name": "backend"})

# Pod labels and metrics ports as the pinned charts render them (nginx-gateway-fabric v2.6.7
# _helpers.tpl selectorLabels and the provisioner's data-plane labels, cert-manager v1.18.2
# deployments, argo-cd 8.5.10 selectorLabels), release names as in k3s/lib.sh.
TARGETS: dict[str, tuple[str, dict[str, str], int]] = {
    "ngf control plane": (
        "nginx-gateway",
        {"app.kubernetes.io/name": "nginx-gateway-fabric", "app.kubernetes.io/instance": "ngf"},
        9113,
    ),
    "ngf data plane": (
        "nginx-gateway",
        {"app.kubernetes.io/name": "chat-nginx", "gateway.networking.k8s.io/gateway-name": "chat"},
        9113,
    ),
    **{
        f"cert-manager {component}": (
            "cert-manager",
            {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/instance": "cert-manager",
                "app.kubernetes.io/component": component,
            },
            9402,
        )
        for name, component in [
            ("cert-manager", "controller"),
            ("cainjector", "cainjector"),
            ("webhook", "webhook"),
        ]
    },
    "argocd application controller": (
        "argocd",
        {
            "app.kubernetes.io/name": "argocd-application-controller",
            "app.kubernetes.io/instance": "argocd",
        },
        8082,
    ),
}


def objects() -> list[Manifest]:
    return [o for o in yaml.safe_load_all(MONITORING.read_text()) if o]


def policies_in(namespace: str) -> list[Manifest]:
    return [
        o
        for o in objects()
        if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == namespace
    ]


def test_every_object_is_valid_against_its_schema_or_crd() -> None:
    kinds = sorted({o["kind"] for o in objects()})
    assert kinds == ["NetworkPolicy", "PodMonitor"]
    assert problems_of(objects(), kubernetes_version()) == []


def test_the_crd_check_catches_a_broken_pod_monitor() -> None:
    (monitor, *_) = [o for o in objects() if o["kind"] == "PodMonitor"]
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "half a minute"
    assert problems_of([monitor], kubernetes_version()) != []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_exactly_prometheus_reaches_each_metrics_port(target: str) -> None:
    namespace, labels, port = TARGETS[target]
    policies = policies_in(namespace)
    assert ingress_allowed(policies, labels, port, *PROMETHEUS)
    assert not ingress_allowed(policies, labels, port, *INTRUDER)
    # Not even a pod of the component's own namespace.
    assert not ingress_allowed(policies, labels, port, "self", {"app": "curl"})


@pytest.mark.parametrize(
    ("target", "port", "source"),
    [
        # The data plane's agent connects to the control plane.
        ("ngf control plane", 8443, ("self", TARGETS["ngf data plane"][1])),
        # The edge: clients from anywhere reach the Gateway's listeners.
        ("ngf data plane", 80, ("elsewhere", {})),
        ("ngf data plane", 443, ("elsewhere", {})),
        # The API server calls the admission webhook.
        ("cert-manager webhook", 10250, ("elsewhere", {})),
    ],
)
def test_the_components_own_traffic_stays_open(
    target: str, port: int, source: tuple[str, dict[str, str]]
) -> None:
    namespace, labels, _ = TARGETS[target]
    assert ingress_allowed(policies_in(namespace), labels, port, *source)


def test_the_pod_monitors_select_the_ngf_pods_by_their_metrics_port() -> None:
    monitors = {o["metadata"]["name"]: o for o in objects() if o["kind"] == "PodMonitor"}
    for name, target in [
        ("ngf-control-plane", "ngf control plane"),
        ("ngf-data-plane", "ngf data plane"),
    ]:
        spec = monitors[name]["spec"]
        assert selector_matches(spec["selector"], TARGETS[target][1]), name
        # Both containers name their metrics port "metrics" (deployment.yaml, provisioner).
        assert [e["port"] for e in spec["podMetricsEndpoints"]] == ["metrics"]
    control = monitors["ngf-control-plane"]["spec"]["selector"]
    assert not selector_matches(control, TARGETS["ngf data plane"][1])


def values(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / path).read_text())
    return loaded


def test_argo_cd_and_cert_manager_charts_render_their_service_monitors() -> None:
    controller = values("argocd/install/values.yaml")["controller"]["metrics"]
    assert controller["enabled"] is True
    assert controller["serviceMonitor"]["enabled"] is True
    prometheus = values("k3s/cert-manager-values.yaml")["prometheus"]
    assert prometheus["enabled"] is True
    assert prometheus["servicemonitor"]["enabled"] is True
    # The charts' own policies would let any pod scrape: ours do the job.
    assert not values("argocd/install/values.yaml").get("global", {}).get("networkPolicy")
