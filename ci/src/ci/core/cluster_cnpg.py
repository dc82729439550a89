"""The CloudNativePG operator on the throwaway cluster, as k3s/bootstrap.sh installs it on a host:
the chart of k3s/lib.sh's CHARTS entry `cnpg` at CLOUDNATIVE_PG_CHART_VERSION, checked against
CLOUDNATIVE_PG_CHART_SHA256 (k3s/versions.env, the host's own pins), rendered with
k3s/cloudnative-pg-values.yaml.

The chart renders its CRDs as templates (crds.create): they are applied first and waited for until
Established, then the operator, whose Deployment must be ready before charts/postgres (its webhooks
admit every Cluster and Database).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ci.core.cluster_gateway import namespace_manifest
from ci.core.cluster_plan import Manifest, Phase, PlanError, deep_merge, phases

CNPG_API_GROUP = "postgresql.cnpg.io"
CNPG_RELEASE = "cnpg"  # bootstrap.sh's release name
CNPG_NAMESPACE = "cnpg-system"
CNPG_CHART = "cloudnative-pg"
CNPG_REPO = "https://cloudnative-pg.github.io/charts"
CNPG_VERSION_PIN = "CLOUDNATIVE_PG_CHART_VERSION"
CNPG_SHA256_PIN = "CLOUDNATIVE_PG_CHART_SHA256"
CNPG_VALUES_FILE = "k3s/cloudnative-pg-values.yaml"
# The one difference from the host: the throwaway cluster runs no Prometheus Operator, so there
# is no PodMonitor kind to create.
CI_OVERRIDES: Mapping[str, Any] = {"monitoring": {"podMonitorEnabled": False}}


def is_cnpg(obj: Manifest) -> bool:
    """An object the CloudNativePG operator reconciles (Cluster, Database, ScheduledBackup, ...)."""
    return str(obj.get("apiVersion", "")).startswith(f"{CNPG_API_GROUP}/")


def needs_operator(objects: Iterable[Manifest]) -> bool:
    return any(is_cnpg(obj) for obj in objects)


def operator_values(host_values: Mapping[str, Any]) -> dict[str, Any]:
    """k3s/cloudnative-pg-values.yaml with the throwaway cluster's overrides."""
    return deep_merge(host_values, CI_OVERRIDES)


def operator_phases(objects: Sequence[Manifest]) -> list[Phase]:
    """The chart's CRDs first (Established before anything uses them), its namespace, then the
    operator in the chart's own order; every phase in the operator's namespace."""
    crds = [o for o in objects if o.get("kind") == "CustomResourceDefinition"]
    rest = [o for o in objects if o.get("kind") != "CustomResourceDefinition"]
    if not crds:
        raise PlanError(
            f"chart {CNPG_CHART}: rendered no CustomResourceDefinition "
            f"(is crds.create off in {CNPG_VALUES_FILE}?)"
        )
    found = [
        Phase(CNPG_CHART, "CRDs", tuple(crds)),
        Phase(CNPG_RELEASE, "Namespace", (namespace_manifest(CNPG_NAMESPACE),)),
        *phases(CNPG_RELEASE, rest),
    ]
    return [dataclasses.replace(phase, namespace=CNPG_NAMESPACE) for phase in found]
