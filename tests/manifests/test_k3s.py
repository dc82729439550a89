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
from typing import Any

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


def upgrade_plans() -> dict[str, Manifest]:
    plans = [doc for doc in yaml.safe_load_all((K3S / "upgrade-plan.yaml").read_text()) if doc]
    return {plan["metadata"]["name"]: plan for plan in plans}


def selects(plan: Manifest, labels: dict[str, str]) -> bool:
    """A Plan's nodeSelector (matchExpressions In / DoesNotExist) over a node's labels."""
    for rule in plan["spec"]["nodeSelector"]["matchExpressions"]:
        if rule["operator"] == "In" and labels.get(rule["key"]) not in rule["values"]:
            return False
        if rule["operator"] == "DoesNotExist" and rule["key"] in labels:
            return False
        assert rule["operator"] in {"In", "DoesNotExist"}, rule
    return True


def test_upgrade_plans_target_the_pinned_version() -> None:
    plans = upgrade_plans()
    assert set(plans) == {"k3s-server", "k3s-agent"}
    for plan in plans.values():
        assert plan["apiVersion"] == "upgrade.cattle.io/v1"
        assert plan["kind"] == "Plan"
        assert plan["metadata"]["namespace"] == "system-upgrade"
        assert plan["spec"]["version"] == k3s_version()
        assert plan["spec"]["concurrency"] == 1, "one node at a time: etcd keeps its quorum"
        assert plan["spec"]["cordon"] is True
        assert plan["spec"]["upgrade"]["image"] == "rancher/k3s-upgrade"


# The system-upgrade-controller release whose Plan CRD is vendored (chartkit: VENDORED_CRDS).
PLAN_CRD = REPO / "tests/crds/system-upgrade-controller/upgrade.cattle.io_plans.yaml"
PLAN_CRD_VERSION = "v0.16.3"


def test_the_vendored_plan_crd_is_the_pinned_controllers() -> None:
    pinned = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", (K3S / "versions.env").read_text(), re.M))
    assert pinned["SYSTEM_UPGRADE_CONTROLLER_VERSION"] == PLAN_CRD_VERSION, (
        "vendor the Plan CRD of the new release into tests/crds/system-upgrade-controller"
    )
    (definition,) = [d for d in yaml.safe_load_all(PLAN_CRD.read_text()) if d]
    assert definition["metadata"]["name"] == "plans.upgrade.cattle.io"


def test_upgrade_plans_are_valid_plans_of_the_pinned_controller() -> None:
    assert problems_of(list(upgrade_plans().values()), kubernetes_version()) == []


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (["spec", "cordone"], True, "'cordone' was unexpected"),  # a typo of cordon
        (["spec", "concurrency"], "1", "'1' is not of type 'integer'"),
        (["spec", "upgrade", "version"], "v1.35.5+k3s1", "'version' was unexpected"),  # misplaced
        (["spec", "drain", "force"], "yes", "'yes' is not of type 'boolean'"),
        (["spec", "nodeSelector", "matchExpressions", 0, "values"], "true", "not of type 'array'"),
    ],
)
def test_a_plan_with_a_wrong_field_is_refused(
    field: list[str | int], value: object, problem: str
) -> None:
    plan = upgrade_plans()["k3s-server"]
    *parents, leaf = field
    target: Any = plan
    for key in parents:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target[leaf] = value
    problems = problems_of([plan], kubernetes_version())
    assert any(problem in p for p in problems), problems


def test_servers_upgrade_first_then_agents_and_every_node_once() -> None:
    plans = upgrade_plans()
    agent = plans["k3s-agent"]["spec"]
    # The agents' prepare step waits until the server Plan is done on every server.
    assert agent["prepare"] == {"image": "rancher/k3s-upgrade", "args": ["prepare", "k3s-server"]}
    assert "prepare" not in plans["k3s-server"]["spec"]
    # Labels K3s gives a server (etcd) and an agent.
    server = {
        "node-role.kubernetes.io/control-plane": "true",
        "node-role.kubernetes.io/etcd": "true",
    }
    for labels, wanted in ((server, "k3s-server"), ({"kubernetes.io/os": "linux"}, "k3s-agent")):
        assert [name for name, plan in plans.items() if selects(plan, labels)] == [wanted]


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
    text = (K3S / "bootstrap.sh").read_text() + (K3S / "lib.sh").read_text()
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
    crd_files = re.search(r"GATEWAY_API_CRD_FILES=\((.*?)\)", scripts, re.DOTALL)
    assert crd_files is not None
    crd_pins = {f"GATEWAY_API_CRD_SHA256_{n.upper()}" for n in crd_files.group(1).split()}
    assert crd_pins == {n for n in values if n.startswith("GATEWAY_API_CRD_SHA256_")}
    for name in set(values) - crd_pins:
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


# --- install.sh on a fake root: re-runs keep what was configured, restart only on change ---

SYSTEMCTL_STUB = """#!/bin/sh
echo "$*" >> "$STUB_LOG/systemctl.log"
case "$1" in
  is-active) [ -f "$STUB_LOG/active" ] ;;
  restart) touch "$STUB_LOG/active"; mkdir -p "$K3S_ROOT/etc/rancher/k3s"
           cp "$STUB_LOG/../k3s.yaml" "$K3S_ROOT/etc/rancher/k3s/k3s.yaml" ;;
  *) exit 0 ;;
esac
"""
# K3s is one binary; `k3s kubectl` is kubectl: `kubectl config` runs the real client, questions
# to the (absent) API server are answered yes.
FAKE_K3S = """#!/bin/sh
case "$1" in
  --version) echo "k3s version {version} (0123abcd)" ;;
  kubectl) shift; [ "$1" = config ] && exec "$REAL_KUBECTL" "$@"; exit 0 ;;
  *) exit 0 ;;
esac
"""
# /etc/rancher/k3s/k3s.yaml as K3s writes it: everything named "default".
K3S_KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Y2E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
"""


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """A fake root, stub systemctl and curl, a fake release, and k3s/ pinned to its binary."""
    root, logs, release = tmp_path / "root", tmp_path / "logs", tmp_path / "release"
    for directory in (root, logs, release):
        directory.mkdir()
    binary = release / ("k3s" if host_arch() == "amd64" else "k3s-arm64")
    binary.write_text(FAKE_K3S.replace("{version}", k3s_version()))
    images = release / f"k3s-airgap-images-{host_arch()}.tar.zst"
    images.write_bytes(b"\x28\xb5\x2f\xfd images")
    stubs = curl_stub(tmp_path, release)
    (stubs / "systemctl").write_text(SYSTEMCTL_STUB)
    (stubs / "systemctl").chmod(0o755)
    arch = host_arch().upper()
    pins = {f"K3S_SHA256_{arch}": sha256_of(binary)}
    pins[f"K3S_AIRGAP_IMAGES_SHA256_{arch}"] = sha256_of(images)
    k3s = k3s_copy(tmp_path, **pins)
    (tmp_path / "k3s.yaml").write_text(K3S_KUBECONFIG)
    return {"root": root, "logs": logs, "release": release, "stubs": stubs, "k3s": k3s}


def run_install(host: dict[str, Path], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run(
        ["bash", str(host["k3s"] / "install.sh"), *args],
        env={
            **base,
            "PATH": f"{host['stubs']}:{os.environ['PATH']}",
            "K3S_ROOT": str(host["root"]),
            "STUB_LOG": str(host["logs"]),
            "KUBECONFIG_USER": "root",
            "REAL_KUBECTL": str(Path(sys.executable).parent / "kubectl"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def systemctl_calls(host: dict[str, Path]) -> list[str]:
    log = host["logs"] / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def registries(host: dict[str, Path]) -> dict[str, Any]:
    path = host["root"] / "etc/rancher/k3s/registries.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_rerun_without_registry_variables_keeps_credentials_and_k3s_running(
    host: dict[str, Path],
) -> None:
    password = 'p"ss\\word with spaces'
    first = run_install(host, REGISTRY_USERNAME="bot", REGISTRY_PASSWORD=password)
    assert first.returncode == 0, first.stderr
    assert "restart k3s.service" in systemctl_calls(host)
    auth = registries(host)["configs"]["ghcr.io"]["auth"]
    assert auth == {"username": "bot", "password": password}
    assert (host["root"] / "root/.kube/config").is_file()

    restarts = systemctl_calls(host).count("restart k3s.service")
    second = run_install(host)
    assert second.returncode == 0, second.stderr
    assert registries(host)["configs"]["ghcr.io"]["auth"] == auth
    assert systemctl_calls(host).count("restart k3s.service") == restarts
    assert "nothing changed" in second.stderr
    assert (host["logs"].parent / "urls.log").read_text().count("\n") == 1, "downloaded again"


def kubectl_config(config: Path, *args: str) -> str:
    kubectl = Path(sys.executable).parent / "kubectl"
    return subprocess.run(
        [str(kubectl), "config", *args],
        env={**os.environ, "KUBECONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_install_merges_the_k3s_context_and_keeps_the_users_others(
    host: dict[str, Path], tmp_path: Path
) -> None:
    config = host["root"] / "root/.kube/config"
    config.parent.mkdir(parents=True)
    other = K3S_KUBECONFIG.replace("default", "work").replace("127.0.0.1:6443", "work:443")
    config.write_text(other)
    for _ in range(2):
        result = run_install(host)
        assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert sorted(kubectl_config(config, "get-contexts", "-o", "name").split()) == ["k3s", "work"]
    assert kubectl_config(config, "current-context").strip() == "work"
    servers = kubectl_config(config, "view", "-o", "jsonpath={.clusters[*].cluster.server}")
    assert sorted(servers.split()) == ["https://127.0.0.1:6443", "https://work:443"]
    flattened = yaml.safe_load(kubectl_config(config, "view", "--raw"))
    (k3s_user,) = [u for u in flattened["users"] if u["name"] == "k3s"]
    assert k3s_user["user"]["client-key-data"] == "a2V5"


def test_install_on_a_fresh_machine_makes_k3s_the_current_context(host: dict[str, Path]) -> None:
    assert run_install(host).returncode == 0
    config = host["root"] / "root/.kube/config"
    assert kubectl_config(config, "current-context").strip() == "k3s"


def test_a_changed_config_file_restarts_k3s(host: dict[str, Path]) -> None:
    assert run_install(host).returncode == 0
    restarts = systemctl_calls(host).count("restart k3s.service")
    config = host["k3s"] / "config.yaml"
    config.write_text(config.read_text() + "node-label:\n  - changed=yes\n")
    result = run_install(host)
    assert result.returncode == 0, result.stderr
    assert systemctl_calls(host).count("restart k3s.service") == restarts + 1


def test_a_failing_config_step_fails_the_install_and_restarts_nothing(
    host: dict[str, Path],
) -> None:
    (host["root"] / "etc/rancher").mkdir(parents=True)
    (host["root"] / "etc/rancher/k3s").write_text("a file where the directory should be\n")
    result = run_install(host)
    assert result.returncode != 0
    calls = systemctl_calls(host)
    assert not any(call.startswith(("restart", "daemon-reload", "enable")) for call in calls)


def test_one_registry_variable_alone_is_refused(host: dict[str, Path]) -> None:
    result = run_install(host, REGISTRY_USERNAME="bot")
    assert result.returncode != 0
    assert "set both REGISTRY_USERNAME and REGISTRY_PASSWORD" in result.stderr
    assert not systemctl_calls(host)


def test_airgap_install_uses_the_directory_only(host: dict[str, Path]) -> None:
    (host["stubs"] / "curl").write_text('#!/bin/sh\necho "no network" >&2\nexit 7\n')
    result = run_install(host, "--airgap", str(host["release"]))
    assert result.returncode == 0, result.stderr
    images = (
        host["root"] / f"var/lib/rancher/k3s/agent/images/k3s-airgap-images-{host_arch()}.tar.zst"
    )
    assert images.read_bytes() == (host["release"] / images.name).read_bytes()
    assert (host["root"] / "usr/local/bin/k3s").is_file()


def test_airgap_install_refuses_a_tampered_image_archive(host: dict[str, Path]) -> None:
    (host["release"] / f"k3s-airgap-images-{host_arch()}.tar.zst").write_bytes(b"evil")
    result = run_install(host, "--airgap", str(host["release"]))
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr
    assert not (host["root"] / "var/lib/rancher/k3s/agent/images").exists()
    assert not systemctl_calls(host)


# --- install.sh --role: a multi-server cluster on embedded etcd, and agents ---

ADDRESS = "k3s.example.com"
JOIN = ["--server", f"https://{ADDRESS}:6443"]
TOKEN = "K10-test-token-never-shown"
INSTALLED = {
    "config": "etc/rancher/k3s/config.yaml",
    "cluster": "etc/rancher/k3s/config.yaml.d/50-cluster.yaml",
    "token": "etc/rancher/k3s/cluster-token",
}


def token_file(tmp_path: Path, mode: int = 0o600, text: str = TOKEN + "\n") -> Path:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


def installed(host: dict[str, Path], name: str) -> Path:
    return host["root"] / INSTALLED.get(name, name)


def loaded(host: dict[str, Path], name: str) -> dict[str, Any]:
    path = installed(host, name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def every_file_and_output(host: dict[str, Path], *results: subprocess.CompletedProcess[str]) -> str:
    """What anyone could read: outputs, logs, the unit, every config file but the token's."""
    texts = [r.stdout + r.stderr for r in results]
    tokens = {installed(host, "token"), host["root"] / "var/lib/rancher/k3s/backup/cluster-token"}
    for path in [*host["root"].rglob("*"), *host["logs"].rglob("*")]:
        if path.is_file() and path not in tokens:
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_first_server_starts_etcd_with_its_token_beside_the_snapshots(
    host: dict[str, Path],
) -> None:
    result = run_install(host, "--role", "server-init", "--address", ADDRESS)
    assert result.returncode == 0, result.stderr

    cluster = loaded(host, "cluster")
    assert cluster["cluster-init"] is True
    assert "server" not in cluster
    assert cluster["token-file"] == "/" + INSTALLED["token"]
    assert cluster["tls-san+"] == [ADDRESS], "appended to config.yaml's names, not replacing"
    assert cluster["node-label"] == ["chat-platform/role=server"]
    assert installed(host, "config").read_text() == (K3S / "config.yaml").read_text()
    token = installed(host, "token")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", token.read_text())
    # A restore needs the token the snapshots were taken with: it sits beside them.
    snapshots = Path(cluster["etcd-snapshot-dir"])
    backup = host["root"] / snapshots.parent.relative_to("/") / "cluster-token"
    assert backup.read_text() == token.read_text()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert (host["root"] / snapshots.relative_to("/")).is_dir()
    assert cluster["etcd-snapshot-retention"] > 0
    assert cluster["etcd-snapshot-schedule-cron"]
    assert token.read_text() not in every_file_and_output(host, result)
    assert "restart k3s.service" in systemctl_calls(host)

    restarts = systemctl_calls(host).count("restart k3s.service")
    again = run_install(host, "--role", "server-init", "--address", ADDRESS)
    assert again.returncode == 0, again.stderr
    assert systemctl_calls(host).count("restart k3s.service") == restarts
    assert token.read_text() == backup.read_text(), "the token stays the same on a re-run"


def test_joining_server_reads_its_token_from_a_file_and_never_shows_it(
    host: dict[str, Path], tmp_path: Path
) -> None:
    source = token_file(tmp_path)
    args = ["--role", "server", *JOIN, "--servers", "3"]
    result = run_install(host, *args, K3S_TOKEN_FILE=str(source))
    assert result.returncode == 0, result.stderr

    cluster = loaded(host, "cluster")
    assert cluster["server"] == f"https://{ADDRESS}:6443"
    assert "cluster-init" not in cluster
    assert cluster["tls-san+"] == [ADDRESS]
    assert installed(host, "token").read_text() == TOKEN
    assert stat.S_IMODE(installed(host, "token").stat().st_mode) == 0o600
    assert installed(host, "config").read_text() == (K3S / "config.yaml").read_text()
    assert TOKEN not in every_file_and_output(host, result)
    # A re-run needs no token file: the installed one is kept.
    again = run_install(host, *args)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stderr


def test_agent_runs_the_agent_unit_with_a_config_of_its_own(
    host: dict[str, Path], tmp_path: Path
) -> None:
    result = run_install(host, "--role", "agent", *JOIN, K3S_TOKEN_FILE=str(token_file(tmp_path)))
    assert result.returncode == 0, result.stderr

    assert loaded(host, "config") == {
        "server": f"https://{ADDRESS}:6443",
        "token-file": "/" + INSTALLED["token"],
        "node-label": ["chat-platform/role=agent"],
    }
    unit = (host["root"] / "etc/systemd/system/k3s-agent.service").read_text()
    assert "\nExecStart=/usr/local/bin/k3s agent\n" in unit
    assert "\nType=exec\n" in unit
    assert not (host["root"] / "etc/systemd/system/k3s.service").exists()
    assert not installed(host, "cluster").exists()
    assert "restart k3s-agent.service" in systemctl_calls(host)
    assert not any("k3s.service" in call for call in systemctl_calls(host))
    assert TOKEN not in every_file_and_output(host, result)


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_token_file_others_can_read_is_refused(
    host: dict[str, Path], tmp_path: Path, mode: int
) -> None:
    source = token_file(tmp_path, mode)
    result = run_install(host, "--role", "agent", *JOIN, K3S_TOKEN_FILE=str(source))
    assert result.returncode == 1
    assert f"K3S_TOKEN_FILE {source} is readable by others" in result.stderr
    assert TOKEN not in result.stderr + result.stdout
    assert not systemctl_calls(host)
    assert not (host["root"] / "etc").exists(), "nothing half-written"


@pytest.mark.parametrize("role", ["server", "agent"])
def test_joining_without_a_token_file_is_a_usage_error(host: dict[str, Path], role: str) -> None:
    extra = ["--servers", "3"] if role == "server" else []
    result = run_install(host, "--role", role, *JOIN, *extra)
    assert result.returncode == 2
    assert "K3S_TOKEN_FILE" in result.stderr
    assert not systemctl_calls(host)


def test_another_token_on_a_rerun_is_refused(host: dict[str, Path], tmp_path: Path) -> None:
    join = ["--role", "agent", *JOIN]
    assert run_install(host, *join, K3S_TOKEN_FILE=str(token_file(tmp_path))).returncode == 0
    other = token_file(tmp_path, text="K10-another-token\n")
    result = run_install(host, *join, K3S_TOKEN_FILE=str(other))
    assert result.returncode == 1
    assert "k3s token rotate" in result.stderr
    assert installed(host, "token").read_text() == TOKEN


@pytest.mark.parametrize("count", ["1", "2", "4", "three"])
def test_a_server_joins_only_towards_an_odd_count_of_three_or_more(
    host: dict[str, Path], tmp_path: Path, count: str
) -> None:
    source = token_file(tmp_path)
    result = run_install(
        host, "--role", "server", *JOIN, "--servers", count, K3S_TOKEN_FILE=str(source)
    )
    assert result.returncode == 2
    assert "odd number of servers" in result.stderr or "--servers N" in result.stderr
    assert not systemctl_calls(host)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "server-init"], "needs --address HOST"),
        (["--role", "server-init", "--address", "bad host"], "needs --address HOST"),
        (["--role", "agent", "--server", "http://k3s.example.com:6443"], "needs --server https"),
        (["--role", "agent", "--server", "https://k3s.example.com"], "needs --server https"),
        (["--role", "controller"], "one of server-init, server, agent"),
        (["--server", "https://k3s.example.com:6443"], "need a --role"),
        (["--role"], "--role needs a value"),
    ],
)
def test_bad_role_arguments_are_usage_errors(
    host: dict[str, Path], args: list[str], message: str
) -> None:
    result = run_install(host, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage:" in result.stderr
    assert not systemctl_calls(host)


def test_a_servers_own_drop_in_may_not_change_a_cluster_wide_setting(
    host: dict[str, Path], tmp_path: Path
) -> None:
    drop_in = host["root"] / "etc/rancher/k3s/config.yaml.d/90-local.yaml"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text("node-ip: 10.0.0.5\ncluster-cidr: 10.99.0.0/16\n")
    source = token_file(tmp_path)
    result = run_install(
        host, "--role", "server", *JOIN, "--servers", "3", K3S_TOKEN_FILE=str(source)
    )
    assert result.returncode == 1
    assert f"{drop_in} sets cluster-cidr" in result.stderr
    assert not systemctl_calls(host)
    drop_in.write_text("node-ip: 10.0.0.5\n")  # a node's own setting is its business
    result = run_install(
        host, "--role", "server", *JOIN, "--servers", "3", K3S_TOKEN_FILE=str(source)
    )
    assert result.returncode == 0, result.stderr


def leave_sqlite_state(host: dict[str, Path]) -> Path:
    """What a single K3s server leaves: its SQLite datastore and the token encrypting it."""
    db = host["root"] / "var/lib/rancher/k3s/server/db"
    db.mkdir(parents=True)
    (db / "state.db").write_bytes(b"SQLite format 3\x00 rows")
    (db / "state.db-wal").write_bytes(b"wal")
    (db.parent / "token").write_text("K10abc::server:single-node-secret\n")
    return db


def test_a_single_node_converts_in_place_to_the_first_server(host: dict[str, Path]) -> None:
    assert run_install(host).returncode == 0
    db = leave_sqlite_state(host)

    result = run_install(host, "--role", "server-init", "--address", ADDRESS)
    assert result.returncode == 0, result.stderr
    assert "converting the single node's SQLite datastore to embedded etcd" in result.stderr
    assert loaded(host, "cluster")["cluster-init"] is True
    # The datastore is encrypted with the node's token: the cluster keeps it.
    assert installed(host, "token").read_text() == "K10abc::server:single-node-secret"
    copy = host["root"] / "var/lib/rancher/k3s/backup/sqlite-before-etcd"
    assert (copy / "state.db").read_bytes() == (db / "state.db").read_bytes()
    assert (copy / "state.db-wal").is_file()
    calls = systemctl_calls(host)
    stop = calls.index("stop k3s.service")
    assert "restart k3s.service" in calls[stop:], "copied while stopped, then restarted"

    (db / "etcd").mkdir()  # what K3s does when it restarts with cluster-init
    again = run_install(host, "--role", "server-init", "--address", ADDRESS)
    assert again.returncode == 0, again.stderr
    assert "converting" not in again.stderr
    assert systemctl_calls(host).count("stop k3s.service") == 1
    single = run_install(host)
    assert single.returncode == 1
    assert "server of a multi-server cluster" in single.stderr


def test_a_single_node_is_not_joined_to_another_cluster(
    host: dict[str, Path], tmp_path: Path
) -> None:
    leave_sqlite_state(host)
    source = token_file(tmp_path)
    for role, extra in (("server", ["--servers", "3"]), ("agent", [])):
        result = run_install(host, "--role", role, *JOIN, *extra, K3S_TOKEN_FILE=str(source))
        assert result.returncode == 1
        assert "uninstall.sh" in result.stderr
    assert not systemctl_calls(host)


# --- uninstall.sh on a fake root: what K3s's killall and uninstall scripts do ---

PGREP_STUB = """#!/bin/sh
# A shim (100) running a container (101, whose child is 103) and a second container (102).
case "$1 $2" in
  "-f "*) echo 100 ;;
  "-P 100") printf '101\\n102\\n' ;;
  "-P 101") echo 103 ;;
  *) exit 1 ;;
esac
"""
IP_STUB = """#!/bin/sh
echo "ip $*" >> "$STUB_LOG/ip.log"
case "$*" in
  "netns list") printf 'cni-1a2b (id: 0)\\ncni-3c4d (id: 1)\\nmy-own-ns\\n' ;;
  "link show cni0"|"link show flannel.1") exit 0 ;;
  "link show "*) exit 1 ;;
esac
"""
RULES = """*filter
:INPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:FLANNEL-FWD - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp --dport 22 -j ACCEPT
-A FORWARD -s 10.42.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
-A FORWARD -j CNI-FORWARD
COMMIT
"""


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    """A fake root as K3s leaves it, and stubs for the commands uninstall.sh runs."""
    root, logs, stubs = tmp_path / "root", tmp_path / "logs", tmp_path / "stubs"
    for directory in (root, logs, stubs):
        directory.mkdir()
    files = [
        "usr/local/bin/k3s",
        "usr/local/bin/unrelated-tool",
        "etc/rancher/k3s/config.yaml",
        "etc/systemd/system/k3s.service",
        "etc/systemd/system/k3s-agent.service",
        "var/lib/rancher/k3s/agent/containerd/x",
        "var/lib/kubelet/pods/p1/volumes/v",
        "var/lib/cni/networks/cbr0/10.42.0.5",
        "run/flannel/subnet.env",
        "etc/hostname",
    ]
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")
    (root / "usr/local/bin/kubectl").symlink_to(root / "usr/local/bin/k3s")
    mounts = [
        "run/k3s/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm",
        "run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs",
        "var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/token",
        "run/netns/cni-1a2b",
    ]
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/mounts").write_text(
        "".join(f"tmpfs {root}/{m} tmpfs rw 0 0\n" for m in mounts)
        + "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /home ext4 rw 0 0\n"
    )
    stub_scripts = {
        "systemctl": 'echo "$*" >> "$STUB_LOG/systemctl.log"\n',
        "pgrep": PGREP_STUB.removeprefix("#!/bin/sh\n"),
        "umount": 'echo "$*" >> "$STUB_LOG/umount.log"\n',
        "ip": IP_STUB.removeprefix("#!/bin/sh\n"),
        "iptables-save": f"cat <<'RULES'\n{RULES}RULES\n",
        "iptables-restore": 'cat > "$STUB_LOG/iptables.restored"\n',
        "ip6tables-save": f"cat <<'RULES'\n{RULES}RULES\n",
        "ip6tables-restore": 'cat > "$STUB_LOG/ip6tables.restored"\n',
    }
    for name, body in stub_scripts.items():
        (stubs / name).write_text("#!/bin/sh\n" + body)
        (stubs / name).chmod(0o755)
    return {"root": root, "logs": logs, "stubs": stubs}


def run_uninstall(node: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(K3S / "uninstall.sh"), "--yes"],
        env={
            **os.environ,
            "PATH": f"{node['stubs']}:{os.environ['PATH']}",
            "K3S_ROOT": str(node["root"]),
            "STUB_LOG": str(node["logs"]),
            # `kill` is a shell builtin: an exported function takes its place in the script.
            "BASH_FUNC_kill%%": '() { echo "$*" >> "$STUB_LOG/kill.log"; }',
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_uninstall_kills_every_container_process_not_only_the_shims(node: dict[str, Path]) -> None:
    result = run_uninstall(node)
    assert result.returncode == 0, result.stderr
    killed = (node["logs"] / "kill.log").read_text().splitlines()
    assert killed == ["-9 103", "-9 101", "-9 102", "-9 100"], "children before parents"


def test_uninstall_unmounts_what_the_pods_mounted_deepest_first(node: dict[str, Path]) -> None:
    assert run_uninstall(node).returncode == 0
    unmounted = (node["logs"] / "umount.log").read_text().splitlines()
    root = node["root"]
    assert f"{root}/run/netns/cni-1a2b" in unmounted
    assert f"{root}/var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/token" in unmounted
    assert len([m for m in unmounted if m.startswith(f"{root}/run/k3s/")]) == 2
    assert not [m for m in unmounted if not m.startswith(str(root))], "a host mount was touched"


def test_uninstall_removes_network_namespaces_links_state_and_rules(node: dict[str, Path]) -> None:
    assert run_uninstall(node).returncode == 0
    calls = (node["logs"] / "ip.log").read_text().splitlines()
    assert "ip netns delete cni-1a2b" in calls
    assert "ip netns delete cni-3c4d" in calls
    assert "ip netns delete my-own-ns" not in calls
    assert {c for c in calls if c.startswith("ip link delete")} == {
        "ip link delete cni0",
        "ip link delete flannel.1",
    }
    assert not (node["root"] / "var/lib/cni").exists()
    assert not (node["root"] / "run/flannel").exists()
    for family in ("iptables", "ip6tables"):
        kept = (node["logs"] / f"{family}.restored").read_text()
        assert "--dport 22 -j ACCEPT" in kept
        assert "*filter" in kept
        assert "COMMIT" in kept
        for gone in ("KUBE-", "CNI-", "flannel", "FLANNEL"):
            assert gone not in kept, (family, gone)


def test_uninstall_removes_k3s_files_only_and_can_run_again(node: dict[str, Path]) -> None:
    assert run_uninstall(node).returncode == 0
    root = node["root"]
    for gone in (
        "usr/local/bin/k3s",
        "usr/local/bin/kubectl",
        "etc/rancher/k3s",
        "etc/systemd/system/k3s.service",
        "etc/systemd/system/k3s-agent.service",
        "var/lib/rancher/k3s",
        "var/lib/kubelet",
    ):
        assert not (root / gone).exists(), gone
        assert not (root / gone).is_symlink(), gone
    assert (root / "usr/local/bin/unrelated-tool").is_file()
    assert (root / "etc/hostname").is_file()
    again = run_uninstall(node)
    assert again.returncode == 0, again.stderr
