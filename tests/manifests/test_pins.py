"""k3s/pins.sh and the scripts' handling of empty pins, with the real curl over real TLS to a
loopback internet (tests/manifests/https_net.py) that serves checksum files in the formats the
releases publish them:

- K3s `sha256sum-<arch>.txt`: `<sha256>  <asset>` per release asset (what the upstream installer
  reads, get.k3s.io `download_hash`);
- Helm `helm-<v>-linux-<arch>.tar.gz.sha256sum`: one `<sha256>  <file>` line;
- system-upgrade-controller `sha256sum-amd64.txt`: `sha256sum` over `dist/artifacts/*`
  (rancher/system-upgrade-controller@v0.16.3 .github/workflows/release.yaml, "Generate artifact
  checksums"), so entries carry the `dist/artifacts/` prefix;
- a Helm repository's `index.yaml`: `entries.<chart>[]` with `digest` and `version`;
- an OCI registry (ghcr.io): an anonymous token, then the manifest whose layer of media type
  `application/vnd.cncf.helm.chart.content.v1.tar+gzip` is the chart archive;
- GitHub's REST "get a release by tag name" (api.github.com/repos/<owner>/<repo>/releases/tags/
  <tag>), pretty-printed JSON: `assets[]` with `name`, a nested `uploader` object and `digest`
  (`sha256:<hex>`, computed by GitHub at upload since 2025-06, github.blog changelog
  2025-06-03 "Releases now expose digests for release assets").
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chartkit import K3S
from manifests.https_net import Internet, https_internet


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def versions(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", path.read_text(), re.M))


def host_arch() -> str:
    return "arm64" if platform.machine() in {"aarch64", "arm64"} else "amd64"


@dataclass
class Net:
    internet: Internet
    curl_home: Path
    k3s: Path
    expected: dict[str, str]

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            env={**os.environ, "CURL_HOME": str(self.curl_home), **env},
            capture_output=True,
            text=True,
            timeout=120,
        )


def github_release(tag: str, assets: dict[str, str]) -> str:
    """The "get a release" answer for a tag whose assets are {name: sha256}."""

    def asset(index: int, name: str, digest: str) -> dict[str, object]:
        return {
            "url": f"https://api.github.com/repos/o/r/releases/assets/{index}",
            "id": index,
            "name": name,
            "label": "",
            "uploader": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
            "content_type": "application/octet-stream",
            "state": "uploaded",
            "size": 1234,
            "digest": f"sha256:{digest}",
            "download_count": 7,
            "browser_download_url": f"https://github.com/o/r/releases/download/{tag}/{name}",
        }

    release = {
        "tag_name": tag,
        "name": tag,
        "author": {"login": "github-actions[bot]", "id": 41898282},
        "assets": [asset(i, name, digest) for i, (name, digest) in enumerate(assets.items())],
        "body": "## What changed {see the changelog}",
    }
    return json.dumps(release, indent=2)


def helm_index(chart: str, wanted: str, digest: str) -> str:
    """An index.yaml as a chart repository serves it: the wanted version between others, and a
    decoy chart with the same version."""

    def entry(name: str, version: str, value: str) -> dict[str, object]:
        return {
            "apiVersion": "v2",
            "appVersion": version,
            "created": "2025-10-01T00:00:00Z",
            "description": f"{name} chart",
            "digest": value,
            "name": name,
            "urls": [f"https://example.org/{name}-{version}.tgz"],
            "version": version,
        }

    entries = {
        chart: [entry(chart, "99.0.0", sha("newer")), entry(chart, wanted, digest)],
        f"{chart}-decoy": [entry(f"{chart}-decoy", wanted, sha("decoy"))],
    }
    return yaml.safe_dump({"apiVersion": "v1", "entries": entries, "generated": "2025-10-01"})


CHART_REPOSITORIES = [
    ("CERT_MANAGER_CHART_SHA256", "cert-manager", "https://charts.jetstack.io", "CERT_MANAGER"),
    ("ARGO_CD_CHART_SHA256", "argo-cd", "https://argoproj.github.io/argo-helm", "ARGO_CD"),
    (
        "KUBE_PROMETHEUS_STACK_CHART_SHA256",
        "kube-prometheus-stack",
        "https://prometheus-community.github.io/helm-charts",
        "KUBE_PROMETHEUS_STACK",
    ),
    (
        "SEALED_SECRETS_CHART_SHA256",
        "sealed-secrets",
        "https://bitnami-labs.github.io/sealed-secrets",
        "SEALED_SECRETS",
    ),
    (
        "CLOUDNATIVE_PG_CHART_SHA256",
        "cloudnative-pg",
        "https://cloudnative-pg.github.io/charts",
        "CLOUDNATIVE_PG",
    ),
]


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    k3s = tmp_path / "k3s"
    shutil.copytree(K3S, k3s)
    env = k3s / "versions.env"
    pinned = versions(env)
    emptied = [n for n in pinned if "SHA256" in n and not n.startswith("GATEWAY_API_CRD_")]
    text = env.read_text()
    for name in emptied:
        text = re.sub(rf"^{name}=.*$", f"{name}=", text, flags=re.M)
    env.write_text(text)
    expected: dict[str, str] = {}
    with https_internet(tmp_path / "curl") as (internet, curl_home):
        k3s_base = f"https://github.com/k3s-io/k3s/releases/download/{pinned['K3S_VERSION']}"
        for arch in ("amd64", "arm64"):
            binary = "k3s" if arch == "amd64" else f"k3s-{arch}"
            expected[f"K3S_SHA256_{arch.upper()}"] = sha(f"{binary} binary")
            expected[f"K3S_AIRGAP_IMAGES_SHA256_{arch.upper()}"] = sha(f"images {arch}")
            internet.serve(
                f"{k3s_base}/sha256sum-{arch}.txt",
                f"{sha('images tar')}  k3s-airgap-images-{arch}.tar\n"
                f"{expected[f'K3S_SHA256_{arch.upper()}']}  {binary}\n"
                f"{expected[f'K3S_AIRGAP_IMAGES_SHA256_{arch.upper()}']}  "
                f"k3s-airgap-images-{arch}.tar.zst\n"
                f"{sha('images gz')}  k3s-airgap-images-{arch}.tar.gz\n",
            )
            helm = f"helm-{pinned['HELM_VERSION']}-linux-{arch}.tar.gz"
            expected[f"HELM_SHA256_{arch.upper()}"] = sha(helm)
            internet.serve(f"https://get.helm.sh/{helm}.sha256sum", f"{sha(helm)}  {helm}\n")
        suc = "https://github.com/rancher/system-upgrade-controller/releases/download/"
        suc += pinned["SYSTEM_UPGRADE_CONTROLLER_VERSION"]
        expected["SYSTEM_UPGRADE_CONTROLLER_CRD_SHA256"] = sha("crd")
        expected["SYSTEM_UPGRADE_CONTROLLER_MANIFEST_SHA256"] = sha("manifest")
        internet.serve(
            f"{suc}/sha256sum-amd64.txt",
            f"{sha('bin')}  dist/artifacts/system-upgrade-controller-amd64\n"
            f"{sha('crd')}  dist/artifacts/crd.yaml\n"
            f"{sha('manifest')}  dist/artifacts/system-upgrade-controller.yaml\n",
        )
        plugin = pinned["PLUGIN_BARMAN_CLOUD_VERSION"]
        expected["PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256"] = sha("barman manifest")
        internet.serve(
            f"https://api.github.com/repos/cloudnative-pg/plugin-barman-cloud/releases/tags/{plugin}",
            # Another asset first: the digest must be the one of manifest.yaml.
            github_release(
                plugin, {"sidecar.yaml": sha("other"), "manifest.yaml": sha("barman manifest")}
            ),
        )
        for pin, chart, repo, version in CHART_REPOSITORIES:
            expected[pin] = sha(chart)
            chart_version = pinned[f"{version}_CHART_VERSION"]
            internet.serve(f"{repo}/index.yaml", helm_index(chart, chart_version, sha(chart)))
        expected["NGF_CHART_SHA256"] = sha("ngf")
        internet.serve("https://ghcr.io/token", json.dumps({"token": "anonymous"}))
        layer = {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                 "digest": f"sha256:{sha('ngf')}", "size": 1234}  # fmt: skip
        config = {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                  "digest": f"sha256:{sha('config')}", "size": 12}  # fmt: skip
        manifest = {"schemaVersion": 2, "config": config, "layers": [layer]}
        ngf = "https://ghcr.io/v2/nginx/charts/nginx-gateway-fabric/manifests/"
        internet.serve(ngf + pinned["NGF_CHART_VERSION"], json.dumps(manifest, indent=2))
        assert set(expected) == set(emptied)
        yield Net(internet, curl_home, k3s, expected)


def test_pins_sh_fills_every_empty_pin_from_the_published_files(net: Net) -> None:
    result = net.run("bash", str(net.k3s / "pins.sh"))
    assert result.returncode == 0, result.stderr
    filled = versions(net.k3s / "versions.env")
    assert {name: filled[name] for name in net.expected} == net.expected
    printed = dict(line.split("=", 1) for line in result.stdout.split())
    assert printed == net.expected
    assert all(url.startswith("https://") for url in net.internet.requests)
    gateway = {n: v for n, v in filled.items() if n.startswith("GATEWAY_API_CRD_")}
    assert gateway == {n: v for n, v in versions(K3S / "versions.env").items() if n in gateway}

    again = net.run("bash", str(net.k3s / "pins.sh"), "--check")
    assert again.returncode == 0, again.stdout + again.stderr


def test_pins_sh_check_names_a_pin_that_differs(net: Net) -> None:
    assert net.run("bash", str(net.k3s / "pins.sh")).returncode == 0
    env = net.k3s / "versions.env"
    env.write_text(re.sub(r"^ARGO_CD_CHART_SHA256=.*$", f"ARGO_CD_CHART_SHA256={sha('x')}",
                          env.read_text(), flags=re.M))  # fmt: skip
    result = net.run("bash", str(net.k3s / "pins.sh"), "--check")
    assert result.returncode == 1
    assert f"ARGO_CD_CHART_SHA256 differs: pinned '{sha('x')}', published {sha('argo-cd')}" in (
        result.stdout
    )


def test_pins_sh_names_a_release_without_the_pinned_asset(net: Net) -> None:
    """A release that lists no manifest.yaml (another asset only) yields no value to pin."""
    plugin = versions(K3S / "versions.env")["PLUGIN_BARMAN_CLOUD_VERSION"]
    url = f"https://api.github.com/repos/cloudnative-pg/plugin-barman-cloud/releases/tags/{plugin}"
    net.internet.serve(url, github_release(plugin, {"manifest.yml": sha("barman manifest")}))
    result = net.run("bash", str(net.k3s / "pins.sh"))
    assert result.returncode != 0
    assert f"PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256: no SHA-256 for manifest.yaml in {url}" in (
        result.stderr
    )
    assert "PLUGIN_BARMAN_CLOUD_MANIFEST_SHA256=" not in result.stdout


def test_pins_sh_refuses_an_unknown_argument(net: Net) -> None:
    result = net.run("bash", str(net.k3s / "pins.sh"), "--fill-all")
    assert result.returncode == 2
    assert "usage" in result.stderr


def k3s_install(net: Net, binary: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """install.sh's pin check and download (its first steps) with an empty K3S_SHA256 pin."""
    pinned = versions(K3S / "versions.env")
    arch = host_arch()
    asset = "k3s" if arch == "amd64" else f"k3s-{arch}"
    base = f"https://github.com/k3s-io/k3s/releases/download/{pinned['K3S_VERSION']}"
    net.internet.serve(f"{base}/{asset}", binary)
    target = tmp_path / "bin" / "k3s"
    pin = f"K3S_SHA256_{arch.upper()}"
    script = f'source "{net.k3s / "install.sh"}"; require_pins {pin}; download_k3s'
    return net.run("bash", "-c", script, K3S_BIN=str(target))


def test_install_with_an_empty_pin_verifies_against_the_published_checksum(
    net: Net, tmp_path: Path
) -> None:
    pin = f"K3S_SHA256_{host_arch().upper()}"
    binary = ("k3s binary" if host_arch() == "amd64" else "k3s-arm64 binary").encode()
    result = k3s_install(net, binary, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{pin} is not pinned: verifying against the release's published checksum " in (
        result.stderr
    )
    assert net.expected[pin] in result.stderr
    assert (tmp_path / "bin" / "k3s").read_bytes() == binary


def test_install_with_an_empty_pin_refuses_a_binary_the_release_did_not_publish(
    net: Net, tmp_path: Path
) -> None:
    result = k3s_install(net, b"evil", tmp_path)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr
    assert not (tmp_path / "bin" / "k3s").exists()


def test_an_air_gapped_install_refuses_an_empty_pin_before_any_change(
    net: Net, tmp_path: Path
) -> None:
    pin = f"K3S_SHA256_{host_arch().upper()}"
    script = f'source "{net.k3s / "install.sh"}"; AIRGAP_DIR={tmp_path} require_pins {pin}'
    result = net.run("bash", "-c", script)
    assert result.returncode != 0
    assert f"{pin} is not pinned in k3s/versions.env; an air-gapped install needs every pin" in (
        result.stderr
    )
    assert net.internet.requests == []
