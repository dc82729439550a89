"""cloudnativepg.importFrom: the Cluster's first start imports the StatefulSet's data
(bootstrap.initdb.import + an externalCluster at the old server's Service, its superuser Secret),
validated against CloudNativePG 1.30.0's CRD schema and the rules its admission webhook adds
(internal/webhook/v1/cluster_webhook.go: validateMicroservice, validateMonolith); the StatefulSet
keeps running while the import is on, reachable only by the Cluster's pods."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import psycopg
import pytest
from chartkit import (
    APP_CHARTS,
    ENVIRONMENTS,
    Manifest,
    Peer,
    connection_allowed,
    kubernetes_version,
    load_values,
    namespace_for,
    problems_of,
    render,
    render_environment,
    required_secret_names,
)
from charts.test_postgres_cloudnativepg_backup import (
    backup_container,
    contents,
    fill,
    job_environment,
    role_url,
    run_rendered,
    set_up_like_the_operator,
)
from charts.test_postgres_environments import decoded, generated_secrets, primary_host
from charts.test_postgres_scripts import client_env, run_script
from harness.servers import PostgresServer, postgres_bindir
from psycopg import sql

DATABASES = ["auth", "backend", "data_processor", "media_storage"]


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def values_with_import(environment: str, **import_from: Any) -> dict[str, Any]:
    values = load_values("postgres", environment)
    values["engine"] = "cloudnativepg"
    settings = {"enabled": True, "type": "monolith", "service": "", **import_from}
    values["cloudnativepg"] = {**values.get("cloudnativepg", {}), "importFrom": settings}
    return values


def render_import(environment: str, **import_from: Any) -> list[Manifest]:
    values = values_with_import(environment, **import_from)
    return render("postgres", values, namespace_for(environment))


def webhook_problems(import_spec: Manifest) -> list[str]:
    """CloudNativePG 1.30.0's admission rules for an import that its CRD schema cannot say."""
    databases, roles = import_spec["databases"], import_spec.get("roles", [])
    if import_spec["type"] == "microservice":
        return [
            *(["microservice: a single database"] if len(databases) != 1 else []),
            *(["microservice: no roles"] if roles else []),
            *(["microservice: no wildcard"] if any("*" in d for d in databases) else []),
        ]
    return [
        *(["monolith: a database at least"] if not databases else []),
        *(["monolith: * alone"] if len(databases) > 1 and "*" in databases else []),
        *(["monolith: * alone"] if len(roles) > 1 and "*" in roles else []),
        *(["monolith: no SQL"] if import_spec.get("postImportApplicationSQL") else []),
    ]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_monolith_import_of_every_service_from_the_statefulset(environment: str) -> None:
    objects = render_import(environment)
    assert problems_of(objects, kubernetes_version()) == []
    (cluster,) = of_kind(objects, "Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    spec = initdb["import"]
    assert webhook_problems(spec) == []
    assert spec["type"] == "monolith"
    assert spec["databases"] == spec["roles"] == DATABASES
    assert "database" not in initdb  # monolith: no application database of its own
    (source,) = cluster["spec"]["externalClusters"]
    assert spec["source"] == {"externalCluster": source["name"]}
    # The old server: the Service of the StatefulSet, rendered alongside while importing.
    statefulset = load_values("postgres", environment)
    statefulset["engine"] = "statefulset"
    old = render("postgres", statefulset, namespace_for(environment))
    assert source["connectionParameters"]["host"] == primary_host(old)
    assert source["connectionParameters"]["user"] == "postgres"
    assert source["password"] == {"name": "postgres-superuser", "key": "password"}
    assert of_kind(objects, "StatefulSet") == of_kind(old, "StatefulSet")
    assert "postgres-ensure-databases" not in {
        j["metadata"]["name"] for j in of_kind(objects, "Job")
    }


@pytest.mark.parametrize("environment", ["preview", "staging", "production"])
def test_the_platform_generates_the_import_sources_password(environment: str) -> None:
    needed = set().union(*(required_secret_names(o) for o in render_import(environment)))
    assert "postgres-superuser" in needed
    made = generated_secrets(load_values("platform", environment), environment)
    assert needed - set(made) == set()


def test_a_microservice_import_of_one_service() -> None:
    objects = render_import("production", type="microservice", service="data-processor")
    assert problems_of(objects, kubernetes_version()) == []
    (cluster,) = of_kind(objects, "Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert webhook_problems(initdb["import"]) == []
    assert initdb["import"]["databases"] == ["data_processor"]
    assert "roles" not in initdb["import"]
    assert (initdb["database"], initdb["owner"]) == ("data_processor", "data_processor")


def test_the_webhook_rules_are_checked() -> None:
    assert webhook_problems({"type": "microservice", "databases": ["a", "b"], "roles": ["a"]}) == [
        "microservice: a single database",
        "microservice: no roles",
    ]
    assert webhook_problems({"type": "monolith", "databases": []}) == [
        "monolith: a database at least"
    ]


def test_without_import_nothing_of_it_renders() -> None:
    values = load_values("postgres", "production")
    values["engine"] = "cloudnativepg"
    objects = render("postgres", values, "chat-production")
    (cluster,) = of_kind(objects, "Cluster")
    assert "bootstrap" not in cluster["spec"]
    assert "externalClusters" not in cluster["spec"]
    assert of_kind(objects, "StatefulSet") == []
    assert not [o for o in objects if "import" in o["metadata"]["name"]]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"type": "microservice"}, "service"),
        ({"type": "microservice", "service": "ai"}, "importFrom.service"),
        ({"type": "logical"}, "type"),
    ],
)
def test_a_bad_import_setting_is_refused_by_name(settings: dict[str, str], field: str) -> None:
    with pytest.raises(helm_python.HelmError, match=field):
        render_import("production", **settings)


def test_while_importing_only_the_clusters_pods_reach_the_old_server() -> None:
    environment = "production"
    objects = render_import(environment)
    policies = [
        *[
            o
            for chart in (*APP_CHARTS, "platform")
            for o in render_environment(chart, environment).of_kind("NetworkPolicy")
        ],
        *of_kind(objects, "NetworkPolicy"),
    ]
    (statefulset,) = of_kind(objects, "StatefulSet")
    old_server = Peer(labels=statefulset["spec"]["template"]["metadata"]["labels"])
    # The operator's initdb Job runs the import; its pod carries the Cluster's label.
    initdb = Peer(labels={"cnpg.io/cluster": "postgres", "cnpg.io/jobRole": "initdb"})
    auth = Peer(labels={"app.kubernetes.io/name": "auth"})

    def allowed(source: Peer, destination: Peer, port: int) -> bool:
        return connection_allowed(policies, namespace_for(environment), source, destination, port)

    assert allowed(initdb, old_server, 5432)
    assert not allowed(initdb, old_server, 9187)
    assert not allowed(auth, old_server, 5432)  # the services were stopped for the switch


# --- the import for real: the StatefulSet's server as ensure-databases.sh makes it, imported the
# way CloudNativePG 1.30.0's monolith import does it (pkg/management/postgres/logicalimport: the
# roles with their password hashes, `pg_dump -Fd` of each database, `pg_restore --create` with
# the rendered pgRestoreExtraOptions), then the rendered backup run against the new server.


@pytest.fixture
def servers() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    """The old StatefulSet's server and the new Cluster's, password login only."""
    started = []
    try:
        for _ in range(2):
            server = PostgresServer(password=uuid.uuid4().hex).init()
            started.append(server)
            server.start()
        yield started[0], started[1]
    finally:
        for server in started:
            server.destroy()


def monolith_import(source: PostgresServer, target: PostgresServer, spec: Manifest,
                    tmp_path: Path) -> None:  # fmt: skip
    bindir = postgres_bindir()
    with psycopg.connect(source.url()) as conn:
        hashes: dict[str, str] = dict(
            conn.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                (spec["roles"],),
            ).fetchall()
        )
    with psycopg.connect(target.url(), autocommit=True) as conn:
        for role, hashed in hashes.items():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(hashed)
                )
            )
    for database in spec["databases"]:
        dump = tmp_path / f"import-{database}"
        subprocess.run(
            [str(bindir / "pg_dump"), "-Fd", "-f", str(dump), "-d", source.url(database)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        subprocess.run(
            [str(bindir / "pg_restore"), "--create", *spec.get("pgRestoreExtraOptions", []),
             "-U", "postgres", "-d", target.url(), str(dump)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip


@pytest.mark.parametrize("as_rendered", [True, False], ids=["rendered", "without-extra-options"])
def test_imported_databases_keep_their_rows_and_the_backup_role_dumps_them(
    servers: tuple[PostgresServer, PostgresServer], tmp_path: Path, as_rendered: bool
) -> None:
    source, target = servers
    values = values_with_import("production")
    values["backup"] = {**values["backup"], "enabled": True}
    objects = render("postgres", values, "chat-production")
    (cluster,) = of_kind(objects, "Cluster")
    spec = dict(cluster["spec"]["bootstrap"]["initdb"]["import"])
    if not as_rendered:
        spec.pop("pgRestoreExtraOptions")
    secrets = {
        name: decoded(secret)
        for name, secret in generated_secrets(
            load_values("platform", "production"), "production"
        ).items()
    }
    # The old server, as its ensure-databases.sh made it (REVOKE ALL ON DATABASE ... FROM PUBLIC).
    passwords = tmp_path / "passwords"
    passwords.mkdir()
    services = [d.replace("_", "-") for d in spec["databases"]]
    for service in services:
        (passwords / service).write_text(secrets["postgres-service-passwords"][service])
    made = run_script("ensure-databases.sh", client_env(
        source.url(), SERVICES=" ".join(services), PASSWORDS_DIR=str(passwords)))  # fmt: skip
    assert made.returncode == 0, made.stderr
    expected = {}
    for rows, database in enumerate(spec["databases"], start=2):
        url = role_url(
            source, database, (passwords / database.replace("_", "-")).read_text(), database
        )
        fill(url, rows)
        expected[database] = contents(url)

    monolith_import(source, target, spec, tmp_path)
    # Then the operator's managed roles: the backup role is new, the services' exist already.
    new_roles = [r for r in cluster["spec"]["managed"]["roles"] if r["name"] not in spec["roles"]]
    backup_only = {**cluster, "spec": {**cluster["spec"], "managed": {"roles": new_roles}}}
    set_up_like_the_operator(target, backup_only, [], secrets)
    for database in spec["databases"]:
        password = secrets[f"{database.replace('_', '-')}-postgres-role"]["password"]
        assert contents(role_url(target, database, password, database)) == expected[database]

    container = backup_container(objects)
    backups = tmp_path / "backups"
    backups.mkdir()
    env = job_environment(container, secrets, target, backups)
    result = run_rendered(objects, container, env, tmp_path)
    if as_rendered:
        assert result.returncode == 0, result.stderr
        dumped = (backups / "latest-run").read_text().split()
        assert sorted(d.rsplit("-", 1)[0] for d in dumped) == sorted(spec["databases"])
    else:  # the old server's REVOKE came along: the backup role may not connect
        assert result.returncode != 0
        assert "User does not have CONNECT privilege" in result.stderr
