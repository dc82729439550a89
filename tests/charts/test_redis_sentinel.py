"""charts/redis on Valkey: one server in dev, ci, previews and staging; a primary, replicas and a
Sentinel in every pod in production, with a PodDisruptionBudget and NetworkPolicies that let
the group talk to itself; the services' production values find it through Sentinel."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from chartkit import CHARTS, ENVIRONMENTS, Manifest, containers, load_values, render_environment

SENTINEL_CLIENTS = ("auth", "backend", "ai", "data-processor")


def statefulset(environment: str) -> Manifest:
    (found,) = render_environment("redis", environment).of_kind("StatefulSet")
    return found


def sentinel_values() -> dict[str, Any]:
    """charts/redis's sentinel values in production (defaults under values-production.yaml)."""
    defaults = yaml.safe_load((CHARTS / "redis" / "values.yaml").read_text())["sentinel"]
    return {**defaults, **load_values("redis", "production")["sentinel"]}


@pytest.mark.parametrize("environment", [e for e in ENVIRONMENTS if e != "production"])
def test_one_server_without_sentinel_outside_production(environment: str) -> None:
    rendered = render_environment("redis", environment)
    sts = statefulset(environment)
    assert sts["spec"]["replicas"] == 1
    names = [c["name"] for c in containers(sts["spec"]["template"]["spec"])]
    assert "sentinel" not in names
    assert not rendered.of_kind("PodDisruptionBudget")
    assert [s["metadata"]["name"] for s in rendered.of_kind("Service")] == ["redis"]
    script = containers(sts["spec"]["template"]["spec"])[0]["command"][-1]
    assert "replicaof" not in script
    assert "exec valkey-server /etc/redis/redis.conf" in script


def test_production_runs_a_primary_replicas_and_a_sentinel_in_every_pod() -> None:
    sentinel = sentinel_values()
    sts = statefulset("production")
    spec = sts["spec"]["template"]["spec"]
    assert sts["spec"]["replicas"] == sentinel["replicas"] == 3
    assert sts["spec"]["serviceName"] == "redis-headless"
    by_name = {c["name"]: c for c in containers(spec)}
    assert {"redis", "sentinel"} <= set(by_name)
    sentinel_script = by_name["sentinel"]["command"][-1]
    # A majority of three decides; the password comes from the mounted Secret, never an arg.
    assert re.search(r"^sentinel monitor chat \$primary 6379 2$", sentinel_script, re.M)
    assert 'requirepass "$password"' in sentinel_script
    for container in by_name.values():
        assert not any("REDISCLI_AUTH" in arg for arg in container.get("args", []))
    assert "replicaof %s 6379" in by_name["redis"]["command"][-1]
    ports = {p["name"]: p["containerPort"] for p in by_name["sentinel"]["ports"]}
    assert ports == {"sentinel": sentinel["port"]}


def test_production_keeps_a_majority_through_a_drain() -> None:
    rendered = render_environment("redis", "production")
    (budget,) = rendered.of_kind("PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    labels = statefulset("production")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_production_network_policy_lets_the_group_replicate_and_vote() -> None:
    (policy,) = render_environment("redis", "production").of_kind("NetworkPolicy")
    labels = statefulset("production")["spec"]["template"]["metadata"]["labels"]

    def ports_from_group(rules: list[Manifest], key: str) -> set[int]:
        found: set[int] = set()
        for rule in rules:
            for peer in rule.get(key, []):
                selector = peer.get("podSelector", {}).get("matchLabels")
                if (
                    selector
                    and selector.items() <= labels.items()
                    and "namespaceSelector" not in peer
                ):
                    found |= {p["port"] for p in rule["ports"]}
        return found

    assert ports_from_group(policy["spec"]["ingress"], "from") == {6379, 26379}
    assert ports_from_group(policy["spec"]["egress"], "to") == {6379, 26379}
    client_ports = {
        p["port"]
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        == "backend"
        for p in rule["ports"]
    }
    assert client_ports == {6379, 26379}


@pytest.mark.parametrize("service", SENTINEL_CLIENTS)
def test_services_find_the_primary_through_sentinel_in_production(service: str) -> None:
    sentinel = sentinel_values()
    (config,) = [
        c
        for c in render_environment(service, "production").of_kind("ConfigMap")
        if "LOG_LEVEL" in c.get("data", {})
    ]
    data = config["data"]
    assert data["REDIS_SENTINELS"] == f"redis:{sentinel['port']}"
    assert data["REDIS_SENTINEL_MASTER"] == sentinel["masterName"]
    (deployment,) = [
        d
        for d in render_environment(service, "production").of_kind("Deployment")
        if d["metadata"]["name"] == service
    ]
    env = {e["name"]: e for e in containers(deployment["spec"]["template"]["spec"])[0]["env"]}
    password = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    # Required: a Secret without the key stops the pod at start (and the service itself refuses
    # to start without it: REDIS_AUTH_REQUIRED, tests/localapp/test_sentinel_password.py).
    assert password == {"name": f"{service}-redis", "key": "password"}
    assert data["REDIS_AUTH_REQUIRED"] == "true"


@pytest.mark.parametrize("environment", [e for e in ENVIRONMENTS if e != "production"])
@pytest.mark.parametrize("service", SENTINEL_CLIENTS)
def test_services_use_the_single_server_elsewhere(service: str, environment: str) -> None:
    rendered = render_environment(service, environment)
    for config in rendered.of_kind("ConfigMap"):
        assert "REDIS_SENTINELS" not in config.get("data", {})
        assert "REDIS_AUTH_REQUIRED" not in config.get("data", {})
    for deployment in rendered.of_kind("Deployment"):
        env = {e["name"]: e for e in containers(deployment["spec"]["template"]["spec"])[0]["env"]}
        # The password travels in REDIS_URL here; the key may be missing from the Secret.
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_backend_waits_for_a_replica_it_has_in_production() -> None:
    (config,) = [
        c
        for c in render_environment("backend", "production").of_kind("ConfigMap")
        if "LOG_LEVEL" in c.get("data", {})
    ]
    wanted = int(config["data"]["OUTBOX_WAIT_REPLICAS"])
    assert 1 <= wanted <= sentinel_values()["replicas"] - 1
