"""The K3s host files: shellcheck-clean idempotent scripts, a pinned version the chart tests
validate against, a checksum-verified download, and config that matches the platform."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import kubernetes_validate.utils
import pytest
import yaml
from chartkit import (
    APP_CHARTS,
    ENVIRONMENTS,
    K3S,
    REPO,
    Manifest,
    k3s_version,
    kubernetes_version,
    problems_of,
    render_environment,
)

SCRIPTS = sorted(K3S.glob("*.sh"))
EXECUTABLES = [path for path in SCRIPTS if path.name != "lib.sh"]
SHELLCHECK = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")


def test_shellcheck_is_clean_over_k3s_and_ci_scripts() -> None:
    targets = [*SCRIPTS, REPO / ".ci" / "run", *sorted((REPO / ".ci").glob("*.sh"))]
    result = subprocess.run(
        [SHELLCHECK, "--external-sources", "--severity=style", *map(str, targets)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_reports_a_real_problem(tmp_path: Path) -> None:
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    result = subprocess.run([SHELLCHECK, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SC2086" in result.stdout


@pytest.mark.parametrize("script", EXECUTABLES, ids=lambda p: p.name)
def test_scripts_are_strict_and_executable(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert script.stat().st_mode & stat.S_IXUSR


def test_pinned_k3s_version_is_one_kubernetes_validate_bundles() -> None:
    assert re.fullmatch(r"v1\.\d+\.\d+\+k3s\d+", k3s_version())
    minor = ".".join(kubernetes_version().split(".")[:2])
    bundled = {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    assert minor in bundled


def test_upgrade_plan_targets_the_pinned_version() -> None:
    plan = yaml.safe_load((K3S / "upgrade-plan.yaml").read_text())
    assert plan["apiVersion"] == "upgrade.cattle.io/v1"
    assert plan["kind"] == "Plan"
    assert plan["spec"]["version"] == k3s_version()
    assert plan["spec"]["concurrency"] == 1
    assert plan["spec"]["cordon"] is True
    assert plan["spec"]["upgrade"]["image"] == "rancher/k3s-upgrade"


def test_server_config_disables_traefik_and_enforces_pod_security() -> None:
    config = yaml.safe_load((K3S / "config.yaml").read_text())
    assert "traefik" in config["disable"]
    assert config["write-kubeconfig-mode"] == "0600"
    (admission,) = [a for a in config["kube-apiserver-arg"] if a.startswith("admission-control")]
    installed_as = admission.split("=", 1)[1]
    assert Path(installed_as).name == "pod-security.yaml"
    assert (K3S / "pod-security.yaml").is_file()
    assert "pod-security.yaml" in (K3S / "install.sh").read_text()
    pss = yaml.safe_load((K3S / "pod-security.yaml").read_text())
    defaults = pss["plugins"][0]["configuration"]["defaults"]
    assert defaults["enforce"] == "restricted"


def test_registries_hold_no_credentials() -> None:
    registries = yaml.safe_load((K3S / "registries.yaml").read_text())
    assert "ghcr.io" in registries["mirrors"]
    assert "configs" not in registries


def test_bootstrap_installs_what_argocd_needs() -> None:
    text = (K3S / "bootstrap.sh").read_text()
    for needed in (
        "nginx-gateway-fabric",
        "gateway.yaml",
        "cert-manager",
        "argo-cd",
        "argocd/install/values.yaml",
        "argocd/root.yaml",
        "argocd/apps/projects.yaml",
        "upgrade-plan.yaml",
    ):
        assert needed in text, needed
    for path in re.findall(r'"\$REPO_DIR/([^"]+)"', text):
        assert (REPO / path).exists(), path
    for path in re.findall(r'"\$K3S_DIR/([^"]+)"', text):
        assert (K3S / path).exists(), path


def test_uninstall_refuses_without_confirmation() -> None:
    result = subprocess.run(
        ["bash", str(K3S / "uninstall.sh")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "usage" in result.stderr


# --- downloads: real script code from a copy of k3s/ with test pins, curl stubbed ---


def host_arch() -> str:
    return "arm64" if platform.machine() in {"aarch64", "arm64"} else "amd64"


def k3s_copy(tmp_path: Path, **pins: str) -> Path:
    """k3s/ copied with some versions.env pins replaced (the scripts read pins only there)."""
    copy = tmp_path / "k3s"
    shutil.copytree(K3S, copy)
    env = copy / "versions.env"
    text = env.read_text()
    for name, value in pins.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        assert count == 1, name
    env.write_text(text)
    return copy


def curl_stub(tmp_path: Path, served: Path) -> Path:
    """A curl on PATH that serves files by their URL's basename from `served` and logs URLs."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    curl = stubs / "curl"
    curl.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 1 ]; do [ "$1" = --output ] && out=$2; shift; done\n'
        f'echo "$1" >> "{tmp_path}/urls.log"\n'
        f'cp "{served}/$(basename "$1")" "$out"\n'
    )
    curl.chmod(0o755)
    return stubs


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A fake K3s release directory with the binary for this machine's architecture."""
    assets = tmp_path / "release"
    assets.mkdir()
    binary = "k3s" if host_arch() == "amd64" else "k3s-arm64"
    fake = f'#!/bin/sh\necho "k3s version {k3s_version()} (0123abcd)"\necho "go version go1.24"\n'
    (assets / binary).write_text(fake)
    return assets


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_download(release: Path, tmp_path: Path, pin: str) -> subprocess.CompletedProcess[str]:
    k3s = k3s_copy(tmp_path, **{f"K3S_SHA256_{host_arch().upper()}": pin})
    target = tmp_path / "bin" / "k3s"
    target.parent.mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", "-c", f'source "{k3s / "install.sh"}"; download_k3s; installed_version'],
        env={
            **os.environ,
            "PATH": f"{curl_stub(tmp_path, release)}:{os.environ['PATH']}",
            "K3S_BIN": str(target),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def the_binary(release: Path) -> Path:
    (binary,) = release.iterdir()
    return binary


def test_download_installs_a_binary_matching_its_pin(release: Path, tmp_path: Path) -> None:
    result = run_download(release, tmp_path, sha256_of(the_binary(release)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == k3s_version()
    assert (tmp_path / "bin" / "kubectl").resolve() == (tmp_path / "bin" / "k3s")
    base = f"https://github.com/k3s-io/k3s/releases/download/{k3s_version().replace('+', '%2B')}"
    urls = (tmp_path / "urls.log").read_text().split()
    # Only the binary: no checksum file from the same release is trusted.
    assert urls == [f"{base}/{the_binary(release).name}"]


def test_download_refuses_a_tampered_binary(release: Path, tmp_path: Path) -> None:
    pin = sha256_of(the_binary(release))
    the_binary(release).write_text("#!/bin/sh\necho evil\n")
    result = run_download(release, tmp_path, pin)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr
    assert not (tmp_path / "bin" / "k3s").exists()


def test_download_refuses_without_a_pin(release: Path, tmp_path: Path) -> None:
    result = run_download(release, tmp_path, "")
    assert result.returncode != 0
    assert f"K3S_SHA256_{host_arch().upper()} is not pinned" in result.stderr
    assert not (tmp_path / "urls.log").exists(), "nothing may be downloaded without a pin"
    assert not (tmp_path / "bin" / "k3s").exists()


def test_download_refuses_a_malformed_pin(release: Path, tmp_path: Path) -> None:
    result = run_download(release, tmp_path, "not-a-checksum")
    assert result.returncode != 0
    assert "is not a SHA-256" in result.stderr


def test_every_architecture_has_its_own_pins() -> None:
    text = (K3S / "versions.env").read_text()
    names = set(re.findall(r"^([A-Z0-9_]+)=", text, re.MULTILINE))
    for artefact in ("K3S_SHA256", "K3S_AIRGAP_IMAGES_SHA256", "HELM_SHA256"):
        assert {f"{artefact}_AMD64", f"{artefact}_ARM64"} <= names
    values = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    for name, value in values.items():
        if name.endswith("_SHA256") or "_SHA256_" in name:
            assert value == "" or re.fullmatch(r"[0-9a-f]{64}", value), name
    scripts = " ".join(p.read_text() for p in SCRIPTS)
    for name in values:
        if "SHA256" in name and not name.endswith(("_AMD64", "_ARM64")):
            assert name in scripts, f"{name} is pinned but never checked"


def test_config_files_are_copied_only_when_changed(tmp_path: Path) -> None:
    source, target = tmp_path / "a.yaml", tmp_path / "etc" / "a.yaml"
    source.write_text("x: 1\n")
    script = f'source "{K3S / "lib.sh"}"; install_if_changed "{source}" "{target}" 0600'
    runs = [
        subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    assert [r.stdout.strip() for r in runs] == ["changed", ""]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def run_issuer(tmp_path: Path, email: str) -> subprocess.CompletedProcess[str]:
    """bootstrap.sh's install_cluster_issuer with kubectl replaced by a stub that keeps stdin."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    kubectl = stubs / "kubectl"
    kubectl.write_text(f'#!/bin/sh\ncat > "{tmp_path}/applied.yaml"\n')
    kubectl.chmod(0o755)
    return subprocess.run(
        ["bash", "-c", f'source "{K3S / "bootstrap.sh"}"; install_cluster_issuer'],
        env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "ACME_EMAIL": email},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cluster_issuer_solves_through_the_gateway_it_issues_for(tmp_path: Path) -> None:
    result = run_issuer(tmp_path, "ops@example.com")
    assert result.returncode == 0, result.stderr
    issuer = yaml.safe_load((tmp_path / "applied.yaml").read_text())
    assert issuer["kind"] == "ClusterIssuer"
    assert issuer["spec"]["acme"]["email"] == "ops@example.com"
    assert problems_of([issuer], kubernetes_version()) == []
    (solver,) = issuer["spec"]["acme"]["solvers"]
    (parent,) = solver["http01"]["gatewayHTTPRoute"]["parentRefs"]
    gateway = production_gateway()
    assert (parent["name"], parent["namespace"]) == (
        gateway["metadata"]["name"],
        gateway["metadata"]["namespace"],
    )
    http = listener(gateway, parent["sectionName"])
    assert (http["protocol"], http["port"]) == ("HTTP", 80)
    # cert-manager creates its solver routes in the Certificate's (= the Gateway's) namespace.
    assert http["allowedRoutes"]["namespaces"]["from"] == "Same"
    annotations = gateway["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == issuer["metadata"]["name"]
    values = yaml.safe_load((K3S / "cert-manager-values.yaml").read_text())
    assert values["config"]["enableGatewayAPI"] is True


def test_cluster_issuer_refuses_an_odd_email(tmp_path: Path) -> None:
    result = run_issuer(tmp_path, "ops@example.com/evil")
    assert result.returncode != 0
    assert "not an e-mail address" in result.stderr
    assert not (tmp_path / "applied.yaml").exists()


# --- the Gateway: one per cluster, a listener per environment, TLS through cert-manager ---


def manifests(name: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all((K3S / name).read_text()) if doc]


def production_gateway() -> Manifest:
    (gateway,) = [o for o in manifests("gateway.yaml") if o["kind"] == "Gateway"]
    return gateway


def listener(gateway: Manifest, name: str) -> Manifest:
    listeners: list[Manifest] = gateway["spec"]["listeners"]
    (found,) = [item for item in listeners if item["name"] == name]
    return found


@pytest.mark.parametrize("name", ["gateway.yaml", "gateway-dev.yaml"])
def test_gateway_files_are_valid_gateway_api_objects(name: str) -> None:
    objects = manifests(name)
    assert objects
    assert problems_of(objects, kubernetes_version()) == []


def test_each_environment_attaches_to_a_listener_of_its_own_host_and_namespace() -> None:
    gateway = production_gateway()
    for environment in ("staging", "production", "preview"):
        for chart in APP_CHARTS:
            (route,) = render_environment(chart, environment).of_kind("HTTPRoute")
            (parent,) = route["spec"]["parentRefs"]
            assert (parent["name"], parent["namespace"]) == ("chat", "nginx-gateway")
            https = listener(gateway, parent["sectionName"])
            assert https["protocol"] == "HTTPS"
            assert https["tls"]["mode"] == "Terminate"
            namespaces = https["allowedRoutes"]["namespaces"]
            assert namespaces["from"] == "Selector"
            labels = namespaces["selector"]["matchLabels"]
            if environment == "preview":
                assert https["hostname"].startswith("*.")
                assert labels == {"chat-platform/environment": "preview"}
                (namespace,) = render_environment("platform", "preview").of_kind("Namespace")
                assert namespace["metadata"]["labels"]["chat-platform/environment"] == "preview"
            else:
                assert route["spec"]["hostnames"] == [https["hostname"]]
                assert labels == {"kubernetes.io/metadata.name": f"chat-{environment}"}


def test_plain_http_only_redirects_to_https() -> None:
    (redirect,) = [
        o for o in manifests("gateway.yaml") if o["metadata"]["name"] == "https-redirect"
    ]
    (parent,) = redirect["spec"]["parentRefs"]
    assert parent["sectionName"] == "http"
    (rule,) = redirect["spec"]["rules"]
    (only_filter,) = rule["filters"]
    assert only_filter["requestRedirect"] == {"scheme": "https", "statusCode": 301}
    assert "backendRefs" not in rule


def test_dev_gateway_serves_the_dev_routes_over_http() -> None:
    (gateway,) = manifests("gateway-dev.yaml")
    production = production_gateway()
    assert gateway["metadata"]["name"] == production["metadata"]["name"]
    assert gateway["metadata"]["namespace"] == production["metadata"]["namespace"]
    assert gateway["spec"]["gatewayClassName"] == production["spec"]["gatewayClassName"]
    for chart in APP_CHARTS:
        (route,) = render_environment(chart, "dev").of_kind("HTTPRoute")
        (parent,) = route["spec"]["parentRefs"]
        http = listener(gateway, parent["sectionName"])
        assert (http["protocol"], http["port"]) == ("HTTP", 80)


def test_gateway_class_and_client_address_settings_of_the_controller() -> None:
    values = yaml.safe_load((K3S / "nginx-gateway-fabric-values.yaml").read_text())
    assert (
        values["nginxGateway"]["gatewayClassName"]
        == production_gateway()["spec"]["gatewayClassName"]
    )
    assert values["nginxGateway"]["snippets"]["enable"] is False
    service = values["nginx"]["service"]
    assert service == {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}


def test_cluster_cidr_is_what_the_services_trust_for_forwarded_headers() -> None:
    config = yaml.safe_load((K3S / "config.yaml").read_text())
    for chart in ("auth", "backend", "ai", "media-storage", "data-processor"):
        for environment in ENVIRONMENTS:
            (config_map,) = render_environment(chart, environment).of_kind("ConfigMap")
            assert config_map["data"]["FORWARDED_ALLOW_IPS"] == config["cluster-cidr"], chart
