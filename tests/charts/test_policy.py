"""Security and operability policy over everything the charts render, for every environment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    CHARTS,
    DEPLOYABLE_CHARTS,
    ENVIRONMENTS,
    REPO,
    Manifest,
    containers,
    load_values,
    namespace_for,
    pod_specs,
    render,
    render_environment,
    selector_matches,
)

CHART_ENVS = [(chart, env) for chart in DEPLOYABLE_CHARTS for env in ENVIRONMENTS]
IDS = [f"{chart}-{env}" for chart, env in CHART_ENVS]
# Charts that run containers (platform renders only namespace-level objects).
WORKLOAD_ENVS = [(chart, env) for chart, env in CHART_ENVS if chart != "platform"]
WORKLOAD_IDS = [f"{chart}-{env}" for chart, env in WORKLOAD_ENVS]
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
# Volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECRET_NAME = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|private[-_]?key|credential", re.IGNORECASE
)
# Keys whose value names a Secret (or a key in it) rather than holding one.
SECRET_REFERENCE_KEYS = {"secretName", "key", "name", "passwordsSecret"}
DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")
TAGGED = re.compile(r"^[^@]+:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def workloads(chart: str, environment: str) -> Iterator[tuple[Manifest, Manifest]]:
    for obj in render_environment(chart, environment).objects:
        for spec in pod_specs(obj):
            yield obj, spec


def restricted_violations(obj: Manifest, spec: Manifest) -> list[str]:
    """Why a pod spec misses the "restricted" Pod Security Standard (empty when it meets it)."""
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    found = []
    pod = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            found.append(f"{name}: {flag}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"{name}: volume {volume['name']} of type {kinds}")
    for container in containers(spec):
        where = f"{name} container {container['name']}"
        ctx = container.get("securityContext", {})

        def setting(key: str, ctx: Manifest = ctx) -> Any:
            return ctx.get(key, pod.get(key))

        if setting("runAsNonRoot") is not True:
            found.append(f"{where}: runAsNonRoot is not true")
        user = setting("runAsUser")
        if not isinstance(user, int) or user == 0:
            found.append(f"{where}: runAsUser {user!r} is not a numeric non-root UID")
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation is not false")
        if ctx.get("privileged"):
            found.append(f"{where}: privileged")
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            found.append(f"{where}: capabilities.drop lacks ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}: adds capabilities {caps['add']}")
        seccomp = (setting("seccompProfile") or {}).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{where}: seccompProfile {seccomp!r}")
        if ctx.get("readOnlyRootFilesystem") is not True:
            found.append(f"{where}: root filesystem is writable")
        if container.get("ports") and any(p.get("hostPort") for p in container["ports"]):
            found.append(f"{where}: hostPort")
    return found


@pytest.mark.parametrize(("chart", "environment"), CHART_ENVS, ids=IDS)
def test_every_pod_meets_the_restricted_standard(chart: str, environment: str) -> None:
    found = [
        v for obj, spec in workloads(chart, environment) for v in restricted_violations(obj, spec)
    ]
    assert not found, "\n".join(found)


def test_restricted_check_catches_a_root_container() -> None:
    obj, spec = next(workloads("auth", "staging"))
    bad = {**spec, "containers": [{**spec["containers"][0], "securityContext": {"runAsUser": 0}}]}
    found = restricted_violations(obj, bad)
    assert any("allowPrivilegeEscalation" in v for v in found)
    assert any("runAsUser 0" in v for v in found)
    bad_volume = {**spec, "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}
    assert any("hostPath" in v for v in restricted_violations(obj, bad_volume))


@pytest.mark.parametrize(("chart", "environment"), CHART_ENVS, ids=IDS)
def test_every_container_has_resources(chart: str, environment: str) -> None:
    missing = []
    for obj, spec in workloads(chart, environment):
        for container in containers(spec):
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            if not ({"cpu", "memory"} <= requests.keys() and "memory" in limits):
                missing.append(f"{obj['kind']}/{obj['metadata']['name']}:{container['name']}")
    assert not missing, f"no cpu+memory requests and memory limit: {missing}"


@pytest.mark.parametrize(("chart", "environment"), CHART_ENVS, ids=IDS)
def test_long_running_containers_have_liveness_and_readiness_probes(
    chart: str, environment: str
) -> None:
    missing = []
    for obj, spec in workloads(chart, environment):
        if obj["kind"] not in LONG_RUNNING:
            continue
        for container in spec["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    missing.append(f"{obj['metadata']['name']}:{container['name']} {probe}")
    assert not missing, missing


def image_problem(image: str) -> str | None:
    if DIGEST.search(image):
        return None
    match = TAGGED.match(image)
    if match is None:
        return f"{image}: neither a tag nor a digest"
    if match.group("tag") == "latest":
        return f"{image}: the latest tag is not a pinned version"
    return None


@pytest.mark.parametrize(("chart", "environment"), WORKLOAD_ENVS, ids=WORKLOAD_IDS)
def test_images_are_pinned(chart: str, environment: str) -> None:
    images = [c["image"] for _, spec in workloads(chart, environment) for c in containers(spec)]
    # A CloudNativePG Cluster's pods run its imageName (made by the operator, not a pod spec here).
    clusters = render_environment(chart, environment).of_kind("Cluster")
    images += [cluster["spec"]["imageName"] for cluster in clusters]
    assert images
    problems = [p for p in map(image_problem, images) if p]
    assert not problems, problems


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("ghcr.io/o/r/auth:1.2.3", True),
        ("ghcr.io/o/r/auth@sha256:" + "0" * 64, True),
        ("ghcr.io/o/r/auth:latest", False),
        ("ghcr.io/o/r/auth", False),
        ("localhost:5000/auth", False),
    ],
)
def test_image_pin_check(image: str, pinned: bool) -> None:
    assert (image_problem(image) is None) is pinned


def secret_looking_values(node: Any, path: str = "") -> Iterator[str]:
    """Paths in a values tree where a secret-looking key holds a literal value."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if (
                SECRET_NAME.search(str(key))
                and key not in SECRET_REFERENCE_KEYS
                and isinstance(value, str | int)
                and not isinstance(value, bool)
                and str(value) != ""
            ):
                yield here
            yield from secret_looking_values(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from secret_looking_values(item, f"{path}[{index}]")
    elif isinstance(node, str) and re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", node):
        yield path


def values_files() -> list[Path]:
    return sorted(CHARTS.glob("*/values*.yaml"))


@pytest.mark.parametrize("path", values_files(), ids=lambda p: str(p.relative_to(CHARTS)))
def test_no_secret_value_in_values_files(path: Path) -> None:
    values = yaml.safe_load(path.read_text()) or {}
    found = list(secret_looking_values(values))
    assert not found, f"{path}: secret-looking values (use a Secret reference): {found}"
    credentials_in_url = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
    assert not credentials_in_url.search(path.read_text()), f"{path}: credentials in a URL"


def test_secret_detector_finds_secrets() -> None:
    values = {
        "config": {"DB_PASSWORD": "hunter2", "LOG_LEVEL": "info"},
        "auth": {"apiKey": "abc"},
        "tls": {"key": "-----BEGIN PRIVATE KEY-----\nx"},
        "secretEnv": [{"name": "TOKEN", "secretName": "x-token", "key": "token"}],
    }
    assert sorted(secret_looking_values(values)) == [
        "auth.apiKey",
        "config.DB_PASSWORD",
        "tls.key",
    ]


def secret_bearing_variable(name: str) -> bool:
    """Environment variables that carry a secret: passwords, keys, and URLs with credentials."""
    if name.endswith(("_DIR", "_FILE", "_PATH")):
        return False  # where a mounted secret is, not the secret
    return bool(SECRET_NAME.search(name)) or name in {"DATABASE_URL", "REDIS_URL"}


def test_secret_bearing_variables() -> None:
    assert secret_bearing_variable("AI_OPENAI_API_KEY")
    assert secret_bearing_variable("DATABASE_URL")
    assert not secret_bearing_variable("AUTH_SIGNING_KEYS_DIR")
    assert not secret_bearing_variable("LOG_LEVEL")


def secret_data(objects: list[Manifest]) -> dict[tuple[str, str], str]:
    """Every secret value; a basic-auth Secret's `username` names who logs in, it is no secret
    (CloudNativePG's role Secrets must carry the role's name)."""
    return {
        (o["metadata"]["name"], key): value
        for o in objects
        if o["kind"] == "Secret"
        for key, value in {**o.get("data", {}), **o.get("stringData", {})}.items()
        if not (o.get("type") == "kubernetes.io/basic-auth" and key == "username")
    }


def unchanged_values(first: list[Manifest], again: list[Manifest]) -> list[str]:
    """Secret values that two renders agree on: they come from the chart or values, i.e. git."""
    before, after = secret_data(first), secret_data(again)
    return [
        f"{name}/{key}" for (name, key), value in before.items() if after.get((name, key)) == value
    ]


def fixed_secret_values(chart: str, environment: str) -> list[str]:
    """Only generated Secrets (a preview's, charts/platform: random at each render) may render."""
    first = list(render_environment(chart, environment).objects)
    again = render(chart, load_values(chart, environment), namespace_for(environment))
    return unchanged_values(first, again)


def test_fixed_secret_check_sees_a_value_from_git() -> None:
    def secret(value: str) -> Manifest:
        return {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": value}}

    assert unchanged_values([secret("aGk=")], [secret("aGk=")]) == ["s/k"]
    assert unchanged_values([secret("aGk=")], [secret("eW8=")]) == []
    login = {**secret("aGk="), "type": "kubernetes.io/basic-auth"}
    login["data"] = {"username": "YXV0aA==", "password": "aGk="}
    assert unchanged_values([login], [login]) == ["s/password"]
    assert render_environment("platform", "preview").of_kind("Secret")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_secret_values_come_only_from_secret_references(environment: str) -> None:
    for chart in DEPLOYABLE_CHARTS:
        assert not fixed_secret_values(chart, environment), f"{chart} renders a Secret value"
        for obj, spec in workloads(chart, environment):
            for container in containers(spec):
                for env in container.get("env", []):
                    if secret_bearing_variable(env["name"]):
                        assert "secretKeyRef" in env.get("valueFrom", {}), (
                            f"{chart}/{obj['metadata']['name']}: {env['name']} is not from a Secret"
                        )


EXPECTED_ROUTES = {
    "auth": "/api/auth",
    "backend": "/api/chat",
    "ai": "/api/ai",
    "media-storage": "/api/media",
    "data-processor": "/api/stats",
    "frontend": "/",
}


# The listener of the shared Gateway (k3s/gateway.yaml) that each environment's routes attach to.
LISTENERS = {
    "dev": "http",
    "staging": "https-staging",
    "production": "https-production",
    "preview": "https-previews",
}


def filters_of(rule: Manifest, kind: str) -> list[Manifest]:
    return [f for f in rule.get("filters", []) if f["type"] == kind]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_routes_attach_to_the_environments_listener_and_strip_their_prefix(
    environment: str,
) -> None:
    hosts = set()
    for chart, route in EXPECTED_ROUTES.items():
        (http_route,) = render_environment(chart, environment).of_kind("HTTPRoute")
        spec = http_route["spec"]
        (parent,) = spec["parentRefs"]
        assert parent == {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "chat",
            "namespace": "nginx-gateway",
            "sectionName": LISTENERS[environment],
        }
        hosts.update(spec["hostnames"])
        (rule,) = spec["rules"]
        (match,) = rule["matches"]
        assert match == {"path": {"type": "PathPrefix", "value": route}}
        (backend,) = rule["backendRefs"]
        assert (backend["kind"], backend["name"], backend["port"]) == ("Service", chart, 8000) or (
            chart == "frontend" and backend["name"] == "frontend"
        )
        rewrites = filters_of(rule, "URLRewrite")
        if route == "/":
            assert not rewrites
        else:
            (rewrite,) = rewrites
            assert rewrite["urlRewrite"]["path"] == {
                "type": "ReplacePrefixMatch",
                "replacePrefixMatch": "/",
            }
    assert len(hosts) == 1, f"services of {environment} on different hosts: {hosts}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_routes_replace_a_client_supplied_forwarded_for(environment: str) -> None:
    # NGINX would append the peer to a client's own X-Forwarded-For; every route sets it to the
    # address the gateway saw instead, so a made-up header never reaches a service.
    for chart in APP_CHARTS:
        (http_route,) = render_environment(chart, environment).of_kind("HTTPRoute")
        for rule in http_route["spec"]["rules"]:
            (modifier,) = filters_of(rule, "RequestHeaderModifier")
            headers = modifier["requestHeaderModifier"]
            assert headers["set"] == [{"name": "X-Forwarded-For", "value": "$remote_addr"}]
            assert "add" not in headers


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_route_has_a_body_size_policy(environment: str) -> None:
    for chart in APP_CHARTS:
        rendered = render_environment(chart, environment)
        (policy,) = rendered.of_kind("ClientSettingsPolicy")
        assert policy["spec"]["targetRef"] == {
            "group": "gateway.networking.k8s.io",
            "kind": "HTTPRoute",
            "name": rendered.of_kind("HTTPRoute")[0]["metadata"]["name"],
        }
        expected = "12m" if chart == "media-storage" else "1m"
        assert policy["spec"]["body"]["maxSize"] == expected, chart


def test_no_ingress_objects_or_ingress_nginx_references_remain() -> None:
    for chart in DEPLOYABLE_CHARTS:
        for environment in ENVIRONMENTS:
            assert not render_environment(chart, environment).of_kind("Ingress"), chart
    needles = ("ingress-nginx", "nginx.ingress.kubernetes.io", "ingressClassName")
    places = [CHARTS, REPO / "k3s", REPO / "argocd"]
    # Configuration, templates and scripts (the READMEs may tell the history).
    for path in sorted(p for place in places for p in place.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix != ".md":
            text = path.read_text()
            for needle in needles:
                assert needle not in text, f"{path}: {needle}"


def network_policies(environment: str) -> list[Manifest]:
    return [
        obj
        for chart in DEPLOYABLE_CHARTS
        for obj in render_environment(chart, environment).of_kind("NetworkPolicy")
    ]


def allowed_ingress_sources(policy: Manifest) -> set[str]:
    names = set()
    for rule in policy["spec"].get("ingress", []):
        for peer in rule.get("from", []):
            label = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            if label and "namespaceSelector" not in peer:
                names.add(label)
    return names


def egress_targets(policy: Manifest) -> set[str]:
    names = set()
    for rule in policy["spec"].get("egress", []):
        for peer in rule.get("to", []):
            label = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            if label and "namespaceSelector" not in peer:
                names.add(label)
    return names


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_network_policies_default_deny_and_matching_allows(environment: str) -> None:
    policies = network_policies(environment)
    by_name = {p["metadata"]["name"]: p for p in policies}
    if (
        "postgres" not in by_name
    ):  # CloudNativePG: the instances' policy (test_postgres_cnpg_network)
        by_name["postgres"] = by_name["postgres-instances"]
    default_deny = by_name["default-deny"]["spec"]
    assert default_deny["podSelector"] == {}
    assert set(default_deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in default_deny
    assert "egress" not in default_deny

    # Every egress allow is matched by an ingress allow on the other side, and vice versa.
    for name in APP_CHARTS:
        for target in egress_targets(by_name[name]):
            assert name in allowed_ingress_sources(by_name[target]), f"{name} -> {target} blocked"
    for name in (*APP_CHARTS, "postgres", "redis"):
        for source in allowed_ingress_sources(by_name[name]) - {name, "postgres"}:
            assert name in egress_targets(by_name[source]), f"{source} -> {name} not allowed out"

    expected = {
        ("backend", "ai"),
        ("backend", "auth"),
        ("ai", "auth"),
        ("media-storage", "auth"),
        ("data-processor", "auth"),
        ("auth", "postgres"),
        ("backend", "postgres"),
        ("data-processor", "postgres"),
        ("media-storage", "postgres"),
        ("auth", "redis"),
        ("backend", "redis"),
        ("ai", "redis"),
        ("data-processor", "redis"),
    }
    actual = {(name, target) for name in APP_CHARTS for target in egress_targets(by_name[name])}
    assert actual == expected
    assert not egress_targets(by_name["frontend"])


GATEWAY_PODS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nginx-gateway"}},
    "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "chat"}},
}
PROMETHEUS_PODS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_service_allows_dns_and_only_the_gateways_and_prometheus_pods(
    environment: str,
) -> None:
    for chart in APP_CHARTS:
        rendered = render_environment(chart, environment)
        policy = rendered.of_kind("NetworkPolicy")[0]
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
        assert 53 in ports, f"{chart}: no DNS egress"
        from_other_namespaces = [
            (peer, rule["ports"])
            for rule in policy["spec"]["ingress"]
            for peer in rule["from"]
            if "namespaceSelector" in peer
        ]
        # Both selectors in one peer: the gateway's NGINX pods (and, where a ServiceMonitor
        # scrapes the service, Prometheus's pods), not the whole namespace; only the service port.
        port = [
            {"protocol": "TCP", "port": rendered.of_kind("Service")[0]["spec"]["ports"][0]["port"]}
        ]
        expected = [(GATEWAY_PODS, port)]
        if rendered.of_kind("ServiceMonitor"):
            expected.append((PROMETHEUS_PODS, port))
        assert from_other_namespaces == expected, chart


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_prometheus_scrapes_every_python_service_where_it_runs(environment: str) -> None:
    for chart in APP_CHARTS:
        monitors = render_environment(chart, environment).of_kind("ServiceMonitor")
        assert len(monitors) == (chart != "frontend"), chart  # NGINX serves no /metrics
        for monitor in monitors:
            (endpoint,) = monitor["spec"]["endpoints"]
            assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics"), chart


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize(("chart", "port"), [("postgres", 9187), ("redis", 9121)])
def test_data_stores_export_metrics_to_prometheus_only(
    environment: str, chart: str, port: int
) -> None:
    rendered = render_environment(chart, environment)
    (monitor,) = rendered.of_kind("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    # The chart's Service (redis with Sentinel has a headless one beside it, without metrics).
    (service,) = [s for s in rendered.of_kind("Service") if s["metadata"]["name"] == chart]
    assert {"name": "metrics", "port": port, "targetPort": "metrics"} in service["spec"]["ports"]
    (server,) = rendered.of_kind("StatefulSet")
    exporter = next(
        c for c in server["spec"]["template"]["spec"]["containers"] if c["name"] == "metrics"
    )
    assert exporter["ports"] == [{"name": "metrics", "containerPort": port}]
    policy = rendered.of_kind("NetworkPolicy")[0]
    scrapes = [rule for rule in policy["spec"]["ingress"] if PROMETHEUS_PODS in rule["from"]]
    assert scrapes == [{"from": [PROMETHEUS_PODS], "ports": [{"protocol": "TCP", "port": port}]}]


@pytest.mark.parametrize("environment", ["dev", "preview", "ci"])
def test_no_service_monitor_where_no_prometheus_operator_runs(environment: str) -> None:
    for chart in (*APP_CHARTS, "postgres", "redis"):
        values = load_values(chart, environment)
        objects = render(chart, values, namespace_for(environment))
        assert not [o for o in objects if o["kind"] == "ServiceMonitor"], chart


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_migrations_run_as_pre_sync_hooks_before_the_pods(environment: str) -> None:
    with_migrations = {"auth", "backend", "data-processor", "media-storage"}
    for chart in APP_CHARTS:
        jobs = render_environment(chart, environment).of_kind("Job")
        if chart not in with_migrations:
            assert not jobs, chart
            continue
        (job,) = jobs
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never"
        # Hooks run before the chart's ConfigMap exists: settings must be inline.
        assert "envFrom" not in spec["containers"][0]
        policy = next(
            p
            for p in render_environment(chart, environment).of_kind("NetworkPolicy")
            if p["metadata"]["name"] == f"{chart}-migrate"
        )
        assert int(policy["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            annotations["helm.sh/hook-weight"]
        )
        assert "postgres" in egress_targets(policy)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_service_accounts_do_not_mount_tokens(environment: str) -> None:
    for chart in DEPLOYABLE_CHARTS:
        rendered = render_environment(chart, environment)
        for account in rendered.of_kind("ServiceAccount"):
            assert account["automountServiceAccountToken"] is False
        for _, spec in workloads(chart, environment):
            assert spec["automountServiceAccountToken"] is False


def test_data_processor_runs_its_consumer_worker() -> None:
    deployments = render_environment("data-processor", "staging").of_kind("Deployment")
    consumer = next(d for d in deployments if d["metadata"]["name"] == "data-processor-consumer")
    container = consumer["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "consume_events"
    liveness = container["livenessProbe"]["exec"]["command"]
    readiness = container["readinessProbe"]["exec"]["command"]
    assert "--database" not in liveness, "a database outage must not restart the consumer"
    assert "--database" in readiness
    assert "ports" not in container
    assert consumer["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "consumer"
    )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_media_storage_keeps_files_on_a_volume(environment: str) -> None:
    rendered = render_environment("media-storage", environment)
    (claim,) = rendered.of_kind("PersistentVolumeClaim")
    (deployment,) = rendered.of_kind("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    media_root = rendered.of_kind("ConfigMap")[0]["data"]["MEDIA_ROOT"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[media_root] == "data"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_redis_persists_and_bounds_its_memory(environment: str) -> None:
    rendered = render_environment("redis", environment)
    values = load_values("redis", environment)
    conf = rendered.of_kind("ConfigMap")[0]["data"]["redis.conf"].splitlines()
    expected_memory = values.get("maxmemory") or chart_default("redis", "maxmemory")
    assert f"maxmemory {expected_memory}" in conf
    assert "maxmemory-policy volatile-lru" in conf
    assert "appendonly yes" in conf
    (statefulset,) = rendered.of_kind("StatefulSet")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in mounts


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_postgres_backs_up_to_its_own_volume_with_retention(environment: str) -> None:
    rendered = render_environment("postgres", environment)
    backup = load_values("postgres", environment)["backup"]
    cronjobs = rendered.of_kind("CronJob")
    if not backup["enabled"]:
        assert not cronjobs
        return
    (cronjob,) = cronjobs
    spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["RETENTION_DAYS"] == str(backup["retentionDays"])
    assert env["DATABASES"] == "auth backend data_processor media_storage"
    claims = {c["metadata"]["name"] for c in rendered.of_kind("PersistentVolumeClaim")}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] in claims
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def chart_default(chart: str, key: str) -> Any:
    return yaml.safe_load((CHARTS / chart / "values.yaml").read_text())[key]


MIGRATING = [
    c
    for c in APP_CHARTS
    if yaml.safe_load((CHARTS / c / "values.yaml").read_text())["migration"]["enabled"]
]


def egress_peers(policies: list[Manifest], labels: dict[str, str]) -> set[str]:
    """The pods (by app.kubernetes.io/name) or namespaces a pod with `labels` may reach: every
    policy selecting it counts (NetworkPolicies add up)."""
    reached: set[str] = set()
    for policy in policies:
        if not selector_matches(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if "namespaceSelector" in peer:
                    reached.add("ns:" + peer["namespaceSelector"]["matchLabels"][
                        "kubernetes.io/metadata.name"])  # fmt: skip
                elif "podSelector" in peer:
                    selected = peer["podSelector"]["matchLabels"]
                    # A chart's pods by name, a CloudNativePG Cluster's instances by cluster.
                    reached.add(selected.get("app.kubernetes.io/name")
                                or f"cnpg:{selected['cnpg.io/cluster']}")  # fmt: skip
                else:
                    reached.add("ipBlock")
    return reached


@pytest.mark.parametrize("environment", ["staging", "production", "preview"])
@pytest.mark.parametrize("chart", MIGRATING)
def test_a_migration_job_reaches_its_database_only(chart: str, environment: str) -> None:
    rendered = render_environment(chart, environment)
    policies = rendered.of_kind("NetworkPolicy")
    (job,) = rendered.of_kind("Job")
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert egress_peers(policies, job_labels) == {"ns:kube-system", "postgres", "cnpg:postgres"}
    defaults = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
    wanted = {e["service"] for e in defaults["networkPolicy"]["egressTo"]}
    for deployment in rendered.of_kind("Deployment"):
        service_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert wanted <= egress_peers(policies, service_labels), "the service keeps its egress"
