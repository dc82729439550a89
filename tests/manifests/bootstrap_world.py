"""The outside world of k3s/bootstrap.sh for tests: what it downloads (served by basename by a
curl stand-in, the network) and a Helm stand-in (Helm is itself a download; this one renders the
chart archives it is given with the real Helm SDK, helm-python-sdk, and sends the result through
the real `kubectl` to the API server, the way `helm upgrade --install` puts CRDs first).

The downloads keep the shape of the upstream files that matters to the scripts:
- Gateway API v1.5.1 `config/crd/standard/*.yaml`: one CustomResourceDefinition per file, no
  leading `---`, ending in a `status:` block; `vap_safeupgrades.yaml` holds two documents (a
  ValidatingAdmissionPolicy, `---`, its binding). Read at the tag in kubernetes-sigs/gateway-api.
- chart archives `<chart>/{Chart.yaml,crds/,templates/}` as `helm package` makes them; the
  argo-cd stand-in renders `configs.params` into `argocd-cmd-params-cm`, the ApplicationSet
  controller's Role and RoleBinding in the release namespace only and its ClusterRole only with
  `applicationSet.allowAnyNamespace`, and `extraObjects`, as argo-cd chart 8.5.10 does
  (argoproj/argo-helm@argo-cd-8.5.10 charts/argo-cd/templates/argocd-configs/
  argocd-cmd-params-cm.yaml, argocd-applicationset/role.yaml, rolebinding.yaml, clusterrole.yaml
  (`{{- if .Values.applicationSet.allowAnyNamespace }}`), extra-manifests.yaml).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

GATEWAY_API_CRDS = {
    # file name: (kind, plural)
    "gatewayclasses": ("GatewayClass", "gatewayclasses"),
    "gateways": ("Gateway", "gateways"),
    "grpcroutes": ("GRPCRoute", "grpcroutes"),
    "httproutes": ("HTTPRoute", "httproutes"),
    "referencegrants": ("ReferenceGrant", "referencegrants"),
    "backendtlspolicies": ("BackendTLSPolicy", "backendtlspolicies"),
    "listenersets": ("ListenerSet", "listenersets"),
    "tlsroutes": ("TLSRoute", "tlsroutes"),
}
CLUSTER_SCOPED = {"GatewayClass", "ClusterIssuer"}


def crd(group: str, kind: str, plural: str, versions: list[str], namespaced: bool = True) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
                for i, v in enumerate(versions)
            ],
        },
    }


def gateway_api_file(name: str) -> str:
    """One file of config/crd/standard at v1.5.1, in its upstream shape."""
    if name == "vap_safeupgrades":
        policy = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "safe-upgrades.gateway.networking.k8s.io"},
            "spec": {"failurePolicy": "Fail"},
        }
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "safe-upgrades.gateway.networking.k8s.io"},
            "spec": {
                "policyName": "safe-upgrades.gateway.networking.k8s.io",
                "validationActions": ["Deny"],
            },
        }
        return yaml.safe_dump(policy, sort_keys=False) + "\n---\n\n" + yaml.safe_dump(binding)
    kind, plural = GATEWAY_API_CRDS[name]
    versions = ["v1", "v1beta1"] if name in {"gateways", "httproutes", "gatewayclasses"} else ["v1"]
    definition = crd(
        "gateway.networking.k8s.io", kind, plural, versions, kind not in CLUSTER_SCOPED
    )
    definition["metadata"]["annotations"] = {
        "gateway.networking.k8s.io/bundle-version": "v1.5.1",
        "gateway.networking.k8s.io/channel": "standard",
    }
    definition["status"] = {
        "acceptedNames": {"kind": "", "plural": ""},
        "conditions": None,
        "storedVersions": None,
    }
    # As upstream: the document starts with `apiVersion:` (no `---`) and ends with status.
    return yaml.safe_dump(definition, sort_keys=False)


def dump_all(objects: list[Obj]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


# --- chart archives ---

# What the cert-manager and argo-cd charts render behind their ServiceMonitor values.
SERVICE_MONITOR = """apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {name}
  namespace: {{{{ .Release.Namespace }}}}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  endpoints:
    - targetPort: http-metrics
"""

# The ApplicationSet controller's rules, as Argo CD's chart grants them in its namespace (a Role)
# and, with applicationSet.allowAnyNamespace, in every namespace (a ClusterRole): KIND and
# NAMESPACE stand for the kind and the namespace line, which a ClusterRole has not.
APPLICATIONSET_RBAC = """apiVersion: rbac.authorization.k8s.io/v1
kind: KIND
metadata:
  name: {{ .Release.Name }}-applicationset-controller
NAMESPACE
rules:
  - apiGroups: [argoproj.io]
    resources: [applications, applicationsets, applicationsets/finalizers]
    verbs: [create, delete, get, list, patch, update, watch]
  - apiGroups: [argoproj.io]
    resources: [applicationsets/status]
    verbs: [get, patch, update]
  - apiGroups: [argoproj.io]
    resources: [appprojects]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: KINDBinding
metadata:
  name: {{ .Release.Name }}-applicationset-controller
NAMESPACE
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: KIND
  name: {{ .Release.Name }}-applicationset-controller
subjects:
  - kind: ServiceAccount
    name: {{ .Release.Name }}-applicationset-controller
    namespace: {{ .Release.Namespace }}
"""


def applicationset_rbac(kind: str, namespaced: bool) -> str:
    """The KIND (Role or ClusterRole) and its binding to the controller's ServiceAccount."""
    namespace = "  namespace: {{ .Release.Namespace }}\n" if namespaced else ""
    return APPLICATIONSET_RBAC.replace("KIND", kind).replace("NAMESPACE\n", namespace)


ARGO_CD_TEMPLATES = {
    "cmd-params-cm.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cmd-params-cm
  namespace: {{ .Release.Namespace }}
data:
  {{- range $key, $value := .Values.configs.params }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}
""",
    "applicationset-role.yaml": applicationset_rbac("Role", namespaced=True)
    + "{{- if .Values.applicationSet.allowAnyNamespace }}\n---\n"
    + applicationset_rbac("ClusterRole", namespaced=False)
    + "{{- end }}\n",
    "servicemonitor.yaml": "{{- if .Values.controller.metrics.serviceMonitor.enabled }}\n"
    + SERVICE_MONITOR.format(name="argocd-application-controller")
    + "{{- end }}\n",
    "extra-manifests.yaml": """{{ range .Values.extraObjects }}
---
{{ toYaml . }}
{{ end }}
""",
}

NGF_TEMPLATES = {
    "gatewayclass.yaml": """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: {{ .Values.nginxGateway.gatewayClassName }}
spec:
  controllerName: gateway.nginx.org/nginx-gateway-controller
""",
    "nginxproxy.yaml": """apiVersion: gateway.nginx.org/v1alpha2
kind: NginxProxy
metadata:
  name: {{ .Release.Name }}-proxy-config
  namespace: {{ .Release.Namespace }}
spec: {}
""",
}

CERT_MANAGER_CRDS = [
    crd("cert-manager.io", "ClusterIssuer", "clusterissuers", ["v1"], namespaced=False),
    crd("cert-manager.io", "Issuer", "issuers", ["v1"]),
    crd("cert-manager.io", "Certificate", "certificates", ["v1"]),
]

CNPG_CRDS = [
    crd("postgresql.cnpg.io", kind, plural, ["v1"])
    for kind, plural in (
        ("Cluster", "clusters"),
        ("Database", "databases"),
        ("Backup", "backups"),
        ("ScheduledBackup", "scheduledbackups"),
        ("Pooler", "poolers"),
    )
]

# cloudnative-pg 0.29.0 (cloudnative-pg/charts@cloudnative-pg-v0.29.0 charts/cloudnative-pg):
# its CRDs are templates behind crds.create; the Deployment takes its pod and container security
# contexts and priorityClassName from the values; the PodMonitor sits behind
# monitoring.podMonitorEnabled.
CNPG_TEMPLATES = {
    "crds.yaml": "{{- if .Values.crds.create }}\n" + dump_all(CNPG_CRDS) + "{{- end }}\n",
    "deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-cloudnative-pg
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: cloudnative-pg
  template:
    metadata:
      labels:
        app.kubernetes.io/name: cloudnative-pg
    spec:
      containers:
        - name: manager
          image: ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0
          securityContext:
            {{- toYaml .Values.containerSecurityContext | nindent 12 }}
      {{- if .Values.priorityClassName }}
      priorityClassName: {{ .Values.priorityClassName }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
""",
    "podmonitor.yaml": """{{- if .Values.monitoring.podMonitorEnabled }}
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ .Release.Name }}-cloudnative-pg
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: cloudnative-pg
  podMetricsEndpoints:
    - port: metrics
{{- end }}
""",
}

CHARTS: dict[str, dict[str, Any]] = {
    "argo-cd": {
        "crds": [
            crd("argoproj.io", "Application", "applications", ["v1alpha1"]),
            crd("argoproj.io", "AppProject", "appprojects", ["v1alpha1"]),
            crd("argoproj.io", "ApplicationSet", "applicationsets", ["v1alpha1"]),
        ],
        "templates": ARGO_CD_TEMPLATES,
        "values": {
            "configs": {"params": {}},
            "applicationSet": {"allowAnyNamespace": False},
            "controller": {"metrics": {"serviceMonitor": {"enabled": False}}},
            "extraObjects": [],
        },
    },
    "nginx-gateway-fabric": {
        "crds": [
            crd("gateway.nginx.org", "NginxGateway", "nginxgateways", ["v1alpha1"]),
            crd("gateway.nginx.org", "NginxProxy", "nginxproxies", ["v1alpha2"]),
            crd(
                "gateway.nginx.org", "ClientSettingsPolicy", "clientsettingspolicies", ["v1alpha1"]
            ),
        ],
        "templates": NGF_TEMPLATES,
        "values": {"nginxGateway": {"gatewayClassName": "nginx"}},
    },
    # cert-manager renders its CRDs as templates (crds.enabled), not from crds/.
    "cert-manager": {
        "crds": [],
        "templates": {
            "crds.yaml": "{{- if .Values.crds.enabled }}\n"
            + dump_all(CERT_MANAGER_CRDS)
            + "{{- end }}\n",
            "servicemonitor.yaml": "{{- if .Values.prometheus.servicemonitor.enabled }}\n"
            + SERVICE_MONITOR.format(name="cert-manager")
            + "{{- end }}\n",
        },
        "values": {
            "crds": {"enabled": False},
            "prometheus": {"servicemonitor": {"enabled": False}},
        },
    },
    "sealed-secrets": {
        "crds": [crd("bitnami.com", "SealedSecret", "sealedsecrets", ["v1alpha1"])],
        "templates": {},
        "values": {},
    },
    # Its CRDs live in a subchart, as at kube-prometheus-stack-79.5.0: charts/crds/crds/.
    "kube-prometheus-stack": {
        "crds_dir": "charts/crds/crds",
        "crds": [
            crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", ["v1"]),
            crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules", ["v1"]),
            crd("monitoring.coreos.com", "PodMonitor", "podmonitors", ["v1"]),
        ],
        "templates": {},
        "values": {},
    },
    "cloudnative-pg": {
        "crds": [],
        "templates": CNPG_TEMPLATES,
        "values": {
            "crds": {"create": True},
            "priorityClassName": "",
            "monitoring": {"podMonitorEnabled": False},
            # The chart's defaults.
            "containerSecurityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
                "capabilities": {"drop": ["ALL"]},
            },
            "podSecurityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
    },
}


def chart_archive(chart: str, version: str, extra_crds: list[Obj] | None = None) -> bytes:
    """A chart .tgz as `helm package` lays it out."""
    spec = dict(CHARTS[chart])
    spec["crds"] = [*spec["crds"], *(extra_crds or [])]
    files = {
        "Chart.yaml": yaml.safe_dump({"apiVersion": "v2", "name": chart, "version": version}),
        "values.yaml": yaml.safe_dump(spec["values"]),
    }
    crds_dir = spec.get("crds_dir", "crds")
    if crds_dir != "crds":  # a subchart holds them
        subchart = crds_dir.removesuffix("/crds")
        files[f"{subchart}/Chart.yaml"] = yaml.safe_dump(
            {"apiVersion": "v2", "name": Path(subchart).name, "version": version}
        )
    for index, definition in enumerate(spec["crds"]):
        files[f"{crds_dir}/crd-{index}.yaml"] = yaml.safe_dump(definition)
    for name, text in spec["templates"].items():
        files[f"templates/{name}"] = text
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{chart}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# The release's crd.yaml (the vendored Plan CRD, the one file it is made of: chartkit).
SUC_CRD_FILE = (
    Path(__file__).parents[1] / "crds/system-upgrade-controller/upgrade.cattle.io_plans.yaml"
)
SUC_MANIFEST = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "system-upgrade"}},
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "system-upgrade", "namespace": "system-upgrade"},
    },
]


# plugin-barman-cloud v0.14.0's release asset manifest.yaml (cloudnative-pg/plugin-barman-cloud@
# v0.14.0 Taskfile.yml `manifest`: a kustomize build of kubernetes/ with the release's images; the
# tag's own manifest.yaml is that build with the testing images): the ObjectStore CRD, RBAC, the
# Secret naming the sidecar image, the Service the operator finds the plugin by (label
# cnpg.io/pluginName, its TLS Secrets in annotations), the Deployment mounting those Secrets, and
# the self-signed Issuer and two Certificates that make them, all in cnpg-system; kustomize output
# has no leading `---`. RBAC is cut to the plugin's own ClusterRole and leader-election Role.
PLUGIN_NAMESPACE = "cnpg-system"
PLUGIN_IMAGE = "ghcr.io/cloudnative-pg/plugin-barman-cloud:v0.14.0"
OBJECTSTORE_CRD = (
    Path(__file__).parents[1] / "crds/cloudnative-pg/barmancloud.cnpg.io_objectstores.yaml"
)


def _certificate(name: str, usage: str, dns_names: list[str]) -> Obj:
    spec: Obj = {
        "secretName": f"{name}-tls",
        "commonName": name,
        "duration": "2160h",
        "renewBefore": "360h",
        "isCA": False,
        "usages": [usage],
        "issuerRef": {"name": "selfsigned-issuer", "kind": "Issuer", "group": "cert-manager.io"},
    }
    if dns_names:
        spec["dnsNames"] = dns_names
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": PLUGIN_NAMESPACE},
        "spec": spec,
    }


def _plugin_deployment() -> Obj:
    labels = {"app": "barman-cloud"}
    container = {
        "name": "barman-cloud",
        "image": PLUGIN_IMAGE,
        "args": [
            "operator",
            "--server-cert=/server/tls.crt",
            "--server-key=/server/tls.key",
            "--client-cert=/client/tls.crt",
            "--server-address=:9090",
            "--leader-elect",
            "--log-level=debug",
        ],
        "env": [
            {
                "name": "SIDECAR_IMAGE",
                "valueFrom": {
                    "secretKeyRef": {
                        "key": "SIDECAR_IMAGE",
                        "name": "plugin-barman-cloud-7c9b6fk5t2",
                    }
                },
            }
        ],
        "ports": [{"containerPort": 9090, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": 9090}, "initialDelaySeconds": 10},
        "volumeMounts": [
            {"mountPath": "/server", "name": "server"},
            {"mountPath": "/client", "name": "client"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": 10001,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "serviceAccountName": "plugin-barman-cloud",
        "containers": [container],
        "volumes": [
            {"name": "server", "secret": {"secretName": "barman-cloud-server-tls"}},
            {"name": "client", "secret": {"secretName": "barman-cloud-client-tls"}},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"labels": labels, "name": "barman-cloud", "namespace": PLUGIN_NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def barman_cloud_plugin_manifest() -> str:
    namespaced = {"namespace": PLUGIN_NAMESPACE}
    account = {"kind": "ServiceAccount", "name": "plugin-barman-cloud", **namespaced}
    rbac = "rbac.authorization.k8s.io/v1"
    objects: list[Obj] = [
        yaml.safe_load(OBJECTSTORE_CRD.read_text()),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "plugin-barman-cloud", **namespaced},
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": "barman-plugin-leader-election-role", **namespaced},
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["create", "get", "list", "update", "patch", "watch", "delete"],
                }
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": "plugin-barman-cloud"},
            "rules": [
                {
                    "apiGroups": ["barmancloud.cnpg.io"],
                    "resources": ["objectstores"],
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                },
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["rolebindings", "roles"],
                    "verbs": ["create", "get", "list", "patch", "update", "watch"],
                },
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": "barman-plugin-leader-election-rolebinding", **namespaced},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "barman-plugin-leader-election-role",
            },
            "subjects": [account],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "plugin-barman-cloud-binding"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "plugin-barman-cloud",
            },
            "subjects": [account],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "plugin-barman-cloud-7c9b6fk5t2", **namespaced},
            "data": {"SIDECAR_IMAGE": "Z2hjci5pby9jbG91ZG5hdGl2ZS1wZy9wbHVnaW4tYmFybWFu"},
            "type": "Opaque",
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "annotations": {
                    "cnpg.io/pluginClientSecret": "barman-cloud-client-tls",
                    "cnpg.io/pluginPort": "9090",
                    "cnpg.io/pluginServerSecret": "barman-cloud-server-tls",
                },
                "labels": {
                    "app": "barman-cloud",
                    "cnpg.io/pluginName": "barman-cloud.cloudnative-pg.io",
                },
                "name": "barman-cloud",
                **namespaced,
            },
            "spec": {
                "ports": [{"port": 9090, "protocol": "TCP", "targetPort": 9090}],
                "selector": {"app": "barman-cloud"},
            },
        },
        _plugin_deployment(),
        _certificate("barman-cloud-client", "client auth", []),
        _certificate("barman-cloud-server", "server auth", ["barman-cloud"]),
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "selfsigned-issuer", **namespaced},
            "spec": {"selfSigned": {}},
        },
    ]
    return dump_all(objects)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the Helm stand-in, run as a program: helm version | pull | upgrade --install ---

HELM_PROGRAM = """#!{python}
import sys
sys.path[:0] = {paths}
from bootstrap_world import helm_main
sys.exit(helm_main(sys.argv[1:]))
"""


def helm_program(version: str) -> str:
    paths = json.dumps([str(Path(__file__).parent), str(Path(__file__).parents[1])])
    return HELM_PROGRAM.format(python=sys.executable, paths=paths).replace("{version}", version)


def helm_main(argv: list[str]) -> int:
    import os
    import shutil
    import subprocess
    import tempfile

    log = Path(os.environ["STUB_LOG"]) / "helm.log"
    with log.open("a") as out:
        out.write("helm " + " ".join(argv) + "\n")
    if argv[0] == "version":
        print(os.environ["HELM_STAND_IN_VERSION"], end="")
        return 0
    options = _options(argv)
    if argv[0] == "pull":
        chart = Path(argv[1]).name
        source = Path(os.environ["INTERNET"]) / f"{chart}-{options['--version'][0]}.tgz"
        shutil.copy(source, Path(options["--destination"][0]) / source.name)
        return 0
    assert argv[:2] == ["upgrade", "--install"], argv
    release, archive, namespace = argv[2], argv[3], options["--namespace"][0]
    with tempfile.TemporaryDirectory() as work:
        with tarfile.open(archive) as packed:
            packed.extractall(work, filter="data")
        (chart_dir,) = Path(work).iterdir()
        values = _values(options)
        manifests = _render(chart_dir, values, release, namespace)
        namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        # Helm installs the crds/ of a chart and its subcharts with a release's first install
        # only, never on an upgrade.
        installed = Path(os.environ["STUB_LOG"]) / f"release-{namespace}-{release}"
        crd_files = [*chart_dir.glob("crds/*"), *chart_dir.glob("charts/*/crds/*")]
        crds = (
            [] if installed.exists() else [yaml.safe_load(p.read_text()) for p in sorted(crd_files)]
        )
        installed.touch()
        for batch in ([namespace_doc], crds, manifests):
            if batch:
                applied = subprocess.run(
                    [
                        "kubectl",
                        "apply",
                        "--server-side",
                        "--force-conflicts",
                        "-n",
                        namespace,
                        "-f",
                        "-",
                    ],
                    input=dump_all(batch),
                    text=True,
                    check=False,
                )
                if applied.returncode != 0:
                    return applied.returncode
    return 0


def _options(argv: list[str]) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for index, arg in enumerate(argv):
        if arg.startswith("--") and index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            options.setdefault(arg, []).append(argv[index + 1])
    return options


def _values(options: dict[str, list[str]]) -> Obj:
    values: Obj = {}
    for path in options.get("--values", []):
        _merge(values, yaml.safe_load(Path(path).read_text()) or {})
    for assignment in options.get("--set", []):
        key, value = assignment.split("=", 1)
        *parents, leaf = key.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return values


def _merge(into: Obj, other: Obj) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _render(chart_dir: Path, values: Obj, release: str, namespace: str) -> list[Obj]:
    import helm_python

    with helm_python.Chart.load(chart_dir) as loaded:
        files = loaded.render(values, name=release, namespace=namespace)
    objects: list[Obj] = []
    for _, text in sorted(files.items()):
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects
