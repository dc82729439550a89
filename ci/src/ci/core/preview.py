"""Preview environments: one file per branch under argocd/previews/, read by an ApplicationSet.

The file is written only after the branch's images are in the registry (the caller passes the
digests that publish returned, and `verify` checks each one against the registry), so Argo CD
never syncs a preview whose image does not exist. Removing the file removes the preview.

The file names every service: the branch's images for those it built, staging's pinned images
for the rest (a service missing from the file would run the placeholder of values-preview.yaml,
which no registry holds). Argo CD reads the charts at `revision`, so chart changes are previewed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
    field_serializer,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ci.core.gitops import (
    SKIP_CI_MARKER,
    ImageRef,
    PushPolicy,
    check_label,
    environment_services,
    read_image,
    transact,
    values_path,
)
from ci.core.gitrepo import Git
from ci.core.versions import preview_slug as preview_slug  # re-exported: callers import it here
from ci.core.yamlfile import atomic_write

PREVIEW_DIR = "argocd/previews"
DEFAULT_TTL = timedelta(hours=72)
# Where the images of services the branch did not build come from.
FALLBACK_ENV = "staging"
# A branch, tag or commit as git and Argo CD's targetRevision take it (no spaces, no "..").
REVISION = re.compile(r"^(?!.*\.\.)[^\s~^:?*\[\\]{1,255}$")
HEADER = (
    "# Written by the preview pipeline (ci core preview.py) and read by the previews\n"
    "# ApplicationSet's git files generator. Do not edit: re-run the preview job instead.\n"
)


class PreviewError(RuntimeError):
    """A preview cannot be written or removed; nothing was changed."""


def check_revision(value: str) -> str:
    if not REVISION.match(value):
        raise ValueError(f"revision {value!r} is not a git branch, tag or commit")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("expires must carry a time zone (RFC 3339, e.g. 2026-01-01T00:00:00Z)")
    return value.astimezone(UTC)


class PreviewImage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str
    digest: str


class Preview(BaseModel):
    """The content of argocd/previews/<slug>.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    branch: str
    slug: Annotated[str, AfterValidator(lambda v: check_label("slug", v))]
    namespace: Annotated[str, AfterValidator(lambda v: check_label("namespace", v))]
    host: str
    # The git revision Argo CD reads the charts at: the built commit, else the branch itself.
    revision: Annotated[str, AfterValidator(check_revision)]
    images: dict[str, PreviewImage]
    expires: Annotated[datetime, AfterValidator(_utc)]

    @model_validator(mode="before")
    @classmethod
    def _revision_defaults_to_branch(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("revision") and data.get("branch"):
            return {**data, "revision": data["branch"]}
        return data

    @field_serializer("expires")
    def _rfc3339(self, value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def expired(self, now: datetime) -> bool:
        return self.expires <= now

    def image_refs(self) -> dict[str, ImageRef]:
        return {name: ImageRef(i.tag, i.digest) for name, i in self.images.items()}


def build_preview(
    branch: str,
    images: Mapping[str, ImageRef],
    domain: str,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    revision: str | None = None,
) -> Preview:
    """The preview of `branch`; `revision` (the commit the images were built from) pins the
    charts, else Argo CD follows the branch."""
    slug = preview_slug(branch)
    if not images:
        raise ValueError("preview: no images given (publish the branch's images first)")
    return Preview(
        branch=branch,
        slug=slug,
        namespace=f"preview-{slug}",
        host=f"{slug}.{domain.strip('.')}",
        revision=revision or branch,
        images={name: PreviewImage(tag=r.tag, digest=r.digest) for name, r in images.items()},
        expires=(now + ttl).replace(microsecond=0),
    )


def with_fallback_images(preview: Preview, root: Path, env: str = FALLBACK_ENV) -> Preview:
    """The preview with `env`'s pinned image for every service the branch did not build."""
    images = dict(preview.images)
    for service in environment_services(root, env):
        ref = None if service in images else read_image(values_path(root, service, env))
        if ref is not None:
            images[service] = PreviewImage(tag=ref.tag, digest=ref.digest)
    return preview.model_copy(update={"images": images})


def preview_path(root: Path, slug: str) -> Path:
    return root / PREVIEW_DIR / f"{check_label('slug', slug)}.yaml"


def render(preview: Preview) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = StringIO()
    yaml.dump(preview.model_dump(mode="json"), buffer)
    return HEADER + buffer.getvalue()


def read_preview(path: Path) -> Preview:
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        return Preview.model_validate(data)
    except (OSError, YAMLError) as exc:
        raise PreviewError(f"{path}: cannot read: {exc}") from exc
    except ValidationError as exc:
        fields = "; ".join(
            f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors()
        )
        raise PreviewError(f"{path}: {fields}") from exc


def list_previews(root: Path) -> list[Path]:
    return sorted((root / PREVIEW_DIR).glob("*.yaml"))


def write_preview(
    git: Git,
    preview: Preview,
    policy: PushPolicy | None = None,
    *,
    verify: Callable[[str, ImageRef], bool] | None = None,
    max_previews: int = 20,
) -> str | None:
    """Commit and push the preview file; None when it already holds these images.

    `verify(service, ref)` must confirm every image is in the registry; a missing image stops
    everything before git is touched.
    """
    policy = policy or PushPolicy()
    for service, ref in preview.image_refs().items():
        if verify is not None and not verify(service, ref):
            raise PreviewError(
                f"preview {preview.slug}: image {service} {ref.short()} is not in the registry; "
                "publish must succeed before the preview is written"
            )

    built = set(preview.images)

    def edit(_start: str) -> tuple[list[Path], str] | None:
        path = preview_path(git.workdir, preview.slug)
        complete = with_fallback_images(preview, git.workdir)
        if path.exists():
            current = read_preview(path)
            if (current.images, current.branch, current.revision) == (
                complete.images,
                complete.branch,
                complete.revision,
            ):
                return None  # same images and charts: nothing to roll out
        others = [p for p in list_previews(git.workdir) if p != path]
        if len(others) >= max_previews:
            raise PreviewError(f"preview cap reached: {len(others)} previews exist")
        atomic_write(path, render(complete))
        tags = ", ".join(
            f"{name} {image.tag}" for name, image in sorted(preview.images.items()) if name in built
        )
        message = (
            f"preview({preview.slug}): {tags} {SKIP_CI_MARKER}\n\n"
            f"Branch: {preview.branch}\nHost: {preview.host}\nExpires: "
            f"{render_time(preview.expires)}\n"
        )
        return [path], message

    commit, _ = transact(git, policy, edit)
    return commit


def render_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def destroy_preview(git: Git, branch: str, policy: PushPolicy | None = None) -> str | None:
    """Remove the branch's preview file (commit + push); None when there is none."""
    slug = preview_slug(branch)

    def edit(_start: str) -> tuple[list[Path], str] | None:
        path = preview_path(git.workdir, slug)
        if not path.exists():
            return None
        path.unlink()
        return [path], f"preview-destroy({slug}): {branch} {SKIP_CI_MARKER}\n"

    commit, _ = transact(git, policy or PushPolicy(), edit)
    return commit


def gc_previews(
    git: Git, now: datetime, policy: PushPolicy | None = None
) -> tuple[list[str], list[str]]:
    """Remove every expired preview in one commit. Returns (removed slugs, problems).

    A file that cannot be read is reported, never deleted: a parse error must not turn into a
    mass deletion of previews.
    """
    removed: list[str] = []
    problems: list[str] = []

    def edit(_start: str) -> tuple[list[Path], str] | None:
        removed.clear()
        problems.clear()
        paths = []
        for path in list_previews(git.workdir):
            try:
                preview = read_preview(path)
            except PreviewError as exc:
                problems.append(str(exc))
                continue
            if preview.expired(now):
                path.unlink()
                paths.append(path)
                removed.append(preview.slug)
        if not paths:
            return None
        message = f"preview-gc: remove {len(removed)} expired {SKIP_CI_MARKER}\n\n" + "".join(
            f"Removed: {slug}\n" for slug in removed
        )
        return paths, message

    commit, _ = transact(git, policy or PushPolicy(), edit)
    return (removed if commit else []), problems
