"""The Secrets a CI install needs, found in the rendered charts and generated once per run.

In real environments these Secrets are created out of band (charts/README.md). The throwaway
cluster gets fresh random values on every run: they exist only in the cluster and in memory,
never in git, arguments or logs. Every Secret a chart references must have a recipe here, so a
chart that starts referencing a new Secret fails the plan by name instead of a pod waiting for it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci.core.cluster_plan import Manifest, PlanError, object_name

SecretData = dict[str, dict[str, str]]  # Secret name -> key -> value


@dataclass
class SecretNeeds:
    """Referenced Secrets: name -> keys (an empty set: the whole Secret is mounted)."""

    keys: dict[str, set[str]] = field(default_factory=dict)
    users: dict[str, set[str]] = field(default_factory=dict)

    def add(self, name: str, key: str | None, user: str) -> None:
        self.keys.setdefault(name, set()).update({key} if key else set())
        self.users.setdefault(name, set()).add(user)


def _pod_spec(obj: Manifest) -> Mapping[str, Any] | None:
    spec: Mapping[str, Any] = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    pod = template.get("spec") if isinstance(template, Mapping) else None
    return pod if isinstance(pod, Mapping) else None


def secret_needs(objects: Iterable[Manifest]) -> SecretNeeds:
    """Every non-optional Secret reference of every pod template (env, envFrom, volumes)."""
    needs = SecretNeeds()
    for obj in objects:
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


def generate_secrets(needs: SecretNeeds, databases: Iterable[str]) -> SecretData:
    """Fresh values for every needed Secret; a Secret without a recipe is a PlanError.

    `databases` are the services with a database in the postgres chart (`databases.services`);
    every service shares Redis database 0, as the local stack does (backend publishes the stream
    data-processor consumes).
    """
    superuser, redis_password = _password(), _password()
    service_passwords = {name: _password() for name in databases}
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
        role = name.replace("-", "_")
        url = f"postgresql://{role}:{password}@postgres:5432/{role}"
        data[f"{name}-database"] = {"url": url}
    for name in sorted(needs.keys):
        if name in data:
            continue
        if name.endswith("-redis"):
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


def secret_manifest(name: str, namespace: str, values: Mapping[str, str]) -> Manifest:
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
        "type": "Opaque",
        "stringData": dict(values),
    }
