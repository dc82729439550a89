"""Image archives for K3s's auto-import directory, named so pods can refer to them.

The engine exports each built image with `Container.as_tarball()`: an OCI layout whose index.json
carries no image name (dagger/dagger#6999). containerd's importer (which K3s runs on every archive
in /var/lib/rancher/k3s/agent/images at start) names an image after the index entry's
`io.containerd.image.name` annotation, so this adds it (and the OCI ref name, the tag) and copies
every other member byte for byte.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from ci.core.cluster_plan import PlanError, image_values

CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
INDEX = "index.json"


def named_index(index: dict[str, Any], name: str) -> dict[str, Any]:
    """index.json with every manifest entry annotated with `name` (repository:tag)."""
    values = image_values(name, "image name")
    if values["digest"]:
        raise PlanError(f"image name: {name!r} must be REPOSITORY:TAG (no digest)")
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise PlanError(f"{INDEX}: no manifests to name")
    named = []
    for entry in manifests:
        annotations = {**entry.get("annotations", {}), CONTAINERD_NAME: name}
        annotations[OCI_REF_NAME] = values["tag"]
        named.append({**entry, "annotations": annotations})
    return {**index, "manifests": named}


def name_archive(source: Path, target: Path, name: str) -> None:
    """Copy the OCI archive `source` to `target` with its images named `name`."""
    try:
        with tarfile.open(source) as archive, tarfile.open(target, "w") as out:
            members = archive.getmembers()
            if not any(m.name.lstrip("./") == INDEX for m in members):
                raise PlanError(f"{source}: not an OCI image archive (no {INDEX})")
            for member in members:
                data = archive.extractfile(member) if member.isfile() else None
                if member.name.lstrip("./") == INDEX and data is not None:
                    index = named_index(json.load(data), name)
                    payload = json.dumps(index, separators=(",", ":")).encode()
                    member.size = len(payload)
                    out.addfile(member, io.BytesIO(payload))
                else:
                    out.addfile(member, data)
    except (tarfile.TarError, json.JSONDecodeError) as exc:
        target.unlink(missing_ok=True)
        raise PlanError(f"{source}: not a readable image archive: {exc}") from exc
    except PlanError:
        target.unlink(missing_ok=True)
        raise
