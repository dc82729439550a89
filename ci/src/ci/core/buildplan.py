"""What `deploy` and `preview` check, build and reuse.

- deploy checks exactly the services it publishes (the same plan), so nothing reaches an
  environment unchecked, the first deploy (no base: every service) included;
- preview builds what changed since the merge base with main, plus any service that has no
  digest pinned yet, and reuses the digests pinned in staging for every other service.
Pure Python: values files are read with PyYAML (the module runtime has no ruamel.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec
import yaml
from pydantic import BaseModel, ConfigDict

from ci.core.affected import AffectedService, Plan, Reason
from ci.core.catalog import Catalog

PINNED_ENV = "staging"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def values_file(service: str, env: str = PINNED_ENV) -> str:
    return f"charts/{service}/values-{env}.yaml"


def requested_plan(plan: Plan, catalog: Catalog, names: list[str]) -> Plan:
    """`plan` narrowed to the services named on the command line (reason "requested")."""
    services = [
        AffectedService(
            name=name, kind=catalog.get(name).kind, reasons=[Reason(cause="requested", path=name)]
        )
        for name in sorted(set(names))
    ]
    unaffected = [name for name in catalog.names() if name not in names]
    return msgspec.structs.replace(plan, services=services, unaffected=unaffected)


def pinned_image(text: str, path: str) -> str | None:
    """`tag@sha256:...` pinned in a values file, or None when no digest is pinned yet."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML: {exc}") from exc
    image = data.get("image") if isinstance(data, dict) else None
    if not isinstance(image, dict):
        raise ValueError(f"{path}: field 'image' is missing")
    digest, tag = image.get("digest") or "", str(image.get("tag") or "")
    if not digest:
        return None
    if not DIGEST.match(str(digest)):
        raise ValueError(f"{path}: field 'image.digest': {digest!r} is not sha256:<64 hex>")
    if not TAG.match(tag):
        raise ValueError(f"{path}: field 'image.tag': {tag!r} is not an image tag")
    return f"{tag}@{digest}"


class PreviewBuild(BaseModel):
    """Services to build and push for a preview, and the pinned images reused for the rest."""

    model_config = ConfigDict(frozen=True)

    build: list[str]
    reuse: dict[str, str]


def preview_build(plan: Plan, catalog: Catalog, pinned: Mapping[str, str | None]) -> PreviewBuild:
    """Build what the branch changed (plan against the merge base) and what has no pinned
    digest; every other service keeps the image pinned in staging."""
    changed = set(plan.names())
    build = [name for name in catalog.names() if name in changed or not pinned.get(name)]
    reuse = {name: ref for name in catalog.names() if name not in build and (ref := pinned[name])}
    return PreviewBuild(build=build, reuse=reuse)
