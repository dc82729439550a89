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
from chartkit import K3S, REPO, k3s_version, kubernetes_version

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
        "ingress-nginx",
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


# --- the download: real script code, with curl replaced by a local file server stub ---


def asset_names() -> tuple[str, str]:
    machine = platform.machine()
    if machine in {"aarch64", "arm64"}:
        return "k3s-arm64", "sha256sum-arm64.txt"
    return "k3s", "sha256sum-amd64.txt"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A fake release directory and a curl stub on PATH that serves files from it."""
    assets = tmp_path / "release"
    assets.mkdir()
    binary, sums = asset_names()
    fake = f'#!/bin/sh\necho "k3s version {k3s_version()} (0123abcd)"\necho "go version go1.24"\n'
    (assets / binary).write_text(fake)
    digest = hashlib.sha256(fake.encode()).hexdigest()
    (assets / sums).write_text(f"{'0' * 64}  k3s-airgap-images.tar\n{digest}  {binary}\n")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    curl = stubs / "curl"
    curl.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 1 ]; do [ "$1" = --output ] && out=$2; shift; done\n'
        f'echo "$1" >> "{tmp_path}/urls.log"\n'
        f'cp "{assets}/$(basename "$1")" "$out"\n'
    )
    curl.chmod(0o755)
    return assets


def run_download(release: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    target = tmp_path / "bin" / "k3s"
    target.parent.mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", "-c", f'source "{K3S / "install.sh"}"; download_k3s; installed_version'],
        env={
            **os.environ,
            "PATH": f"{release.parent / 'stubs'}:{os.environ['PATH']}",
            "K3S_BIN": str(target),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_download_installs_a_binary_whose_checksum_matches(release: Path, tmp_path: Path) -> None:
    result = run_download(release, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == k3s_version()
    assert (tmp_path / "bin" / "kubectl").resolve() == (tmp_path / "bin" / "k3s")
    base = f"https://github.com/k3s-io/k3s/releases/download/{k3s_version().replace('+', '%2B')}"
    urls = (tmp_path / "urls.log").read_text().split()
    assert urls == [f"{base}/{name}" for name in asset_names()]


def test_download_refuses_a_tampered_binary(release: Path, tmp_path: Path) -> None:
    binary, _ = asset_names()
    (release / binary).write_text("#!/bin/sh\necho evil\n")
    result = run_download(release, tmp_path)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr
    assert not (tmp_path / "bin" / "k3s").exists()


def test_download_checks_an_operator_pinned_checksum_too(release: Path, tmp_path: Path) -> None:
    result = run_download(release, tmp_path, K3S_SHA256="f" * 64)
    assert result.returncode != 0
    assert "pinned K3S_SHA256" in result.stderr
    assert not (tmp_path / "bin" / "k3s").exists()


def test_download_refuses_a_release_without_a_checksum(release: Path, tmp_path: Path) -> None:
    _, sums = asset_names()
    (release / sums).write_text(f"{'0' * 64}  something-else\n")
    result = run_download(release, tmp_path)
    assert result.returncode != 0
    assert "no checksum" in result.stderr


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


def test_cluster_issuer_is_the_one_the_charts_name(tmp_path: Path) -> None:
    result = run_issuer(tmp_path, "ops@example.com")
    assert result.returncode == 0, result.stderr
    issuer = yaml.safe_load((tmp_path / "applied.yaml").read_text())
    assert issuer["kind"] == "ClusterIssuer"
    assert issuer["spec"]["acme"]["email"] == "ops@example.com"
    solver = issuer["spec"]["acme"]["solvers"][0]["http01"]["ingress"]
    assert solver["ingressClassName"] == "nginx"
    for values_file in sorted((REPO / "charts").glob("*/values*.yaml")):
        tls = (yaml.safe_load(values_file.read_text()) or {}).get("ingress", {}).get("tls")
        if tls:
            assert tls["clusterIssuer"] == issuer["metadata"]["name"], values_file


def test_cluster_issuer_refuses_an_odd_email(tmp_path: Path) -> None:
    result = run_issuer(tmp_path, "ops@example.com/evil")
    assert result.returncode != 0
    assert "not an e-mail address" in result.stderr
    assert not (tmp_path / "applied.yaml").exists()
