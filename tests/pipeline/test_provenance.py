"""The SLSA v1 provenance statement (ci.core.provenance), parsed by the in-toto attestation
framework's own protobuf bindings: an unknown or misspelt field is an error there."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dockerfile
import pytest
from ci.core import toolversions
from ci.core.provenance import (
    PREDICATE_TYPE,
    ImageBuild,
    ProvenanceError,
    base_images,
    predicate,
    statement,
)
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

DIGEST = "sha256:" + "ab" * 32
STARTED = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
BUILD = ImageBuild(
    image="ghcr.io/example-org/chat-platform/auth",
    digest=DIGEST,
    service="auth",
    dockerfile="services/auth/Dockerfile",
    source_repository="https://github.com/example-org/chat-platform",
    revision="1" * 40,
    version="1.2.3",
    platforms=["linux/arm64", "linux/amd64"],
    base_images=[toolversions.PYTHON_RUNTIME_IMAGE],
    builder_id="https://github.com/example-org/chat-platform/actions/runs/42",
    invocation_id="42-1",
    started=STARTED,
    finished=STARTED + timedelta(minutes=3),
    build_args={"VERSION": "1.2.3", "REVISION": "1" * 40},
)


def parsed(document: dict[str, Any]) -> Statement:
    message = json_format.ParseDict(document, statement_pb2.Statement())
    return Statement.copy_from_pb(message)


def test_the_statement_is_a_valid_in_toto_v1_statement_of_a_slsa_v1_provenance() -> None:
    document = statement(BUILD)
    parsed(document).validate()
    json_format.ParseDict(document["predicate"], provenance_pb2.Provenance())
    assert document["predicateType"] == PREDICATE_TYPE
    assert document["subject"] == [
        {"name": "ghcr.io/example-org/chat-platform/auth", "digest": {"sha256": "ab" * 32}}
    ]


def test_the_build_is_described_by_its_source_platforms_and_pinned_bases() -> None:
    body = predicate(BUILD)
    external = body["buildDefinition"]["externalParameters"]
    assert external["source"] == {
        "repository": "https://github.com/example-org/chat-platform",
        "revision": "1" * 40,
    }
    assert external["platforms"] == ["linux/amd64", "linux/arm64"]
    dependencies = body["buildDefinition"]["resolvedDependencies"]
    assert dependencies[0]["digest"] == {"gitCommit": "1" * 40}
    base = toolversions.PYTHON_RUNTIME_IMAGE
    assert dependencies[1] == {
        "uri": f"pkg:docker/{base.split('@')[0]}",
        "digest": {"sha256": base.split("@sha256:")[1]},
    }
    assert body["runDetails"]["metadata"]["startedOn"] == "2026-12-06T01:00:00Z"


def test_a_misspelt_field_is_caught_by_the_upstream_schema() -> None:
    document = statement(BUILD)
    document["predicate"]["buildDefinition"]["externalParameter"] = {}
    with pytest.raises(json_format.ParseError, match="externalParameter"):
        json_format.ParseDict(document["predicate"], provenance_pb2.Provenance())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"digest": "sha256:abc"}, "digest 'sha256:abc'"),
        ({"revision": "main"}, "revision 'main'"),
        ({"platforms": []}, "platforms"),
        ({"base_images": ["python:3.12"]}, "base_images: 'python:3.12' is not pinned"),
        ({"finished": STARTED - timedelta(seconds=1)}, "finished: before started"),
        ({"image": "ghcr.io/org/auth:1.2.3"}, "without tag or digest"),
        ({"started": datetime(2026, 12, 6), "finished": datetime(2026, 12, 7)}, "time zone"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProvenanceError, match=message):
        statement(dataclasses.replace(BUILD, **change))


ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))


def official_bases(path: Path) -> list[str]:
    """The FROM images as BuildKit's own parser reads the file, global ARG defaults applied."""
    commands = dockerfile.parse_file(str(path))
    first_from = next(i for i, c in enumerate(commands) if c.cmd.upper() == "FROM")
    defaults = dict(
        c.value[0].split("=", 1) for c in commands[:first_from] if c.cmd.upper() == "ARG"
    )
    stages: set[str] = set()
    bases: list[str] = []
    for command in commands[first_from:]:
        if command.cmd.upper() != "FROM":
            continue
        image = defaults.get(
            command.value[0].removeprefix("${").removesuffix("}"), command.value[0]
        )
        if image not in stages and image not in bases:
            bases.append(image)
        if len(command.value) == 3:
            stages.add(command.value[2])
    return bases


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_each_image_records_the_bases_its_own_dockerfile_pins(path: Path) -> None:
    bases = base_images(path.read_text(), str(path.relative_to(ROOT)))
    assert bases == official_bases(path)
    built = predicate(dataclasses.replace(BUILD, base_images=bases))
    uris = [d["uri"] for d in built["buildDefinition"]["resolvedDependencies"][1:]]
    assert uris == [f"pkg:docker/{base.split('@')[0]}" for base in bases]


def test_the_frontend_records_node_and_nginx_not_python() -> None:
    path = ROOT / "services/frontend/Dockerfile"
    bases = base_images(path.read_text(), "services/frontend/Dockerfile")
    assert [base.split(":")[0] for base in bases] == ["node", "nginxinc/nginx-unprivileged"]
    assert toolversions.NODE_IMAGE in bases
    auth = base_images((ROOT / "services/auth/Dockerfile").read_text(), "auth")
    assert auth == [toolversions.PYTHON_RUNTIME_IMAGE]


def test_a_from_with_an_unset_arg_names_the_file() -> None:
    text = "ARG BASE=python:3@sha256:" + "a" * 64 + "\nFROM ${BSAE} AS build\nFROM build\n"
    with pytest.raises(ProvenanceError, match=r"x/Dockerfile: FROM uses \$BSAE"):
        base_images(text, "x/Dockerfile")
    assert base_images(text.replace("BSAE", "BASE"), "x") == ["python:3@sha256:" + "a" * 64]
