"""The CI install plan from the real charts, rendered with real Helm, validated against the
Kubernetes schemas of the pinned K3s and each chart's values schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import helm_python
import pytest
from chartkit import CHARTS, REPO, kubernetes_version, problems_of
from ci.cluster import cluster_components, parser, phase_selector
from ci.core.catalog import load_catalog
from ci.core.cluster_gateway import VERSIONS_FILE, read_versions
from ci.core.cluster_plan import (
    PlanError,
    Release,
    deep_merge,
    image_values,
    install_phases,
    install_releases,
    object_name,
    parse_images,
    phases,
    render_release,
)
from ci.core.cluster_secrets import (
    BASIC_AUTH,
    database_host,
    generate_secrets,
    secret_manifests,
    secret_needs,
)

from cluster.cnpg_chart import build_chart, chart_repository, repo_with_pin, sha256

SERVICES = load_catalog(REPO).names()
IMAGES = {name: f"ci.local/chat-platform/{name}:run-42" for name in SERVICES}

# charts/postgres values.yaml, databases.services
DATABASES = ["auth", "backend", "data-processor", "media-storage"]


@pytest.fixture(scope="module")
def releases() -> list[Release]:
    return install_releases(CHARTS, SERVICES, IMAGES, namespace="chat-ci", host="k3s")


@pytest.fixture(scope="module")
def rendered(releases: list[Release]) -> dict[str, list[dict[str, object]]]:
    return {release.chart: render_release(CHARTS, release) for release in releases}


def test_order_is_platform_postgres_redis_then_every_service_of_the_catalog(
    releases: list[Release],
) -> None:
    assert [r.chart for r in releases] == ["platform", "postgres", "redis", *SERVICES]
    assert set(SERVICES) == {"ai", "auth", "backend", "data-processor", "frontend", "media-storage"}
    assert {r.namespace for r in releases} == {"chat-ci"}


def test_every_object_of_the_ci_install_is_valid_for_the_pinned_kubernetes(
    rendered: dict[str, list[dict[str, object]]],
) -> None:
    needs = secret_needs(obj for objects in rendered.values() for obj in objects)
    secrets = generate_secrets(needs, DATABASES, database_host(rendered["postgres"]))
    everything = [obj for objects in rendered.values() for obj in objects]
    everything += secret_manifests(secrets, needs, "chat-ci")
    problems = problems_of(everything, kubernetes_version())

    assert not problems, "\n".join(problems)
    assert {"HTTPRoute", "ClientSettingsPolicy", "Job", "StatefulSet"} <= {
        str(o["kind"]) for o in everything
    }


def test_service_workloads_run_the_images_of_the_run_and_never_pull_them(
    rendered: dict[str, list[dict[str, object]]],
) -> None:
    for service in SERVICES:
        workloads = [o for o in rendered[service] if o["kind"] in {"Deployment", "Job"}]
        assert workloads, service
        for obj in workloads:
            pod = obj["spec"]["template"]["spec"]  # type: ignore[index]
            for container in pod["containers"]:
                assert container["image"] == IMAGES[service], object_name(obj)
                assert container["imagePullPolicy"] == "Never", object_name(obj)


def test_routes_use_the_host_of_the_run_without_tls(
    rendered: dict[str, list[dict[str, object]]],
) -> None:
    routes = [o for s in SERVICES for o in rendered[s] if o["kind"] == "HTTPRoute"]

    assert len(routes) == len(SERVICES)
    for route in routes:
        spec = route["spec"]
        assert spec["hostnames"] == ["k3s"]  # type: ignore[index]
        assert spec["parentRefs"] == [  # type: ignore[index]
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "chat",
                "namespace": "nginx-gateway",
                "sectionName": "http",
            }
        ]


def test_migrations_are_presync_hooks_in_weight_order_and_postgres_is_a_cloudnativepg_cluster(
    rendered: dict[str, list[dict[str, object]]],
) -> None:
    auth = phases("auth", rendered["auth"])
    postgres = phases("postgres", rendered["postgres"])
    platform = phases("platform", rendered["platform"])

    assert [p.name for p in auth] == ["PreSync", "Sync"]
    assert [object_name(o) for o in auth[0].objects] == [
        "NetworkPolicy/auth-migrate",
        "Job/auth-migrate",
    ]
    # values-ci.yaml: engine cloudnativepg, one instance; Database objects, no ensure-databases Job
    assert [p.name for p in postgres] == ["Sync"]
    cluster = next(o for o in postgres[0].objects if o["kind"] == "Cluster")
    assert cluster["spec"]["instances"] == 1
    assert [object_name(o) for o in postgres[0].objects if o["kind"] == "Database"] == [
        f"Database/postgres-{service}" for service in DATABASES
    ]
    assert not [o for o in postgres[0].objects if o["kind"] in {"StatefulSet", "Job"}]
    assert object_name(platform[0].objects[0]) == "Namespace/chat-ci"
    kinds = [o["kind"] for o in auth[1].objects]
    assert kinds.index("ServiceAccount") < kinds.index("Deployment") < kinds.index("HTTPRoute")


def test_the_install_runs_crds_then_the_operator_then_platform_postgres_and_the_services(
    tmp_path: Path, releases: list[Release], rendered: dict[str, list[dict[str, object]]]
) -> None:
    version = read_versions((REPO / VERSIONS_FILE).read_text())["CLOUDNATIVE_PG_CHART_VERSION"]
    archive = build_chart(tmp_path / "charts", version)
    repo = repo_with_pin(tmp_path, sha256(archive))
    everything = [obj for objects in rendered.values() for obj in objects]
    needs = secret_needs(everything)
    secrets = generate_secrets(needs, DATABASES, database_host(rendered["postgres"]))
    images = [f"{name}={ref}" for name, ref in IMAGES.items()]

    with chart_repository(archive) as (url, _):
        argv = ["install", "--kubeconfig", "k", "--repo", str(repo), "--images", *images]
        args = parser().parse_args([*argv, "--cloudnative-pg", "--cloudnative-pg-repo", url])
        args.output = tmp_path / "out"
        components = cluster_components(args, rendered)
    found = install_phases(
        components, releases, rendered, secret_manifests(secrets, needs, "chat-ci")
    )

    order = [(p.release, p.name) for p in found]
    assert order[:8] == [
        ("cluster-policies", "PriorityClasses"),
        ("cloudnative-pg", "CRDs"),
        ("cnpg", "Namespace"),
        ("cnpg", "Sync"),  # the operator's Deployment, waited for before anything uses it
        ("platform", "Sync"),
        ("ci", "Secrets"),
        ("postgres", "Sync"),
        ("redis", "Sync"),
    ]
    assert [r for r, _ in order[8:]] == sorted([r for r, _ in order[8:]], key=[*SERVICES].index)
    assert {r for r, _ in order[8:]} == set(SERVICES)
    expected, _ = phase_selector(found[order.index(("postgres", "Sync"))])
    assert {"Cluster/postgres", *(f"Database/postgres-{s}" for s in DATABASES)} <= set(expected)
    operator, _ = phase_selector(found[order.index(("cnpg", "Sync"))])
    assert operator == ["Deployment/cnpg-cloudnative-pg"]
    roles = found[order.index(("ci", "Secrets"))].objects
    assert {o["metadata"]["name"] for o in roles if o["type"] == BASIC_AUTH} == {
        f"{service}-postgres-role" for service in DATABASES
    }


def test_every_secret_the_charts_reference_is_generated_fresh_and_none_is_rendered(
    rendered: dict[str, list[dict[str, object]]],
) -> None:
    everything = [obj for objects in rendered.values() for obj in objects]
    needs = secret_needs(everything)
    first = generate_secrets(needs, DATABASES, database_host(rendered["postgres"]))
    second = generate_secrets(needs, DATABASES, database_host(rendered["postgres"]))

    assert set(first) == {
        "auth-postgres-role",
        "backend-postgres-role",
        "data-processor-postgres-role",
        "media-storage-postgres-role",
        "redis-auth",
        "auth-database",
        "backend-database",
        "data-processor-database",
        "media-storage-database",
        "auth-redis",
        "backend-redis",
        "ai-redis",
        "data-processor-redis",
        "auth-signing-keys",
        "data-processor-django",
        "backend-ai-client",
        "auth-service-clients",
    }
    # backend's client secret for ai is the one auth knows it by
    clients = json.loads(first["auth-service-clients"]["clients"])
    assert clients == {"backend": first["backend-ai-client"]["secret"]}
    assert "ai-openai" not in needs.keys  # optional: ai runs its local provider
    assert not [o for o in everything if o["kind"] == "Secret"]
    assert first["redis-auth"] != second["redis-auth"]
    password = first["backend-postgres-role"]["password"]
    assert first["backend-database"]["url"] == (
        f"postgresql://backend:{password}@postgres-rw:5432/backend"
    )
    assert first["data-processor-redis"]["url"].endswith("@redis:6379/0")
    pem = next(iter(first["auth-signing-keys"].values()))
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")


def render_postgres(releases: list[Release], engine: str) -> list[dict[str, object]]:
    """charts/postgres of the CI install with the given engine."""
    release = next(r for r in releases if r.chart == "postgres")
    values = deep_merge(release.values, {"engine": engine})
    return render_release(CHARTS, Release(release.chart, release.namespace, values))


def test_cloudnativepg_role_secrets_carry_the_password_of_the_service_url(
    releases: list[Release], rendered: dict[str, list[dict[str, object]]]
) -> None:
    postgres = render_postgres(releases, "cloudnativepg")
    services = [o for s in SERVICES for o in rendered[s]]
    needs = secret_needs([*postgres, *services])
    secrets = generate_secrets(needs, DATABASES, database_host(postgres))
    manifests = {m["metadata"]["name"]: m for m in secret_manifests(secrets, needs, "chat-ci")}

    for service in DATABASES:
        role = service.replace("-", "_")
        login = secrets[f"{service}-postgres-role"]
        assert login["username"] == role
        assert secrets[f"{service}-database"]["url"] == (
            f"postgresql://{role}:{login['password']}@postgres-rw:5432/{role}"
        )
        assert manifests[f"{service}-postgres-role"]["type"] == BASIC_AUTH
        assert needs.users[f"{service}-postgres-role"] == {"Cluster/postgres"}
    assert manifests["auth-database"]["type"] == "Opaque"
    everything = [*postgres, *services, *manifests.values()]
    problems = problems_of(everything, kubernetes_version())
    assert not problems, "\n".join(problems)


def test_the_url_host_is_where_the_rendered_engine_serves_the_primary(
    releases: list[Release],
) -> None:
    cloudnativepg = render_postgres(releases, "cloudnativepg")
    statefulset = render_postgres(releases, "statefulset")
    renamed = [
        deep_merge(o, {"metadata": {"name": "db"}}) if o["kind"] == "Cluster" else o
        for o in cloudnativepg
    ]

    assert database_host(cloudnativepg) == "postgres-rw"
    assert database_host(renamed) == "db-rw"
    assert database_host(statefulset) == "postgres"
    with pytest.raises(PlanError, match="1 CloudNativePG Clusters and 1 StatefulSets"):
        database_host([*cloudnativepg, *statefulset])
    with pytest.raises(PlanError, match="0 CloudNativePG Clusters and 0 StatefulSets"):
        database_host([])


def test_a_cluster_secret_without_a_recipe_fails_the_plan_naming_the_cluster(
    releases: list[Release],
) -> None:
    postgres = render_postgres(releases, "cloudnativepg")
    cluster = next(o for o in postgres if o["kind"] == "Cluster")
    external = {"name": "old", "password": {"name": "old-postgres", "key": "password"}}
    importing = deep_merge(cluster, {"spec": {"externalClusters": [external]}})

    with pytest.raises(
        PlanError, match=r"Secret old-postgres \(used by Cluster/postgres\) has no CI recipe"
    ):
        generate_secrets(secret_needs([importing]), DATABASES, "postgres-rw")


def test_a_secret_without_a_recipe_fails_the_plan_naming_it_and_its_user() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "env": [
                                {
                                    "name": "T",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "mystery", "key": "token"}
                                    },
                                }
                            ]
                        }
                    ]
                }
            }
        },
    }

    with pytest.raises(PlanError, match=r"Secret mystery \(used by Job/x\) has no CI recipe"):
        generate_secrets(secret_needs([job]), [], "postgres")


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["auth"], "--images: 'auth' is not SERVICE=IMAGE"),
        (["auth=a:1", "auth=b:2"], "--images: auth given twice"),
        (["auth=Not An Image"], "--images auth: 'Not An Image' is not REPOSITORY:TAG"),
        (["auth=registry/auth"], "--images auth: 'registry/auth' is not REPOSITORY:TAG"),
    ],
)
def test_bad_images_name_the_argument(pairs: list[str], message: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_images(pairs)
    assert str(caught.value).startswith(message)


def test_image_references_become_chart_image_values() -> None:
    digest = "sha256:" + "a" * 64

    assert image_values("localhost:5000/chat/auth:ci") == {
        "repository": "localhost:5000/chat/auth",
        "tag": "ci",
        "digest": "",
    }
    assert image_values(f"ghcr.io/acme/auth:main-1a2b3c4@{digest}") == {
        "repository": "ghcr.io/acme/auth",
        "tag": "main-1a2b3c4",
        "digest": digest,
    }


def test_every_service_needs_an_image_and_no_unknown_one_is_accepted() -> None:
    without_auth = {k: v for k, v in IMAGES.items() if k != "auth"}

    with pytest.raises(PlanError, match="--images: no image for auth"):
        install_releases(CHARTS, SERVICES, without_auth)
    with pytest.raises(PlanError, match="--images: chat is not a service of the catalog"):
        install_releases(CHARTS, SERVICES, {**IMAGES, "chat": "x/chat:1"})
    with pytest.raises(PlanError, match="--namespace: 'Chat_CI'"):
        install_releases(CHARTS, SERVICES, IMAGES, namespace="Chat_CI")


def copy_charts(tmp_path: Path) -> Path:
    charts = tmp_path / "charts"
    shutil.copytree(CHARTS, charts, symlinks=True)
    return charts


def test_a_values_ci_file_that_breaks_the_chart_schema_is_rejected_naming_the_field(
    tmp_path: Path,
) -> None:
    charts = copy_charts(tmp_path)
    path = charts / "auth" / "values-ci.yaml"
    path.write_text(path.read_text().replace("replicas: 1", "replicas: one"))
    releases = install_releases(charts, SERVICES, IMAGES)

    with pytest.raises(
        PlanError, match=r"(?s)charts/auth with values-ci.yaml: .*at ./replicas.: got string"
    ):
        render_release(charts, next(r for r in releases if r.chart == "auth"))


def test_a_missing_values_ci_file_is_named(tmp_path: Path) -> None:
    charts = copy_charts(tmp_path)
    (charts / "redis" / "values-ci.yaml").unlink()

    with pytest.raises(PlanError, match=r"redis/values-ci.yaml: cannot be read"):
        install_releases(charts, SERVICES, IMAGES)


def test_values_ci_overlays_the_chart_defaults(
    rendered: dict[str, list[dict[str, object]]],
) -> None:
    auth = next(o for o in rendered["auth"] if o["kind"] == "Deployment")
    container = auth["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]

    # values-ci.yaml: small resources; values.yaml: probes and command stay the chart's.
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["command"][:2] == ["uvicorn", "auth.main:app"]


@pytest.mark.parametrize("chart", ["platform", "postgres", "redis", *SERVICES])
def test_helm_lint_is_clean_for_the_ci_install(releases: list[Release], chart: str) -> None:
    release = next(r for r in releases if r.chart == chart)

    report = helm_python.lint(
        CHARTS / chart,
        release.values,
        strict=True,
        namespace=release.namespace,
        kube_version=f"v{kubernetes_version()}",
    )

    assert not [m for m in report["messages"] if m["severity"] >= 2], report
    assert not report["errors"], report
