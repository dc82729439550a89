"""SLSA v1 provenance of a published image, as an in-toto v1 Statement.

The engine attaches the predicate to the image with `cosign attest --type slsaprovenance1`
(cosign wraps it in a Statement whose subject is the image's digest: the one built here). The
build is described by what decides its bytes: the repository and commit it was built from, the
Dockerfile, the build arguments, the platforms, and the base images pinned by digest.
Field names follow https://slsa.dev/spec/v1.0/provenance and the in-toto Statement v1.

No `import dagger`: the engine, the host and the tests share this code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# What the build is: ours, documented in docs/pipeline.md (a Dagger module building a Dockerfile).
BUILD_TYPE = "https://github.com/example-org/chat-platform/ci/build-image/v1"
DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
PINNED_IMAGE = re.compile(r"^[\w.:/-]+@sha256:[0-9a-f]{64}$")


class ProvenanceError(ValueError):
    """An input of the provenance is malformed; the message names the field."""


@dataclass(frozen=True)
class ImageBuild:
    """One published image and how it was built."""

    image: str  # registry/repository, without tag or digest
    digest: str  # sha256:<hex> of what was pushed (the multi-platform index when there is one)
    service: str
    dockerfile: str  # repository-relative path
    source_repository: str  # e.g. https://github.com/org/repo
    revision: str  # the full commit
    version: str
    platforms: Sequence[str]
    base_images: Sequence[str]  # name:tag@sha256:... as the Dockerfile pins them
    builder_id: str  # the workflow run that built it
    invocation_id: str
    started: datetime
    finished: datetime
    build_args: Mapping[str, str] = field(default_factory=dict)


def _checked(build: ImageBuild) -> None:
    if not DIGEST.match(build.digest):
        raise ProvenanceError(f"digest {build.digest!r}: not sha256:<64 hex>")
    if not COMMIT.match(build.revision):
        raise ProvenanceError(f"revision {build.revision!r}: not a full commit sha")
    if not build.platforms:
        raise ProvenanceError("platforms: at least one (e.g. linux/amd64)")
    for base in build.base_images:
        if not PINNED_IMAGE.match(base):
            raise ProvenanceError(f"base_images: {base!r} is not pinned by digest")
    if build.finished < build.started:
        raise ProvenanceError("finished: before started")
    if "@" in build.image or ":" in build.image.rsplit("/", 1)[-1]:
        raise ProvenanceError(f"image {build.image!r}: a name without tag or digest")


def predicate(build: ImageBuild) -> dict[str, Any]:
    """The SLSA v1 predicate (what `cosign attest --predicate` takes)."""
    _checked(build)
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "service": build.service,
                "dockerfile": build.dockerfile,
                "source": {"repository": build.source_repository, "revision": build.revision},
                "version": build.version,
                "platforms": sorted(build.platforms),
                "buildArgs": dict(sorted(build.build_args.items())),
            },
            "resolvedDependencies": [
                {
                    "uri": f"git+{build.source_repository}@{build.revision}",
                    "digest": {"gitCommit": build.revision},
                },
                *(_base_dependency(base) for base in build.base_images),
            ],
        },
        "runDetails": {
            "builder": {"id": build.builder_id},
            "metadata": {
                "invocationId": build.invocation_id,
                "startedOn": _rfc3339(build.started),
                "finishedOn": _rfc3339(build.finished),
            },
        },
    }


def statement(build: ImageBuild) -> dict[str, Any]:
    """The in-toto v1 Statement: the image's digest as subject, the predicate above."""
    body = predicate(build)
    hex_digest = DIGEST.match(build.digest)
    assert hex_digest is not None  # checked by predicate()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": build.image, "digest": {"sha256": hex_digest.group(1)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": body,
    }


def _base_dependency(ref: str) -> dict[str, Any]:
    name, _, digest = ref.partition("@")
    return {"uri": f"pkg:docker/{name}", "digest": {"sha256": digest.removeprefix("sha256:")}}


def base_images(dockerfile: str, path: str) -> list[str]:
    """Every image the Dockerfile builds FROM, in order, as its global ARG defaults pin them
    (the engine builds with those defaults): the frontend's node and nginx, a Python service's
    python. A FROM naming an earlier stage is not an image."""
    logical = re.sub(r"\\\n", " ", dockerfile)
    defaults: dict[str, str] = {}
    stages: set[str] = set()
    found: list[str] = []
    for line in logical.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not found and not stages and "=" in rest:
            name, _, value = rest.strip().partition("=")
            defaults[name] = value.strip().strip('"')
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = _expand(words[0], defaults, path) if words else ""
            if not image:
                raise ProvenanceError(f"{path}: FROM without an image")
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
            if image not in stages and image not in found:
                found.append(image)
    if not found:
        raise ProvenanceError(f"{path}: no FROM")
    return found


def _expand(word: str, defaults: dict[str, str], path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in defaults:
            raise ProvenanceError(f"{path}: FROM uses ${name}, which no global ARG sets")
        return defaults[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, word)


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ProvenanceError(f"{moment.isoformat()}: a time without a time zone")
    return moment.isoformat().replace("+00:00", "Z")
