"""The cluster's trace store (charts/observability, Tempo's single binary) and the services'
wiring to it: rendered with real Helm and checked as the cluster would take it. The endpoint the
services get is the store's own Service and port, their NetworkPolicies let exactly that egress
out and the store's policy lets it in, staging and production trace while ci, dev and previews
export nothing, and the store meets the restricted Pod Security Standard."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    Manifest,
    ingress_allowed,
    pod_specs,
    render,
    render_environment,
    selector_matches,
)
from charts.test_policy import image_problem, restricted_violations

TRACED = [chart for chart in APP_CHARTS if chart != "frontend"]  # NGINX serves the SPA
OTLP = "OTEL_EXPORTER_OTLP_ENDPOINT"


def store() -> dict[str, Manifest]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o
        for o in render("observability", None, "monitoring")
        if o["metadata"]["name"] in {"tempo", "grafana-datasource-tempo"}
    }


def store_pod_labels() -> dict[str, str]:
    labels: dict[str, str] = store()["StatefulSet/tempo"]["spec"]["template"]["metadata"]["labels"]
    return labels


def service_port(name: str) -> int:
    ports = store()["Service/tempo"]["spec"]["ports"]
    (port,) = [p["port"] for p in ports if p["name"] == name]
    return int(port)


def endpoints(chart: str, environment: str) -> set[str | None]:
    """The OTLP endpoint of every container of the chart's long-running workloads."""
    found: set[str | None] = set()
    for obj in render_environment(chart, environment).objects:
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for spec in pod_specs(obj):
            for container in spec["containers"]:
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                found.add(env.get(OTLP))
    return found


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("chart", TRACED)
def test_staging_and_production_send_spans_to_the_stores_otlp_http_port(
    chart: str, environment: str
) -> None:
    (endpoint,) = endpoints(chart, environment)
    assert endpoint is not None, f"{chart} in {environment} exports no spans"
    url = urlsplit(endpoint)
    assert url.scheme == "http"
    assert url.hostname == "tempo.monitoring.svc"  # the Service, in the store's namespace
    assert url.port == service_port("otlp-http")


@pytest.mark.parametrize("environment", ["ci", "dev", "preview"])
@pytest.mark.parametrize("chart", TRACED)
def test_ci_dev_and_previews_export_nothing(chart: str, environment: str) -> None:
    assert endpoints(chart, environment) == {None}


def egress_allows(policy: Manifest, namespace: str, labels: dict[str, str], port: int) -> bool:
    for rule in policy["spec"].get("egress", []):
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port for p in ports):
            continue
        for peer in rule.get("to", []):
            if "ipBlock" in peer or "namespaceSelector" not in peer:
                continue
            names = {"kubernetes.io/metadata.name": namespace}
            if selector_matches(peer["namespaceSelector"], names) and selector_matches(
                peer.get("podSelector", {}), labels
            ):
                return True
    return False


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("chart", TRACED)
def test_the_spans_get_through_both_network_policies(chart: str, environment: str) -> None:
    rendered = render_environment(chart, environment)
    (policy,) = [
        o
        for o in rendered.objects
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == chart
    ]
    port = service_port("otlp-http")
    assert egress_allows(policy, "monitoring", store_pod_labels(), port)
    assert not egress_allows(policy, "monitoring", {"app.kubernetes.io/name": "grafana"}, port)
    tempo_policy = [store()["NetworkPolicy/tempo"]]
    namespace = f"chat-{environment}"
    assert ingress_allowed(tempo_policy, store_pod_labels(), 4318, namespace, {})


def test_the_stores_policy_admits_exactly_its_clients() -> None:
    policies = [store()["NetworkPolicy/tempo"]]
    labels = store_pod_labels()
    assert not ingress_allowed(policies, labels, 4318, "preview-pr-7", {})
    grafana = {"app.kubernetes.io/name": "grafana"}
    assert ingress_allowed(policies, labels, 3200, "self", grafana)
    assert not ingress_allowed(policies, labels, 3200, "self", {"app": "other"})
    assert not ingress_allowed(policies, labels, 3200, "chat-production", {})


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(store()["ConfigMap/tempo"]["data"]["tempo.yaml"])
    return loaded


def test_tempo_listens_where_the_service_and_probes_point() -> None:
    settings = config()
    otlp = settings["distributor"]["receivers"]["otlp"]["protocols"]
    assert list(otlp) == ["http"]
    # Tempo 2.7+ binds receivers to localhost unless an address is given.
    host, port = otlp["http"]["endpoint"].rsplit(":", 1)
    assert host == "0.0.0.0"  # noqa: S104 - the pod's address, reached through the Service
    (container,) = pod_specs(store()["StatefulSet/tempo"])[0]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["otlp-http"] == int(port) == service_port("otlp-http")
    assert ports["http"] == settings["server"]["http_listen_port"] == service_port("http")
    assert settings["compactor"]["compaction"]["block_retention"] == "72h"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/tempo", "/etc/tempo"} <= mounts
    for path in (
        settings["storage"]["trace"]["wal"]["path"],
        settings["storage"]["trace"]["local"]["path"],
    ):
        assert path.startswith("/var/tempo/"), path
    assert "-config.file=/etc/tempo/tempo.yaml" in container["args"]


def test_grafana_gets_a_tempo_datasource_on_the_query_port() -> None:
    datasource = store()["ConfigMap/grafana-datasource-tempo"]
    assert datasource["metadata"]["labels"]["grafana_datasource"] == "1"
    (source,) = yaml.safe_load(datasource["data"]["tempo.yaml"])["datasources"]
    assert source["type"] == "tempo"
    url = urlsplit(source["url"])
    assert (url.hostname, url.port) == ("tempo.monitoring.svc", service_port("http"))


def test_the_store_meets_the_restricted_standard_and_is_pinned_by_digest() -> None:
    statefulset = store()["StatefulSet/tempo"]
    (spec,) = pod_specs(statefulset)
    assert restricted_violations(statefulset, spec) == []
    (container,) = spec["containers"]
    assert image_problem(container["image"]) is None
    assert "@sha256:" in container["image"]
    assert container["resources"]["limits"]["memory"]
    assert spec["priorityClassName"] == "chat-platform"
