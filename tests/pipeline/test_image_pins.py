"""Every image the pipeline pulls is pinned by digest in ci.core.toolversions, or declared
unpinned there with the reason; each digest says how it was obtained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ci.core import toolversions as tv
from ci.core.provenance import base_images
from ci.engine.k3s import K3S_IMAGE

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PIPELINE_IMAGES = {
    "PYTHON_IMAGE": tv.PYTHON_IMAGE,
    "PYTHON_RUNTIME_IMAGE": tv.PYTHON_RUNTIME_IMAGE,
    "NODE_IMAGE": tv.NODE_IMAGE,
    "NGINX_IMAGE": tv.NGINX_IMAGE,
    "POSTGRES_IMAGE": tv.POSTGRES_IMAGE,
    "REDIS_IMAGE": tv.REDIS_IMAGE,
    "VALKEY_IMAGE": tv.VALKEY_IMAGE,
    "TRIVY_IMAGE": tv.TRIVY_IMAGE,
    "GIT_IMAGE": tv.GIT_IMAGE,
    "COSIGN_IMAGE": tv.COSIGN_IMAGE,
    "K3S_IMAGE": K3S_IMAGE,
}


def test_the_list_above_holds_every_image_constant_of_the_versions_file() -> None:
    constants = {name for name in vars(tv) if name.endswith("_IMAGE")}
    assert constants | {"K3S_IMAGE"} == set(PIPELINE_IMAGES)


@pytest.mark.parametrize(("name", "ref"), PIPELINE_IMAGES.items())
def test_each_image_is_pinned_or_declared_unpinned(name: str, ref: str) -> None:
    tagged, _, digest = ref.partition("@")
    if digest:
        assert DIGEST.match(digest), f"{name}: {ref}"
        assert tv.DIGESTS[tagged].digest == digest
    else:
        assert tagged in tv.UNPINNED, f"{name}: {ref} has no digest and no reason"


def test_every_digest_says_how_it_was_obtained() -> None:
    for ref, pin in tv.DIGESTS.items():
        assert DIGEST.match(pin.digest), ref
        assert len(pin.obtained) > 20, ref
    for ref, reason in tv.UNPINNED.items():
        assert ref not in tv.DIGESTS, ref
        assert len(reason) > 20, ref


def test_an_image_nobody_decided_on_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"busybox:1: neither in DIGESTS nor in UNPINNED"):
        tv.pinned("busybox:1")


def test_only_a_source_naming_the_index_marks_a_digest_as_the_index() -> None:
    # The flag is a claim about the source: its note must say where the index was read.
    for ref, pin in tv.DIGESTS.items():
        named = "manifest-list" in pin.obtained or "multi-platform index" in pin.obtained
        assert pin.index == named, f"{ref}: index={pin.index} but the note says: {pin.obtained}"


@pytest.mark.parametrize(
    "dockerfile",
    sorted(Path(__file__).resolve().parents[2].glob("services/*/Dockerfile")),
    ids=lambda p: p.parent.name,
)
def test_every_service_base_is_the_digest_of_the_versions_file(dockerfile: Path) -> None:
    # One place: a base image of a service pinned in its Dockerfile is pinned, identically, here.
    for base in base_images(dockerfile.read_text(), str(dockerfile)):
        tagged, _, digest = base.partition("@")
        assert tagged in tv.DIGESTS, f"{dockerfile}: {tagged} is not in toolversions.DIGESTS"
        assert tv.DIGESTS[tagged].digest == digest, f"{dockerfile}: {base}"
