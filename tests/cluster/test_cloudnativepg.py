"""The CloudNativePG operator on the CI cluster: the chart bootstrap.sh installs, pulled at the
version pinned in k3s/versions.env from a chart repository over HTTP (a local one of the upstream
chart's shape: the real one cannot be downloaded here), checked against the pinned sha256 and
rendered with real Helm and k3s/cloudnative-pg-values.yaml, in phases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from chartkit import REPO
from ci.cluster import WaitFailedError, load_operator
from ci.core.cluster_cnpg import (
    CNPG_CHART,
    CNPG_NAMESPACE,
    CNPG_RELEASE,
    CNPG_REPO,
    CNPG_SHA256_PIN,
    CNPG_VALUES_FILE,
    CNPG_VERSION_PIN,
    needs_operator,
    operator_phases,
)
from ci.core.cluster_gateway import (
    NGF_VALUES_FILE,
    POLICIES_FILE,
    VERSIONS_FILE,
    priority_classes,
    read_versions,
)
from ci.core.cluster_plan import Manifest, PlanError, object_name, split_documents

from cluster.cnpg_chart import build_chart, chart_repository, repo_with_pin, sha256

VERSIONS = read_versions((REPO / VERSIONS_FILE).read_text())
VERSION = VERSIONS[CNPG_VERSION_PIN]


def test_the_chart_is_the_one_bootstrap_sh_installs() -> None:
    lib = (REPO / "k3s" / "lib.sh").read_text()
    entry = re.search(r'^\s*"cnpg ([^"]*)"$', lib, re.MULTILINE)
    assert entry is not None

    assert f"cnpg {entry.group(1)}".split() == [
        CNPG_RELEASE,
        CNPG_NAMESPACE,
        CNPG_CHART,
        CNPG_REPO,
        CNPG_VERSION_PIN,
        CNPG_SHA256_PIN,
    ]
    bootstrap = (REPO / "k3s" / "bootstrap.sh").read_text()
    assert f'cnpg --values "$K3S_DIR/{Path(CNPG_VALUES_FILE).name}"' in bootstrap


def test_the_pinned_chart_is_pulled_checked_and_installed_crds_first(tmp_path: Path) -> None:
    archive = build_chart(tmp_path / "charts", VERSION)
    repo = repo_with_pin(tmp_path, sha256(archive))

    with chart_repository(archive) as (url, served):
        found, warnings = load_operator(repo, tmp_path / "work", url)

    assert served.asked == ["/index.yaml", f"/{CNPG_CHART}-{VERSION}.tgz"]
    assert warnings == []
    assert [(p.release, p.name) for p in found] == [
        (CNPG_CHART, "CRDs"),
        (CNPG_RELEASE, "Namespace"),
        (CNPG_RELEASE, "Sync"),
    ]
    assert {p.namespace for p in found} == {CNPG_NAMESPACE}
    assert [object_name(o) for o in found[0].objects] == [
        "CustomResourceDefinition/clusters.postgresql.cnpg.io",
        "CustomResourceDefinition/databases.postgresql.cnpg.io",
    ]
    # The host's values apply, except the PodMonitor: the CI cluster runs no Prometheus Operator.
    assert [object_name(o) for o in found[2].objects] == [
        "ServiceAccount/cnpg-cloudnative-pg",
        "Deployment/cnpg-cloudnative-pg",
        "ValidatingWebhookConfiguration/cnpg-validating-webhook-configuration",
    ]
    pod = found[2].objects[1]["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "chat-platform"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_a_chart_that_differs_from_its_pin_is_refused_and_an_unpinned_one_named(
    tmp_path: Path,
) -> None:
    archive = build_chart(tmp_path / "charts", VERSION)
    digest = sha256(archive)

    with chart_repository(archive) as (url, _):
        with pytest.raises(PlanError) as refused:
            load_operator(repo_with_pin(tmp_path / "a", "0" * 64), tmp_path / "w1", url)
        found, warnings = load_operator(repo_with_pin(tmp_path / "b", ""), tmp_path / "w2", url)

    assert str(refused.value) == (
        f"{CNPG_CHART}-{VERSION}.tgz: sha256 {digest} does not match {CNPG_SHA256_PIN}={'0' * 64}"
    )
    assert warnings == [
        f"{CNPG_CHART}-{VERSION}.tgz: {CNPG_SHA256_PIN} is not pinned in {VERSIONS_FILE} yet; "
        f"this download is {digest}"
    ]
    assert found[0].name == "CRDs"


def test_a_version_the_repository_does_not_have_fails_naming_chart_and_repository(
    tmp_path: Path,
) -> None:
    archive = build_chart(tmp_path / "charts", "0.0.1")

    repo = repo_with_pin(tmp_path, "")

    with chart_repository(archive) as (url, _), pytest.raises(WaitFailedError) as failed:
        load_operator(repo, tmp_path / "work", url)

    assert str(failed.value).startswith(f"helm pull {CNPG_CHART} {VERSION} from {url}: ")


def test_a_render_without_crds_is_refused() -> None:
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
    }

    with pytest.raises(PlanError, match="rendered no CustomResourceDefinition"):
        operator_phases([deployment])


def test_only_a_render_with_cloudnativepg_objects_needs_the_operator() -> None:
    cluster = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {}}
    statefulset = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {}}

    assert needs_operator([statefulset, cluster])
    assert not needs_operator([statefulset])


def test_every_priority_class_the_components_name_is_applied_before_them() -> None:
    applied = priority_classes(split_documents({POLICIES_FILE: (REPO / POLICIES_FILE).read_text()}))
    names = {o["metadata"]["name"] for o in applied.objects}
    ngf = yaml.safe_load((REPO / NGF_VALUES_FILE).read_text())
    cnpg = yaml.safe_load((REPO / CNPG_VALUES_FILE).read_text())

    assert {o["kind"] for o in applied.objects} == {"PriorityClass"}
    assert ngf["nginxGateway"]["priorityClassName"] in names
    assert cnpg["priorityClassName"] in names
    with pytest.raises(PlanError, match=f"{POLICIES_FILE}: no PriorityClass"):
        priority_classes([])
