"""A chart repository serving a `cloudnative-pg` chart of the upstream chart's shape, for the pull,
checksum and render path of ci.cluster (the real chart cannot be downloaded here).

The shape, from cloudnative-pg/charts at cloudnative-pg-v0.29.0: the CRDs are templates behind
`crds.create`, the operator is a Deployment in the release namespace naming
`priorityClassName`, a PodMonitor behind `monitoring.podMonitorEnabled`, cluster-wide webhook
configurations, and a NOTES.txt of plain text.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import helm_python
from chartkit import REPO
from ci.core.cluster_cnpg import CNPG_SHA256_PIN
from ci.core.cluster_gateway import VERSIONS_FILE
from harness.fakehttp import JsonServer, Request, Response

CHART_YAML = """apiVersion: v2
name: cloudnative-pg
description: a chart of the CloudNativePG operator chart's shape, for tests
type: application
version: "{version}"
appVersion: "1.30.0"
"""
VALUES = """crds: {create: true}
config: {clusterWide: true}
priorityClassName: ""
containerSecurityContext: {}
podSecurityContext: {}
monitoring: {podMonitorEnabled: false}
"""
CRD = """---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.postgresql.cnpg.io
spec:
  group: postgresql.cnpg.io
  names: {{kind: {kind}, listKind: {kind}List, plural: {plural}, singular: {singular}}}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
TEMPLATES = {
    "crds/crds.yaml": "{{- if .Values.crds.create }}\n"
    + CRD.format(plural="clusters", kind="Cluster", singular="cluster")
    + CRD.format(plural="databases", kind="Database", singular="database")
    + "{{- end }}\n",
    "deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-cloudnative-pg
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: cloudnative-pg}
  template:
    metadata:
      labels: {app.kubernetes.io/name: cloudnative-pg}
    spec:
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext: {{ toJson .Values.podSecurityContext }}
      containers:
        - name: manager
          image: ghcr.io/cloudnative-pg/cloudnative-pg:{{ .Chart.AppVersion }}
          securityContext: {{ toJson .Values.containerSecurityContext }}
""",
    "podmonitor.yaml": """{{- if .Values.monitoring.podMonitorEnabled }}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ .Release.Name }}-cloudnative-pg
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: cloudnative-pg}
  podMetricsEndpoints: [{port: metrics}]
{{- end }}
""",
    "validatingwebhookconfiguration.yaml": """apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: cnpg-validating-webhook-configuration
webhooks: []
""",
    "serviceaccount.yaml": """apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-cloudnative-pg
  namespace: {{ .Release.Namespace }}
""",
    "NOTES.txt": "The operator is installed. Create a cluster as follows: see the docs\n",
}


def build_chart(folder: Path, version: str) -> Path:
    """The chart packaged as `cloudnative-pg-<version>.tgz` in `folder`."""
    source = folder / "source" / "cloudnative-pg"
    (source / "templates" / "crds").mkdir(parents=True)
    (source / "Chart.yaml").write_text(CHART_YAML.format(version=version))
    (source / "values.yaml").write_text(VALUES)
    for name, text in TEMPLATES.items():
        (source / "templates" / name).write_text(text)
    served = folder / "served"
    served.mkdir()
    return Path(helm_python.package(source, destination=served))


@dataclass
class ChartRepository:
    """A Helm repository (index.yaml + archives) over HTTP, recording the paths asked for."""

    folder: Path
    asked: list[str] = field(default_factory=list)

    def answer(self, request: Request) -> Response:
        self.asked.append(request.path)
        path = self.folder / request.path.lstrip("/")
        if not path.is_file():
            return Response(404, b"not found")
        return Response(200, path.read_bytes(), {"Content-Type": "application/octet-stream"})


@contextmanager
def chart_repository(archive: Path) -> Iterator[tuple[str, ChartRepository]]:
    """Serves the folder of `archive` with an index made by Helm for the server's URL."""
    repository = ChartRepository(archive.parent)
    with JsonServer(repository.answer) as server:
        helm_python.repo_index_generate(archive.parent, base_url=server.url)
        yield server.url, repository


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def repo_with_pin(tmp_path: Path, pin: str) -> Path:
    """A repository root with k3s/ as it is, but CloudNativePG's chart checksum pinned to `pin`."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "k3s", root / "k3s")
    versions = root / VERSIONS_FILE
    text = re.sub(
        rf"^{CNPG_SHA256_PIN}=.*$", f"{CNPG_SHA256_PIN}={pin}", versions.read_text(), flags=re.M
    )
    versions.write_text(text)
    return root
