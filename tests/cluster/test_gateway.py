"""The CI cluster's gateway and K3s pins come from k3s/ (the host's own files), and the e2e
command waits for the gateway's routes before running the suite."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chartkit import REPO
from ci.cluster import WaitFailedError, main, wait_for_routes
from ci.core.cluster_gateway import (
    GATEWAY_API_CRD_FILES,
    GATEWAY_FILE,
    GATEWAY_NAMESPACE,
    gateway_api_crd_urls,
    gateway_phases,
    k3s_image,
    read_versions,
    verify_sha256,
)
from ci.core.cluster_plan import PlanError, gateway_probe_paths, object_name, split_documents
from ci.engine.k3s import CGROUP_V2_ENTRYPOINT, K3S_IMAGE
from harness.fakehttp import JsonServer, Request

VERSIONS = read_versions((REPO / "k3s" / "versions.env").read_text())


def test_the_k3s_image_is_the_release_pinned_for_the_host() -> None:
    assert VERSIONS["K3S_VERSION"] == "v1.35.5+k3s1"
    assert k3s_image(VERSIONS).startswith("rancher/k3s:v1.35.5-k3s1@sha256:")


def test_a_k3s_release_without_a_known_digest_is_refused() -> None:
    with pytest.raises(PlanError, match=r"rancher/k3s:v9\.9\.9-k3s1: neither in DIGESTS"):
        k3s_image({"K3S_VERSION": "v9.9.9+k3s1"})


def test_crd_files_are_the_ones_bootstrap_sh_installs_in_its_order() -> None:
    script = (REPO / "k3s" / "bootstrap.sh").read_text()
    match = re.search(r"GATEWAY_API_CRD_FILES=\(\n(.*?)\n\)", script, re.DOTALL)
    assert match is not None

    assert tuple(match.group(1).split()) == GATEWAY_API_CRD_FILES
    urls = gateway_api_crd_urls(VERSIONS)
    assert urls[0] == (
        "https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/"
        f"{VERSIONS['GATEWAY_API_VERSION']}/config/crd/standard/"
        "gateway.networking.k8s.io_gatewayclasses.yaml"
    )


def test_downloads_are_checked_against_their_pins() -> None:
    data = b"crds"
    digest = hashlib.sha256(data).hexdigest()

    assert verify_sha256(data, {"PIN": digest}, "PIN", "bundle") is None
    with pytest.raises(PlanError, match=r"bundle: sha256 \w+ does not match PIN=0000"):
        verify_sha256(data, {"PIN": "0000"}, "PIN", "bundle")
    warning = verify_sha256(data, {"PIN": ""}, "PIN", "bundle")
    assert (
        warning == f"bundle: PIN is not pinned in k3s/versions.env yet; this download is {digest}"
    )


def test_a_broken_versions_file_is_named_with_its_line() -> None:
    with pytest.raises(PlanError, match=r"k3s/versions.env:2: not KEY=value"):
        read_versions("# pins\nK3S_VERSION v1\n")
    with pytest.raises(PlanError, match="K3S_VERSION is missing or empty"):
        k3s_image({"K3S_VERSION": ""})


def test_gateway_phases_put_crds_first_and_the_dev_gateway_last() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gateways.gateway.networking.k8s.io"},
    }
    controller = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ngf"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ngf"}},
    ]
    gateway = split_documents({GATEWAY_FILE: (REPO / GATEWAY_FILE).read_text()})

    found = gateway_phases([crd], controller, gateway)

    assert [(p.release, p.name) for p in found] == [
        ("gateway-api", "CRDs"),
        ("ngf", "Namespace"),
        ("ngf", "Sync"),
        ("gateway", "Sync"),
    ]
    assert {p.namespace for p in found} == {GATEWAY_NAMESPACE}
    assert [object_name(o) for o in found[2].objects] == ["ServiceAccount/ngf", "Deployment/ngf"]
    assert [object_name(o) for o in found[3].objects] == ["Gateway/chat"]
    listeners = found[3].objects[0]["spec"]["listeners"]
    assert [(item["name"], item["protocol"]) for item in listeners] == [("http", "HTTP")]
    with pytest.raises(PlanError, match="Deployment is not a CRD"):
        gateway_phases(controller, [], [])


def test_values_ci_routes_attach_to_the_dev_gateway_listener() -> None:
    gateway = yaml.safe_load((REPO / GATEWAY_FILE).read_text())
    listeners = {item["name"] for item in gateway["spec"]["listeners"]}
    for path in sorted(REPO.glob("charts/*/values-ci.yaml")):
        route = yaml.safe_load(path.read_text()).get("httpRoute")
        if route is None:
            continue
        assert route["gateway"] == {
            "name": gateway["metadata"]["name"],
            "namespace": gateway["metadata"]["namespace"],
            "listener": route["gateway"]["listener"],
        }, path
        assert route["gateway"]["listener"] in listeners, path


def test_probe_paths_are_each_route_with_its_health_path() -> None:
    routes = {"auth": ("/api/auth", "/health"), "frontend": ("/", "/health")}

    assert gateway_probe_paths(routes) == ["/api/auth/health", "/health"]


def test_waiting_for_routes_ends_when_all_answer_and_names_those_that_never_do() -> None:
    answered: list[str] = []

    def answer(request: Request) -> tuple[int, object]:
        answered.append(request.path)
        if request.path == "/api/auth/health" and answered.count(request.path) < 2:
            return 503, {"detail": "no upstream yet"}
        return (200, {"status": "ok"}) if request.path != "/api/stats/health" else (404, {})

    with JsonServer(answer) as server:
        wait_for_routes(server.url, ["/api/auth/health", "/health"], timeout=60)
        assert answered.count("/api/auth/health") == 2
        with pytest.raises(WaitFailedError) as failed:
            wait_for_routes(server.url, ["/health", "/api/stats/health"], timeout=0.1)

    assert str(failed.value) == (
        "gateway: deadline expired, routes not answering:\n"
        f"  {server.url}/api/stats/health: HTTP 404"
    )


def test_e2e_exits_1_when_the_gateway_never_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with JsonServer(lambda request: (404, {})) as server:
        argv = ["e2e", "--kubeconfig", "k", "--repo", str(REPO), "--base-url", server.url]
        code = main([*argv, "--timeout", "0.1", "--output", str(tmp_path)])

    assert code == 1
    err = capsys.readouterr().err
    assert "gateway: deadline expired, routes not answering" in err
    assert f"{server.url}/api/auth/health: HTTP 404" in err


def test_the_engine_runs_the_k3s_release_of_versions_env() -> None:
    assert k3s_image(VERSIONS) == K3S_IMAGE


def test_the_cgroup_v2_entrypoint_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "entrypoint.sh"
    script.write_text(CGROUP_V2_ENTRYPOINT)
    shellcheck = Path(sys.executable).parent / "shellcheck"

    done = subprocess.run(
        [str(shellcheck), "--shell=sh", str(script)], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stdout
    assert CGROUP_V2_ENTRYPOINT.rstrip().endswith('exec "$@"')


@pytest.mark.parametrize(
    ("workflow", "call"),
    [("pull-request.yml", "run: dagger call check"), ("main.yml", "  dagger call deploy")],
)
def test_the_workflows_run_the_integration_stage(workflow: str, call: str) -> None:
    text = (REPO / ".github" / "workflows" / workflow).read_text()
    command = text[text.index(call) :].split("\n\n", 1)[0]

    assert "--integration" in command
    assert "--integration=false" not in command
