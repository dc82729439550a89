"""NetworkPolicies and metrics of the postgres chart with engine: cloudnativepg. The policies are
evaluated: the rendered policies of a whole environment (the platform's default deny, every
service chart's, postgres's) asked whether one pod may open a connection to another on a port.
The pods carry the labels CloudNativePG 1.30.0 gives its instances and Jobs (pkg/specs/pods.go
buildInstance, jobs.go) and the labels of the services' rendered pod templates; ports and peers
are those CloudNativePG's docs list (security.md "Exposed Ports", networking.md,
instance_manager.md "Primary Isolation")."""

from __future__ import annotations

import copy
from typing import Any

import helm_python
import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    CHARTS,
    Manifest,
    Peer,
    connection_allowed,
    kubernetes_version,
    load_values,
    namespace_for,
    pod_specs,
    problems_of,
    render,
    render_environment,
    selector_matches,
)

CLUSTER = "postgres"
API_SERVER = Peer(address="10.0.0.5")  # a K3s server's address: the API after the Service's DNAT
S3_STORE = "203.0.113.7"
OTHER_HOST = "198.51.100.9"
BACKUP = {
    "enabled": True,
    "endpoint": "https://s3.example.test",
    "bucket": "chat-backups",
    "prefix": "production/postgres",
    "credentialsSecret": {"name": "postgres-backup-s3"},
    "egressCIDRs": [f"{S3_STORE}/32"],
}
OPERATOR = Peer("cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg",
                                "app.kubernetes.io/instance": "cnpg"})  # fmt: skip
BARMAN_PLUGIN = Peer("cnpg-system", {"app.kubernetes.io/name": "plugin-barman-cloud"})
PROMETHEUS = Peer("monitoring", {"app.kubernetes.io/name": "prometheus"})
GRAFANA = Peer("monitoring", {"app.kubernetes.io/name": "grafana"})
KUBE_DNS = Peer("kube-system", {"k8s-app": "kube-dns"})


def instance(serial: int, role: str) -> Peer:
    """An instance pod <cluster>-<serial> as the operator and instance manager label it."""
    return Peer(
        labels={
            "cnpg.io/cluster": CLUSTER,
            "cnpg.io/instanceName": f"{CLUSTER}-{serial}",
            "cnpg.io/podRole": "instance",
            "cnpg.io/instanceRole": role,
            "role": role,
            "app.kubernetes.io/name": "postgresql",
            "app.kubernetes.io/instance": CLUSTER,
            "app.kubernetes.io/version": "16",
            "app.kubernetes.io/component": "database",
            "app.kubernetes.io/managed-by": "cloudnative-pg",
        }
    )


PRIMARY, REPLICA = instance(1, "primary"), instance(2, "replica")
# The Job that clones the primary with pg_basebackup before a replica's first start.
JOIN_JOB = Peer(
    labels={
        "cnpg.io/cluster": CLUSTER,
        "cnpg.io/instanceName": f"{CLUSTER}-2",
        "cnpg.io/jobRole": "join",
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/instance": CLUSTER,
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/managed-by": "cloudnative-pg",
    }
)


def postgres_values(environment: str, **cloudnativepg: Any) -> dict[str, Any]:
    values = load_values("postgres", environment)
    values["engine"] = "cloudnativepg"
    values["cloudnativepg"] = {**values.get("cloudnativepg", {}), **cloudnativepg}
    return values


def environment_policies(environment: str, postgres: list[Manifest]) -> list[Manifest]:
    """Every NetworkPolicy of the environment's namespace, postgres's from `postgres`."""
    others = [
        obj
        for chart in (*APP_CHARTS, "platform")
        for obj in render_environment(chart, environment).of_kind("NetworkPolicy")
    ]
    return others + [o for o in postgres if o["kind"] == "NetworkPolicy"]


def service_pods(environment: str) -> dict[str, list[Peer]]:
    """Each service's pods (web, workers, migration Jobs) with their rendered labels."""
    return {
        chart: [
            Peer(labels=obj["spec"]["template"]["metadata"]["labels"])
            for obj in render_environment(chart, environment).objects
            if obj["kind"] in {"Deployment", "Job"} and pod_specs(obj)
        ]
        for chart in APP_CHARTS
    }


def databases(environment: str) -> list[str]:
    """The services with a database: the environment's list, else the chart's default."""
    defaults = yaml.safe_load((CHARTS / "postgres" / "values.yaml").read_text())["databases"]
    return list(
        {**defaults, **load_values("postgres", environment).get("databases", {})}["services"]
    )


@pytest.fixture(scope="module", params=["ci", "dev", "production"])
def world(request: pytest.FixtureRequest) -> tuple[str, list[Manifest], list[Manifest]]:
    """(environment, its policies with a backed-up Cluster, the Cluster's rendered objects)."""
    environment = str(request.param)
    objects = render("postgres", postgres_values(environment, backup=BACKUP),
                     namespace_for(environment))  # fmt: skip
    return environment, environment_policies(environment, objects), objects


def allowed(
    world: tuple[str, list[Manifest], list[Manifest]],
    source: Peer,
    destination: Peer,
    port: int,
    protocol: str = "TCP",
) -> bool:
    environment, policies, _ = world
    namespace = namespace_for(environment)
    return connection_allowed(policies, namespace, source, destination, port, protocol)


def test_the_policies_validate_against_the_kubernetes_schema(world: Any) -> None:
    _, _, objects = world
    assert [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert problems_of(objects, kubernetes_version()) == []


def test_services_with_a_database_reach_every_instance_and_the_others_do_not(world: Any) -> None:
    environment = world[0]
    pods = service_pods(environment)
    with_database = set(databases(environment))
    assert with_database
    assert set(APP_CHARTS) - with_database, "a service without a database to deny"
    for chart, chart_pods in pods.items():
        assert chart_pods, chart
        for pod in chart_pods:
            for target in (PRIMARY, REPLICA):
                verdict = allowed(world, pod, target, 5432)
                assert verdict is (chart in with_database), (chart, pod.labels, target.labels)
            assert not allowed(world, pod, PRIMARY, 8000), chart


def test_instances_replicate_and_check_each_other(world: Any) -> None:
    for source, target in ((REPLICA, PRIMARY), (PRIMARY, REPLICA), (JOIN_JOB, PRIMARY)):
        assert allowed(world, source, target, 5432)
    for source, target in ((REPLICA, PRIMARY), (PRIMARY, REPLICA)):
        assert allowed(world, source, target, 8000), "the primary isolation check"
    assert not allowed(world, REPLICA, PRIMARY, 9187)


def test_the_operator_reaches_status_and_postgres_and_nothing_else_of_its_namespace(
    world: Any,
) -> None:
    for port in (8000, 5432):
        assert allowed(world, OPERATOR, PRIMARY, port)
        assert allowed(world, OPERATOR, REPLICA, port)
        assert not allowed(world, BARMAN_PLUGIN, PRIMARY, port)
    assert not allowed(world, OPERATOR, PRIMARY, 9187)
    assert not allowed(world, Peer("chat-other", OPERATOR.labels), PRIMARY, 8000)


def test_instances_reach_dns_the_api_server_and_the_s3_store_only(world: Any) -> None:
    for source in (PRIMARY, REPLICA, JOIN_JOB):
        assert allowed(world, source, KUBE_DNS, 53, "UDP")
        assert allowed(world, source, API_SERVER, 6443)
        assert allowed(world, source, Peer(address=S3_STORE), 443), "WAL archiving"
        assert not allowed(world, source, Peer(address=S3_STORE), 80)
        assert not allowed(world, source, Peer(address=OTHER_HOST), 443)
        assert not allowed(world, source, API_SERVER, 22)
    for chart in ("auth", "redis"):
        assert not allowed(world, PRIMARY, Peer(labels={"app.kubernetes.io/name": chart}), 6379)


def test_no_s3_egress_without_backups() -> None:
    objects = render("postgres", postgres_values("production"), "chat-production")
    policies = environment_policies("production", objects)
    store = Peer(address=S3_STORE)
    assert not connection_allowed(policies, "chat-production", PRIMARY, store, 443)
    assert connection_allowed(policies, "chat-production", PRIMARY, API_SERVER, 6443)


def test_the_api_server_can_be_narrowed_to_its_addresses() -> None:
    values = postgres_values("production")
    values["networkPolicy"] = {
        **values.get("networkPolicy", {}),
        "apiServer": {"port": 6443, "cidrs": ["10.0.0.5/32"]},
    }
    policies = environment_policies("production", render("postgres", values, "chat-production"))
    elsewhere = Peer(address="10.0.0.6")
    assert connection_allowed(policies, "chat-production", PRIMARY, API_SERVER, 6443)
    assert not connection_allowed(policies, "chat-production", PRIMARY, elsewhere, 6443)


@pytest.mark.parametrize("metrics", [True, False])
def test_prometheus_scrapes_the_instances_when_metrics_are_on(metrics: bool) -> None:
    values = postgres_values("production")
    values["metrics"] = {**values.get("metrics", {}), "enabled": metrics}
    policies = environment_policies("production", render("postgres", values, "chat-production"))
    assert connection_allowed(policies, "chat-production", PROMETHEUS, PRIMARY, 9187) is metrics
    assert not connection_allowed(policies, "chat-production", GRAFANA, PRIMARY, 9187)
    assert not connection_allowed(policies, "chat-production", PROMETHEUS, PRIMARY, 5432)


def test_backups_without_the_stores_addresses_are_refused() -> None:
    store = copy.deepcopy(BACKUP)
    store["egressCIDRs"] = []
    with pytest.raises(helm_python.HelmError, match="egressCIDRs"):
        render("postgres", postgres_values("production", backup=store), "chat-production")


def test_the_statefulset_policies_stay_for_engine_statefulset() -> None:
    names = {
        p["metadata"]["name"]
        for p in render_environment("postgres", "production").of_kind("NetworkPolicy")
    }
    assert names == {"postgres", "postgres-jobs"}
    cnpg = render("postgres", postgres_values("production"), "chat-production")
    # production's nightly pg_dump runs with either engine (backup.yaml's own policies).
    assert {p["metadata"]["name"] for p in cnpg if p["kind"] == "NetworkPolicy"} == {
        "postgres-instances",
        "postgres-backup",
        "postgres-instances-from-backup",
    }


# The evaluator itself: each rule of NetworkPolicy it follows can make it say no.
POLICY: Manifest = {
    "spec": {
        "podSelector": {"matchLabels": {"app": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                     "ports": [{"protocol": "TCP", "port": 5432}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                    "ports": [{"protocol": "TCP", "port": 8000, "endPort": 8010}]}],
    }
}  # fmt: skip
DB, WEB = Peer(labels={"app": "db"}), Peer(labels={"app": "web"})


@pytest.mark.parametrize(
    ("source", "destination", "port", "protocol", "expected"),
    [
        (WEB, DB, 5432, "TCP", True),
        (WEB, DB, 5433, "TCP", False),
        (WEB, DB, 5432, "UDP", False),
        (Peer(labels={"app": "other"}), DB, 5432, "TCP", False),
        (Peer("elsewhere", {"app": "web"}), DB, 5432, "TCP", False),
        (DB, Peer(address="10.2.3.4"), 8005, "TCP", True),
        (DB, Peer(address="10.2.3.4"), 8011, "TCP", False),
        (DB, Peer(address="10.1.3.4"), 8005, "TCP", False),
        (DB, Peer(address="192.0.2.1"), 8005, "TCP", False),
        (DB, WEB, 8005, "TCP", False),  # ipBlocks do not select pods
        (WEB, Peer(address="192.0.2.1"), 443, "TCP", True),  # no policy selects web
    ],
)
def test_the_evaluator_follows_networkpolicy_rules(
    source: Peer, destination: Peer, port: int, protocol: str, expected: bool
) -> None:
    assert connection_allowed([POLICY], "ns", source, destination, port, protocol) is expected


# Metrics: the instances' own exporter, scraped through a PodMonitor.
def test_a_pod_monitor_scrapes_the_instances_own_exporter() -> None:
    objects = render("postgres", postgres_values("production"), "chat-production")
    assert problems_of(objects, kubernetes_version()) == []
    (monitor,) = [o for o in objects if o["kind"] == "PodMonitor"]
    spec = monitor["spec"]
    assert selector_matches(spec["selector"], dict(PRIMARY.labels))
    assert selector_matches(spec["selector"], dict(REPLICA.labels))
    assert not selector_matches(spec["selector"], dict(JOIN_JOB.labels))
    assert spec["namespaceSelector"] == {"matchNames": ["chat-production"]}
    assert spec["jobLabel"] == "cnpg.io/cluster"  # job="postgres", as the ServiceMonitor's
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert not [o for o in objects if o["kind"] == "ServiceMonitor"]
    # No exporter sidecar: this chart's only pods are the nightly backup's (backup.yaml).
    assert {o["metadata"]["name"] for o in objects if pod_specs(o)} == {
        "postgres-backup",
        "postgres-backups-claim",
    }


def test_no_pod_monitor_without_metrics_or_for_the_statefulset() -> None:
    values = postgres_values("production")
    values["metrics"] = {**values.get("metrics", {}), "enabled": False}
    objects = render("postgres", values, "chat-production")
    assert not [o for o in objects if o["kind"] in {"PodMonitor", "ServiceMonitor"}]
    statefulset = render_environment("postgres", "production")
    assert statefulset.of_kind("PodMonitor") == []
    assert len(statefulset.of_kind("ServiceMonitor")) == 1


def test_the_prometheus_operator_schema_refuses_a_bad_pod_monitor() -> None:
    objects = render("postgres", postgres_values("production"), "chat-production")
    (monitor,) = [o for o in objects if o["kind"] == "PodMonitor"]
    misspelt = copy.deepcopy(monitor)
    misspelt["spec"]["podMetricsEndpoints"][0]["scrapeTimeout"] = "ten seconds"
    problems = problems_of([misspelt], kubernetes_version())
    assert any("scrapeTimeout" in p for p in problems), problems
