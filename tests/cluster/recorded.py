"""API answers in the shapes a K3s API server returns, read through the kubernetes client's own
deserialiser, so the code under test sees the same model objects as against a real cluster.

Each file in recorded/ maps a list type (V1PodList, CoreV1EventList, ...) to the JSON body of the
list call; a key may carry `@variant` for a later answer of the same list. CloudNativePG's lists
(ClusterList, DatabaseList) have no client models: their items stay the JSON the API returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ci.core.cluster_readiness import Snapshot
from kubernetes.client import ApiClient

RECORDED = Path(__file__).parent / "recorded"
FIELDS = {
    "V1DeploymentList": "deployments",
    "V1StatefulSetList": "statefulsets",
    "V1JobList": "jobs",
    "V1PodList": "pods",
    "V1PersistentVolumeClaimList": "pvcs",
    "CoreV1EventList": "events",
}
CUSTOM_FIELDS = {"ClusterList": "clusters", "DatabaseList": "databases"}


def answers(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return data


def deserialize(body: Any, list_type: str) -> Any:
    return ApiClient().deserialize(json.dumps(body), list_type, "application/json")


def snapshot(name: str, variant: str = "") -> Snapshot:
    """The recorded answers as one Snapshot (`variant` picks `Type@variant` keys over `Type`)."""
    bodies = answers(name)
    found = Snapshot()
    for list_type, field in FIELDS.items():
        body = bodies.get(f"{list_type}@{variant}") if variant else None
        body = body or bodies.get(list_type)
        if body is not None:
            setattr(found, field, list(deserialize(body, list_type).items))
    for list_type, field in CUSTOM_FIELDS.items():
        body = bodies.get(f"{list_type}@{variant}") if variant else None
        body = body or bodies.get(list_type)
        if body is not None:
            setattr(found, field, list(body["items"]))
    return found


def kubeconfig_for(url: str) -> dict[str, object]:
    """A kubeconfig for a stand-in API server at `url`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": url}}],
        "users": [{"name": "ci", "user": {"token": "stand-in-token"}}],
        "contexts": [{"name": "ci", "context": {"cluster": "stand-in", "user": "ci"}}],
        "current-context": "ci",
    }
