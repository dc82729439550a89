"""The throwaway cluster's gateway, as k3s/bootstrap.sh installs it on the host: the Gateway API
CRDs (standard channel), NGINX Gateway Fabric from its chart with k3s/nginx-gateway-fabric-
values.yaml, then k3s/gateway-dev.yaml (plain HTTP, routes from every namespace).

Versions and checksums come from k3s/versions.env, the host's own pins, so the pipeline's cluster
and the real one cannot drift apart. Also the pinned rancher/k3s image of the engine's cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence

from ci.core import toolversions
from ci.core.cluster_plan import Manifest, Phase, PlanError, phases

VERSIONS_FILE = "k3s/versions.env"
# The host's PriorityClasses (bootstrap.sh applies the file first): the gateway's and the
# operator's values name chat-platform, and the API server refuses a pod naming a missing class.
POLICIES_FILE = "k3s/cluster-policies.yaml"
NGF_VALUES_FILE = "k3s/nginx-gateway-fabric-values.yaml"
GATEWAY_FILE = "k3s/gateway-dev.yaml"
GATEWAY_NAMESPACE = "nginx-gateway"
NGF_RELEASE = "ngf"  # bootstrap.sh's release name
NGF_CHART = "oci://ghcr.io/nginx/charts/nginx-gateway-fabric"
# bootstrap.sh's GATEWAY_API_CRD_FILES: the order of config/crd/kustomization.yaml at the tag;
# each file has its own pin, GATEWAY_API_CRD_SHA256_<NAME> (a test keeps both lists equal). The
# files carry no leading `---`: each is parsed on its own, never concatenated.
GATEWAY_API_CRD_FILES = (
    "gatewayclasses",
    "gateways",
    "grpcroutes",
    "httproutes",
    "referencegrants",
    "backendtlspolicies",
    "listenersets",
    "tlsroutes",
    "vap_safeupgrades",
)
ASSIGNMENT = re.compile(r"^([A-Z0-9_]+)=(.*)$")


def read_versions(text: str) -> dict[str, str]:
    """KEY=value lines of versions.env (comments and blank lines skipped)."""
    versions: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = ASSIGNMENT.match(stripped)
        if match is None:
            raise PlanError(f"{VERSIONS_FILE}:{number}: not KEY=value: {stripped!r}")
        versions[match.group(1)] = match.group(2)
    return versions


def pinned(versions: dict[str, str], key: str) -> str:
    value = versions.get(key)
    if not value:
        raise PlanError(f"{VERSIONS_FILE}: {key} is missing or empty")
    return value


def k3s_image(versions: dict[str, str]) -> str:
    """rancher/k3s tags spell the K3s version's `+` as `-` (v1.35.5+k3s1 -> v1.35.5-k3s1); the
    digest is ci.core.toolversions' (a K3S_VERSION without one there is an error)."""
    tag = pinned(versions, "K3S_VERSION").replace("+", "-")
    try:
        return toolversions.pinned(f"rancher/k3s:{tag}")
    except ValueError as exc:
        raise PlanError(str(exc)) from exc


def gateway_api_crd_urls(versions: dict[str, str]) -> list[str]:
    version = pinned(versions, "GATEWAY_API_VERSION")
    base = f"https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/{version}/config/crd/standard"
    return [f"{base}/gateway.networking.k8s.io_{name}.yaml" for name in GATEWAY_API_CRD_FILES]


def gateway_api_crd_pin(name: str) -> str:
    """The versions.env pin of one Gateway API CRD file (bootstrap.sh's gateway_api_crd_pin)."""
    return f"GATEWAY_API_CRD_SHA256_{name.upper()}"


def verify_sha256(data: bytes, versions: dict[str, str], key: str, what: str) -> str | None:
    """None when `data` matches the pin; a warning when the pin is still empty (the file's own
    sha256, to be pinned); a PlanError on a mismatch."""
    actual = hashlib.sha256(data).hexdigest()
    expected = versions.get(key, "")
    if not expected:
        return f"{what}: {key} is not pinned in {VERSIONS_FILE} yet; this download is {actual}"
    if actual != expected:
        raise PlanError(f"{what}: sha256 {actual} does not match {key}={expected}")
    return None


def namespace_manifest(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def gateway_phases(
    crds: Sequence[Manifest], controller: Sequence[Manifest], gateway: Sequence[Manifest]
) -> list[Phase]:
    """CRDs first (established before anything uses them), then the controller's release in
    its own hook order, then the Gateway."""
    for obj in crds:
        if obj.get("kind") != "CustomResourceDefinition":
            raise PlanError(f"Gateway API CRDs: {obj.get('kind')} is not a CRD")
    found = [
        Phase("gateway-api", "CRDs", tuple(crds)),
        Phase(NGF_RELEASE, "Namespace", (namespace_manifest(GATEWAY_NAMESPACE),)),
        *phases(NGF_RELEASE, controller),
        Phase("gateway", "Sync", tuple(gateway)),
    ]
    return [dataclasses.replace(phase, namespace=GATEWAY_NAMESPACE) for phase in found]


def priority_classes(policies: Sequence[Manifest]) -> Phase:
    """The PriorityClasses of k3s/cluster-policies.yaml (its preview quota is Argo CD's)."""
    found = tuple(o for o in policies if o.get("kind") == "PriorityClass")
    if not found:
        raise PlanError(f"{POLICIES_FILE}: no PriorityClass")
    return Phase("cluster-policies", "PriorityClasses", found)
