"""The nightly pg_dump with engine cloudnativepg, run for real: the rendered CronJob's script,
command and environment against a real PostgreSQL set up as the rendered Cluster declares it (its
managed roles, with the passwords of the platform chart's generated Secrets, password login
only, and a database per Database object), logging in as the managed role `backup`
(pg_read_all_data), never a superuser. Only the network is stood in for: PGHOST names the
Cluster's Service, the test's server listens on loopback."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from chartkit import (
    APP_CHARTS,
    Manifest,
    Peer,
    connection_allowed,
    containers,
    kubernetes_version,
    load_values,
    pod_specs,
    problems_of,
    render,
    render_environment,
)
from harness.servers import PostgresServer, postgres_bindir
from psycopg import sql

ENVIRONMENT = "production"
NAMESPACE = "chat-production"


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def rendered() -> tuple[list[Manifest], dict[str, dict[str, str]]]:
    """The postgres chart with engine cloudnativepg and backups on, and the platform's Secrets."""
    values = load_values("postgres", ENVIRONMENT)
    values["engine"] = "cloudnativepg"
    values["backup"] = {**values["backup"], "enabled": True}
    postgres = render("postgres", values, NAMESPACE)
    platform = render("platform", load_values("platform", ENVIRONMENT), NAMESPACE)
    secrets = {
        o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o["data"].items()}
        for o in of_kind(platform, "Secret")
    }
    return postgres, secrets


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """A server of this module's own (the roles carry the Cluster's real names), password login
    (scram-sha-256) for every connection, so a wrong or missing password fails for real."""
    instance = PostgresServer(password=uuid.uuid4().hex).init()
    instance.start()
    try:
        yield instance
    finally:
        instance.destroy()


def set_up_like_the_operator(server: PostgresServer, cluster: Manifest, databases: list[Manifest],
                             secrets: dict[str, dict[str, str]]) -> None:  # fmt: skip
    """What CloudNativePG does for the rendered Cluster: each managed role with its Secret's
    password and memberships, each Database owned by its role."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        for role in cluster["spec"]["managed"]["roles"]:
            password = secrets[role["passwordSecret"]["name"]]["password"]
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role["name"]), sql.Literal(password)
                )
            )
            for member_of in role.get("inRoles", []):
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(member_of), sql.Identifier(role["name"])
                    )
                )
        for database in databases:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database["spec"]["name"]),
                    sql.Identifier(database["spec"]["owner"]),
                )
            )


def role_url(server: PostgresServer, role: str, password: str, database: str) -> str:
    return f"postgresql://{role}:{password}@127.0.0.1:{server.port}/{database}"


def fill(url: str, rows: int) -> None:
    """A table and a sequence of the owner's, as a service's migrations make them."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE messages (id serial PRIMARY KEY, body text NOT NULL)")
        conn.execute(
            "INSERT INTO messages (body) SELECT 'message ' || g FROM generate_series(1, %s) g",
            (rows,),
        )


def contents(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, body FROM messages ORDER BY id").fetchall()


def backup_container(postgres: list[Manifest]) -> Manifest:
    (cronjob,) = of_kind(postgres, "CronJob")
    (spec,) = pod_specs(cronjob)
    (container,) = [c for c in containers(spec) if c["name"] == "backup"]
    return container


def job_environment(
    container: Manifest, secrets: dict[str, dict[str, str]], server: PostgresServer, backups: Path
) -> dict[str, str]:
    """The container's env as the kubelet resolves it (values, secretKeyRefs from the platform's
    Secrets); the Service name and the volume are stood in by loopback and a directory."""
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
    assert env["PGHOST"] == "postgres-rw"
    assert env["BACKUP_DIR"] == "/backups"
    env.update(PGHOST="127.0.0.1", PGPORT=str(server.port), BACKUP_DIR=str(backups))
    env["PATH"] = f"{postgres_bindir()}:{env['PATH']}"
    return env


def run_rendered(
    postgres: list[Manifest], container: Manifest, env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The container's command with /scripts (the ConfigMap's volume) in a directory."""
    (configmap,) = [
        c for c in of_kind(postgres, "ConfigMap") if c["metadata"]["name"].endswith("-scripts")
    ]
    scripts = tmp_path / "scripts"
    scripts.mkdir(parents=True)
    for name, text in configmap["data"].items():
        (scripts / name).write_text(text)
    command = [part.replace("/scripts", str(scripts)) for part in container["command"]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_every_service_database_is_dumped_as_the_backup_role_and_restores(
    server: PostgresServer, tmp_path: Path
) -> None:
    postgres, secrets = rendered()
    (cluster,) = of_kind(postgres, "Cluster")
    databases = of_kind(postgres, "Database")
    set_up_like_the_operator(server, cluster, databases, secrets)
    container = backup_container(postgres)
    (user,) = [v for v in container["env"] if v["name"] == "PGUSER"]
    login = secrets[user["valueFrom"]["secretKeyRef"]["name"]]
    (role,) = [r for r in cluster["spec"]["managed"]["roles"] if r["name"] == login["username"]]
    assert role["inRoles"] == ["pg_read_all_data"]
    assert not role.get("superuser")
    assert cluster["spec"]["enableSuperuserAccess"] is False
    owners = {d["spec"]["name"]: d["spec"]["owner"] for d in databases}
    expected = {}
    for rows, (name, owner) in enumerate(sorted(owners.items()), start=3):
        owner_password = secrets[f"{name.replace('_', '-')}-postgres-role"]["password"]
        fill(role_url(server, owner, owner_password, name), rows)
        expected[name] = contents(role_url(server, owner, owner_password, name))

    backups = tmp_path / "backups"
    backups.mkdir()
    env = job_environment(container, secrets, server, backups)
    result = run_rendered(postgres, container, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert env["PGPASSWORD"] not in result.stdout + result.stderr
    dumps = (backups / "latest-run").read_text().split()
    assert sorted(d.rsplit("-", 1)[0] for d in dumps) == sorted(owners)

    # Each dump restores, as the superuser of a restore, into an empty database: the same rows.
    bindir = postgres_bindir()
    for dump in dumps:
        name = dump.rsplit("-", 1)[0]
        copy = f"restored_{name}"
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(copy)))
        restore = subprocess.run(
            [str(bindir / "pg_restore"), "--no-owner", f"--dbname={server.url(copy)}",
             str(backups / dump)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert restore.returncode == 0, restore.stderr
        assert contents(server.url(copy)) == expected[name], name

    # The backup role reads, and only reads.
    reader = role_url(server, login["username"], login["password"], "auth")
    with psycopg.connect(reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO messages (body) VALUES ('not allowed')")

    # Without pg_read_all_data the same run fails loudly (the check above can fail).
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("REVOKE pg_read_all_data FROM {}").format(sql.Identifier(login["username"]))
        )
    again = run_rendered(postgres, container, env, tmp_path / "again")
    assert again.returncode != 0
    assert "permission denied" in again.stderr


def test_the_backup_pods_reach_the_instances_postgres_and_nothing_else() -> None:
    postgres, _ = rendered()
    policies = [
        *[
            o
            for chart in (*APP_CHARTS, "platform")
            for o in render_environment(chart, ENVIRONMENT).of_kind("NetworkPolicy")
        ],
        *of_kind(postgres, "NetworkPolicy"),
    ]
    assert problems_of(of_kind(postgres, "NetworkPolicy"), kubernetes_version()) == []
    (cronjob,) = of_kind(postgres, "CronJob")
    backup = Peer(labels=cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    primary = Peer(labels={"cnpg.io/cluster": "postgres", "cnpg.io/instanceRole": "primary"})
    auth = Peer(labels={"app.kubernetes.io/name": "auth"})
    dns = Peer("kube-system", {"k8s-app": "kube-dns"})

    def allowed(source: Peer, destination: Peer, port: int, protocol: str = "TCP") -> bool:
        return connection_allowed(policies, NAMESPACE, source, destination, port, protocol)

    assert allowed(backup, primary, 5432)
    assert allowed(backup, dns, 53, "UDP")
    assert not allowed(backup, primary, 8000)  # the instance manager's API is the operator's
    assert not allowed(backup, auth, 8000)
    assert not allowed(backup, Peer(address="198.51.100.9"), 443)
