"""Secrets in git, done safely: SealedSecrets sealed with only the cluster's public certificate
(ci.seal), rendered per environment by the platform chart, and no plaintext secret anywhere in
git, in values or in the rendered manifests."""

from __future__ import annotations

import base64
import datetime
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chartkit import (
    CHARTS,
    DEPLOYABLE_CHARTS,
    ENVIRONMENTS,
    REPO,
    containers,
    kubernetes_version,
    pod_specs,
    problems_of,
    production_revision,
    render_at,
    render_environment,
    require_full_history,
    required_secret_keys,
    required_secret_names,
)
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness.certificates import certificate_pem, self_signed_certificate

SECRET_WORDS = ("password", "passwd", "token", "apikey", "api_key", "privatekey", "private_key")


@pytest.fixture(scope="module")
def controller_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path]:
    """A key pair like the controller's (RSA 4096 there; 2048 keeps the test quick) and its
    self-signed certificate, as `kubeseal --fetch-cert` would return it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = self_signed_certificate(key, "sealed-secret", datetime.timedelta(days=30))
    path = tmp_path_factory.mktemp("controller") / "cert.pem"
    path.write_bytes(certificate_pem(certificate))
    return key, path


def unseal(key: rsa.RSAPrivateKey, namespace: str, name: str, sealed: str) -> bytes:
    """The controller's HybridDecrypt, written from its format, independent of ci.core.sealing."""
    raw = base64.b64decode(sealed)
    (length,) = struct.unpack(">H", raw[:2])
    session_key = key.decrypt(
        raw[2 : 2 + length],
        padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()),
            algorithm=hashes.SHA256(),
            label=f"{namespace}/{name}".encode(),
        ),
    )
    return AESGCM(session_key).decrypt(bytes(12), raw[2 + length :], None)


def seal_cli(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci.seal", *args],
        cwd=REPO / "ci" / "src",
        input=stdin,
        env={**os.environ, "PYTHONPATH": str(REPO / "ci" / "src"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_sealed_value_opens_only_as_its_own_secret(
    controller_key: tuple[rsa.RSAPrivateKey, Path],
) -> None:
    key, cert = controller_key
    value = "postgresql://auth:s3cr3t@postgres:5432/auth"
    result = seal_cli(
        "--cert", str(cert), "--namespace", "chat-staging", "--name", "auth-database",
        "--key", "url", stdin=value + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "s3cr3t" not in result.stdout
    manifest = yaml.safe_load(result.stdout)
    assert problems_of([manifest], kubernetes_version()) == []
    sealed = manifest["spec"]["encryptedData"]["url"]
    assert unseal(key, "chat-staging", "auth-database", sealed).decode() == value
    # Strict scope: the same ciphertext does not open in another namespace or under another name.
    with pytest.raises(ValueError, match="Decryption failed"):
        unseal(key, "chat-production", "auth-database", sealed)
    with pytest.raises(ValueError, match="Decryption failed"):
        unseal(key, "chat-staging", "backend-database", sealed)


def test_tampered_ciphertext_is_rejected(controller_key: tuple[rsa.RSAPrivateKey, Path]) -> None:
    key, cert = controller_key
    result = seal_cli(
        "--cert", str(cert), "--namespace", "chat-staging", "--name", "redis-auth",
        "--key", "password", "--from-env", "THE_VALUE", env={"THE_VALUE": "hunter2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    raw = bytearray(
        base64.b64decode(yaml.safe_load(result.stdout)["spec"]["encryptedData"]["password"])
    )
    raw[-1] ^= 1
    with pytest.raises(InvalidTag):
        unseal(key, "chat-staging", "redis-auth", base64.b64encode(bytes(raw)).decode())


def test_several_keys_come_from_stdin_lines(
    controller_key: tuple[rsa.RSAPrivateKey, Path], tmp_path: Path
) -> None:
    key, cert = controller_key
    out = tmp_path / "secrets" / "postgres-service-passwords.yaml"
    result = seal_cli(
        "--cert", str(cert), "--namespace", "chat-production",
        "--name", "postgres-service-passwords", "--key", "auth", "--key", "backend",
        "--out", str(out), stdin="auth=a=1\nbackend=b\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(out.read_text())["spec"]["encryptedData"]
    opened = {
        k: unseal(key, "chat-production", "postgres-service-passwords", v) for k, v in data.items()
    }
    assert opened == {"auth": b"a=1", "backend": b"b"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--namespace", "Chat_Staging", "--name", "x", "--key", "k"], "namespace"),
        (["--namespace", "ns", "--name", "x", "--key", "bad key"], "key"),
        (["--namespace", "ns", "--name", "x", "--key", "k", "--from-env", "NO_SUCH"], "--from-env"),
        (["--namespace", "ns", "--name", "x", "--key", "k", "--value", "s3cr3t"], "unrecognized"),
    ],
)  # fmt: skip
def test_bad_input_is_named_and_exits_2(
    controller_key: tuple[rsa.RSAPrivateKey, Path], args: list[str], expected: str
) -> None:
    _, cert = controller_key
    result = seal_cli("--cert", str(cert), *args, stdin="value\n")
    assert result.returncode == 2
    assert expected in result.stderr
    assert not result.stdout


def test_a_file_that_is_not_a_certificate_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate\n")
    result = seal_cli(
        "--cert", str(bogus), "--namespace", "a", "--name", "b", "--key", "k", stdin="v"
    )  # fmt: skip
    assert result.returncode == 2
    assert "certificate" in result.stderr


# --- the platform chart renders the environment's SealedSecrets, and only those ---


def platform_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "platform"
    shutil.copytree(CHARTS / "platform", copy, symlinks=True)
    return copy


def render_platform(chart: Path, environment: str, namespace: str) -> list[dict[str, Any]]:
    values = yaml.safe_load((chart / f"values-{environment}.yaml").read_text())
    with helm_python.Chart.load(chart) as loaded:
        files = loaded.render(values, name="platform", namespace=namespace)
    return [doc for text in files.values() for doc in yaml.safe_load_all(text) if doc]


def sealed_file(cert: Path, namespace: str, name: str) -> str:
    result = seal_cli(
        "--cert", str(cert), "--namespace", namespace, "--name", name, "--key", "password",
        stdin="v",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_platform_chart_renders_the_sealed_secrets_of_its_environment(
    controller_key: tuple[rsa.RSAPrivateKey, Path], tmp_path: Path
) -> None:
    _, cert = controller_key
    chart = platform_copy(tmp_path)
    (chart / "secrets" / "staging" / "redis-auth.yaml").write_text(
        sealed_file(cert, "chat-staging", "redis-auth")
    )
    objects = render_platform(chart, "staging", "chat-staging")
    (sealed,) = [o for o in objects if o["kind"] == "SealedSecret"]
    assert sealed["metadata"] == {"name": "redis-auth", "namespace": "chat-staging"}
    assert problems_of(objects, kubernetes_version()) == []
    production = render_platform(chart, "production", "chat-production")
    assert not [o for o in production if o["kind"] == "SealedSecret"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sealed-for-production", "sealed for namespace chat-production"),
        ("kind: Secret\nmetadata: {name: x}\nstringData: {password: x}\n", "only SealedSecrets"),
    ],
)  # fmt: skip
def test_platform_chart_refuses_a_foreign_or_plain_secret(
    controller_key: tuple[rsa.RSAPrivateKey, Path], tmp_path: Path, content: str, message: str
) -> None:
    _, cert = controller_key
    chart = platform_copy(tmp_path)
    if content == "sealed-for-production":
        content = sealed_file(cert, "chat-production", "redis-auth")
    (chart / "secrets" / "staging" / "x.yaml").write_text(content)
    with pytest.raises(Exception, match=message):
        render_platform(chart, "staging", "chat-staging")


# --- no plaintext secret in git, in values or in what the charts render ---


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return [REPO / name for name in listed.stdout.split("\0") if name]


def documents(path: Path) -> Iterator[Any]:
    try:
        yield from yaml.safe_load_all(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # Helm templates and other non-YAML files


def test_no_plaintext_secret_object_is_tracked_in_git() -> None:
    found = []
    for path in tracked_files():
        if path.suffix not in {".yaml", ".yml"} or "tests" in path.relative_to(REPO).parts:
            continue
        for doc in documents(path):
            plain = isinstance(doc, dict) and (doc.get("data") or doc.get("stringData"))
            if plain and doc.get("kind") == "Secret":
                found.append(str(path.relative_to(REPO)))
    assert not found, f"plaintext Secrets in git: {found}"


def secret_looking_values(node: Any, where: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            lowered = str(key).lower()
            reference = lowered.endswith(("secret", "secretname"))  # names a Secret, holds none
            if (
                isinstance(value, str)
                and value
                and not reference
                and any(w in lowered for w in SECRET_WORDS)
            ):
                yield f"{where}.{key}"
            yield from secret_looking_values(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from secret_looking_values(item, f"{where}[{index}]")


def test_no_values_file_holds_a_secret_value() -> None:
    found = []
    for path in sorted(CHARTS.glob("*/values*.yaml")):
        found += list(secret_looking_values(yaml.safe_load(path.read_text()), path.name))
    assert not found, found


def test_secret_value_check_sees_a_password_in_values() -> None:
    assert list(secret_looking_values({"auth": {"adminPassword": "x"}}, "v")) == [
        "v.auth.adminPassword"
    ]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rendered_manifests_hold_no_secret_from_git(environment: str) -> None:
    """No chart renders a Secret, except the platform chart's generated ones, whose values are
    random per render (so nothing of them comes from git or values)."""
    for chart in DEPLOYABLE_CHARTS:
        secrets = render_environment(chart, environment).of_kind("Secret")
        for secret in secrets:
            labels = secret["metadata"].get("labels", {})
            assert chart == "platform", f"{chart}/{environment}"
            assert labels.get("app.kubernetes.io/component") == "generated-secrets"


def preview_secrets() -> dict[str, Any]:
    objects = render_platform(CHARTS / "platform", "preview", "preview-x")
    return {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "Secret"}


def test_generated_preview_secrets_are_random_per_render() -> None:
    first, second = preview_secrets(), preview_secrets()
    assert first, "a preview's platform chart generates its Secrets"
    for name, data in first.items():
        assert data != second[name], f"{name}: the same value on every render comes from git"


def test_committed_sealed_secrets_hold_only_ciphertext() -> None:
    for path in sorted((CHARTS / "platform" / "secrets").glob("*/*.yaml")):
        (sealed,) = [d for d in documents(path) if d]
        assert sealed["kind"] == "SealedSecret", path
        assert not sealed["spec"].get("template", {}).get("data"), path
        for value in sealed["spec"]["encryptedData"].values():
            raw = base64.b64decode(value, validate=True)
            (length,) = struct.unpack(">H", raw[:2])
            assert length >= 256, f"{path}: not an RSA-wrapped session key"


@pytest.mark.parametrize("environment", ["staging", "production", "preview"])
def test_every_secret_an_environment_needs_exists_at_its_first_sync(environment: str) -> None:
    """Generated by the platform chart in the namespace (wave -3, before every workload), or
    sealed in git (outside secrets only): otherwise pods wait in CreateContainerConfigError."""
    needed: set[str] = set()
    for chart in DEPLOYABLE_CHARTS:
        for obj in render_environment(chart, environment).objects:
            needed |= required_secret_names(obj)
    assert needed, "the check finds the references"
    platform = render_environment("platform", environment)
    made = {
        o["metadata"]["name"] for o in platform.objects if o["kind"] in {"Secret", "SealedSecret"}
    }
    assert needed - made == set(), f"{environment}: no Secret {sorted(needed - made)}"


def secret_keys(obj: dict[str, Any]) -> set[str]:
    """The keys a Secret or a SealedSecret will hold."""
    if obj["kind"] == "SealedSecret":
        return set(obj["spec"].get("encryptedData") or {})
    return set(obj.get("data") or {}) | set(obj.get("stringData") or {})


@pytest.mark.parametrize("environment", ["staging", "production", "preview"])
def test_every_secret_key_an_environment_needs_is_made(environment: str) -> None:
    """A Secret without the referenced key stops the pod just as a missing Secret does."""
    needed: set[tuple[str, str]] = set()
    for chart in DEPLOYABLE_CHARTS:
        for obj in render_environment(chart, environment).objects:
            needed |= required_secret_keys(obj)
    platform = render_environment("platform", environment).objects
    made = {
        (o["metadata"]["name"], key)
        for o in platform
        if o["kind"] in {"Secret", "SealedSecret"}
        for key in secret_keys(o)
    }
    made_names = {name for name, _ in made}
    missing = {(name, key) for name, key in needed - made if name in made_names}
    assert missing == set(), (
        f"{environment}: Secrets without the key the pods read: {sorted(missing)}"
    )


def test_secret_key_check_sees_a_missing_key() -> None:
    env = {"valueFrom": {"secretKeyRef": {"name": "x-redis", "key": "password"}}}
    optional = {"valueFrom": {"secretKeyRef": {"name": "y", "key": "k", "optional": True}}}
    role = {"passwordSecret": {"name": "auth-role"}}
    assert required_secret_keys([env, optional, role]) == {
        ("x-redis", "password"),
        ("auth-role", "username"),
        ("auth-role", "password"),
    }
    assert secret_keys({"kind": "Secret", "data": {"url": "eA=="}}) == {"url"}


def test_secret_reference_check_sees_a_missing_one() -> None:
    pod = {"containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]}]}
    optional = {"valueFrom": {"secretKeyRef": {"name": "y", "key": "k", "optional": True}}}
    assert required_secret_names([pod, optional]) == {"x"}
    cluster = {
        "spec": {
            "managed": {"roles": [{"name": "auth", "passwordSecret": {"name": "auth-role"}}]},
            "externalClusters": [{"name": "old", "password": {"name": "old-su", "key": "k"}}],
        }
    }
    assert required_secret_names(cluster) == {"auth-role", "old-su"}


def production_at_its_pin(tmp_path: Path) -> dict[str, list[Any]]:
    """Every deployable chart rendered for production the way Argo CD does it: at the commit
    pinned in argocd/environments/values-production.yaml, not at the tip."""
    require_full_history()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", production_revision(), "charts"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    rendered: dict[str, list[Any]] = {}
    for chart in DEPLOYABLE_CHARTS:
        chart_dir = tmp_path / "charts" / chart
        values = helm_python.values_from_yaml((chart_dir / "values-production.yaml").read_text())
        rendered[chart] = render_at(chart_dir, values, "chat-production", chart)
    return rendered


def test_production_at_its_pinned_commit_generates_every_secret_it_needs(tmp_path: Path) -> None:
    """The Secrets production needs must exist at the commit Argo CD renders it at."""
    objects = [o for chart in production_at_its_pin(tmp_path).values() for o in chart]
    needed = set().union(*(required_secret_names(o) for o in objects))
    made = {o["metadata"]["name"] for o in objects if o["kind"] in {"Secret", "SealedSecret"}}
    assert needed - made == set(), (
        f"production at {production_revision()}: no {sorted(needed - made)}"
    )


def test_production_at_its_pinned_commit_runs_its_data_stores_by_digest(tmp_path: Path) -> None:
    rendered = production_at_its_pin(tmp_path)
    for chart in ("postgres", "redis"):
        images = {
            c["image"] for o in rendered[chart] for spec in pod_specs(o) for c in containers(spec)
        }
        assert images, chart
        for image in images:
            assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"{chart}: {image} by tag only"
