"""The Secrets a CI install needs, found in the rendered charts and generated once per run.

In real environments these Secrets are created out of band (charts/README.md). The throwaway
cluster gets fresh random values on every run: they exist only in the cluster and in memory,
never in git, arguments or logs. Every Secret a chart references must have a recipe here, so a
chart that starts referencing a new Secret fails the plan by name instead of a pod waiting for it.
References are read from pod templates and from CloudNativePG Clusters (managed roles' password
Secrets, external clusters' passwords), which the operator reads instead of a pod.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci.core.cluster_cnpg import is_cnpg
from ci.core.cluster_plan import Manifest, PlanError, object_name

SecretData = dict[str, dict[str, str]]  # Secret name -> key -> value
POSTGRES_PORT = 5432
BASIC_AUTH = "kubernetes.io/basic-auth"
OPAQUE = "Opaque"


@dataclass
class SecretNeeds:
    """Referenced Secrets: name -> keys (an empty set: the whole Secret is mounted)."""

    keys: dict[str, set[str]] = field(default_factory=dict)
    users: dict[str, set[str]] = field(default_factory=dict)
    # basic-auth Secret -> the PostgreSQL role it logs in (CloudNativePG refuses a Secret whose
    # username is not the role's name).
    roles: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, key: str | None, user: str) -> None:
        self.keys.setdefault(name, set()).update({key} if key else set())
        self.users.setdefault(name, set()).add(user)

    def add_role(self, name: str, role: str, user: str) -> None:
        for key in ("username", "password"):
            self.add(name, key, user)
        self.roles[name] = role


def _pod_spec(obj: Manifest) -> Mapping[str, Any] | None:
    spec: Mapping[str, Any] = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    pod = template.get("spec") if isinstance(template, Mapping) else None
    return pod if isinstance(pod, Mapping) else None


def is_cnpg_cluster(obj: Manifest) -> bool:
    return obj.get("kind") == "Cluster" and is_cnpg(obj)


def _cluster_needs(cluster: Manifest, needs: SecretNeeds) -> None:
    """A CloudNativePG Cluster's references: each managed role's basic-auth password Secret and
    each external cluster's password key."""
    spec: Mapping[str, Any] = cluster.get("spec") or {}
    user = object_name(cluster)
    for role in (spec.get("managed") or {}).get("roles") or []:
        ref = role.get("passwordSecret")
        if ref:
            needs.add_role(ref["name"], role["name"], user)
    for external in spec.get("externalClusters") or []:
        ref = external.get("password")
        if ref and not ref.get("optional"):
            needs.add(ref["name"], ref["key"], user)


def secret_needs(objects: Iterable[Manifest]) -> SecretNeeds:
    """Every non-optional Secret reference of every pod template (env, envFrom, volumes) and of
    every CloudNativePG Cluster."""
    needs = SecretNeeds()
    for obj in objects:
        if is_cnpg_cluster(obj):
            _cluster_needs(obj, needs)
        pod = _pod_spec(obj)
        if not pod:
            continue
        user = object_name(obj)
        for ctr in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            for env in ctr.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    needs.add(ref["name"], ref["key"], user)
            for source in ctr.get("envFrom", []):
                ref = source.get("secretRef")
                if ref and not ref.get("optional"):
                    needs.add(ref["name"], None, user)
        for volume in pod.get("volumes", []):
            ref = volume.get("secret")
            if ref and not ref.get("optional"):
                needs.add(ref["secretName"], None, user)
    return needs


def _password() -> str:
    return secrets.token_urlsafe(24)


def _signing_key() -> dict[str, str]:
    """auth's signing keys directory: one Ed25519 private key, file name = kid."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"ci-1.pem": pem.decode()}


def database_host(objects: Iterable[Manifest]) -> str:
    """Where the services reach the primary, from the postgres chart's render: a CloudNativePG
    Cluster N serves it as the Service N-rw, else the StatefulSet's governing Service."""
    objects = list(objects)
    clusters = [o for o in objects if is_cnpg_cluster(o)]
    statefulsets = [o for o in objects if o.get("kind") == "StatefulSet"]
    if len(clusters) == 1 and not statefulsets:
        return f"{clusters[0]['metadata']['name']}-rw"
    if not clusters and len(statefulsets) == 1:
        return str(statefulsets[0]["spec"]["serviceName"])
    raise PlanError(
        f"charts/postgres rendered {len(clusters)} CloudNativePG Clusters and "
        f"{len(statefulsets)} StatefulSets: expected one of either, to tell where the primary is"
    )


def role_name(service: str) -> str:
    """The PostgreSQL role (and database) of a service: its name with `_` for `-`."""
    return service.replace("-", "_")


def generate_secrets(needs: SecretNeeds, databases: Iterable[str], host: str) -> SecretData:
    """Fresh values for every needed Secret; a Secret without a recipe is a PlanError.

    `databases` are the services with a database in the postgres chart (`databases.services`),
    `host` where their URLs reach the primary (`database_host`); a managed role's Secret holds
    the same password as its service's URL. Every service shares Redis database 0, as the local
    stack does (backend publishes the stream data-processor consumes).
    """
    superuser, redis_password = _password(), _password()
    service_passwords = {name: _password() for name in databases}
    role_passwords = {role_name(name): password for name, password in service_passwords.items()}
    data: SecretData = {
        "postgres-superuser": {"password": superuser},
        "postgres-service-passwords": dict(service_passwords),
        "redis-auth": {"password": redis_password},
    }
    # backend's client secret for ai's service tokens, known to auth as well.
    ai_client_secret = _password()
    data["backend-ai-client"] = {"secret": ai_client_secret}
    data["auth-service-clients"] = {"clients": json.dumps({"backend": ai_client_secret})}
    for name, password in service_passwords.items():
        role = role_name(name)
        url = f"postgresql://{role}:{password}@{host}:{POSTGRES_PORT}/{role}"
        data[f"{name}-database"] = {"url": url}
    for name in sorted(needs.keys):
        if name in data:
            continue
        if name in needs.roles:
            role = needs.roles[name]
            data[name] = {"username": role, "password": role_passwords.get(role) or _password()}
        elif name.endswith("-redis"):
            # The URL for one server; the password alone for Sentinel (REDIS_PASSWORD).
            url = f"redis://:{redis_password}@redis:6379/0"
            data[name] = {"url": url, "password": redis_password}
        elif name == "auth-signing-keys":
            data[name] = _signing_key()
        elif name.endswith("-django"):
            data[name] = {"secret-key": secrets.token_urlsafe(50)}
    problems = []
    for name in sorted(needs.keys):
        users = ", ".join(sorted(needs.users[name]))
        if name not in data:
            problems.append(f"Secret {name} (used by {users}) has no CI recipe in {__name__}")
            continue
        missing = sorted(needs.keys[name] - set(data[name]))
        if missing:
            problems.append(f"Secret {name}: no CI value for key(s) {', '.join(missing)} ({users})")
    if problems:
        raise PlanError("\n".join(problems))
    return {name: data[name] for name in sorted(needs.keys)}


def secret_manifests(secrets: SecretData, needs: SecretNeeds, namespace: str) -> list[Manifest]:
    """The generated Secrets as objects; a managed role's is basic-auth, as CloudNativePG wants."""
    return [
        secret_manifest(name, namespace, values, BASIC_AUTH if name in needs.roles else OPAQUE)
        for name, values in secrets.items()
    ]


def secret_manifest(
    name: str, namespace: str, values: Mapping[str, str], secret_type: str = OPAQUE
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "chat-platform",
                "ci.cluster/generated": "true",
            },
        },
        "type": secret_type,
        "stringData": dict(values),
    }
