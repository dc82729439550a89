"""Image archives named for K3s's auto-import: containerd takes the name from index.json."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from ci.cluster import main
from ci.core.cluster_images import CONTAINERD_NAME, OCI_REF_NAME, name_archive
from ci.core.cluster_plan import PlanError


def oci_archive(path: Path) -> dict[str, bytes]:
    """An OCI image layout as `as_tarball()` writes it: layout marker, unnamed index, blobs."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    digest = hashlib.sha256(manifest).hexdigest()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{digest}",
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.created": "2026-11-27T10:00:00Z"},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": json.dumps(index).encode(),
        f"blobs/sha256/{digest}": manifest,
        f"blobs/sha256/{hashlib.sha256(config).hexdigest()}": config,
    }
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return files


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }


def test_the_index_names_the_image_and_every_blob_is_copied_unchanged(tmp_path: Path) -> None:
    original = oci_archive(tmp_path / "auth.tar")

    name_archive(tmp_path / "auth.tar", tmp_path / "named.tar", "ci.local/chat-platform/auth:ci")

    named = members(tmp_path / "named.tar")
    assert set(named) == set(original)
    assert {k: v for k, v in named.items() if k != "index.json"} == {
        k: v for k, v in original.items() if k != "index.json"
    }
    entry = json.loads(named["index.json"])["manifests"][0]
    assert entry["annotations"] == {
        "org.opencontainers.image.created": "2026-11-27T10:00:00Z",
        CONTAINERD_NAME: "ci.local/chat-platform/auth:ci",
        OCI_REF_NAME: "ci",
    }
    assert entry["digest"] == json.loads(original["index.json"])["manifests"][0]["digest"]


def test_something_that_is_not_an_image_archive_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    with tarfile.open(tmp_path / "plain.tar", "w") as archive:
        archive.addfile(tarfile.TarInfo("readme"), io.BytesIO(b""))
    (tmp_path / "garbage.tar").write_bytes(b"not a tar at all")

    with pytest.raises(PlanError, match="not an OCI image archive"):
        name_archive(tmp_path / "plain.tar", tmp_path / "out.tar", "a/b:c")
    with pytest.raises(PlanError, match="not a readable image archive"):
        name_archive(tmp_path / "garbage.tar", tmp_path / "out.tar", "a/b:c")
    assert not (tmp_path / "out.tar").exists()


def test_a_name_with_a_digest_is_refused(tmp_path: Path) -> None:
    oci_archive(tmp_path / "auth.tar")

    with pytest.raises(PlanError, match="must be REPOSITORY:TAG"):
        name_archive(tmp_path / "auth.tar", tmp_path / "out.tar", f"a/b@sha256:{'0' * 64}")


def test_the_command_names_every_archive_into_the_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    oci_archive(tmp_path / "auth.tar")
    oci_archive(tmp_path / "ai.tar")
    out = tmp_path / "images"

    code = main(
        [
            "name-archives",
            "--out",
            str(out),
            "--archive",
            f"ci.local/chat-platform/auth:ci={tmp_path / 'auth.tar'}",
            f"ci.local/chat-platform/ai:ci={tmp_path / 'ai.tar'}",
        ]
    )

    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["ai_ci.tar", "auth_ci.tar"]
    assert main(["name-archives", "--out", str(out), "--archive", "auth"]) == 2
    assert "--archive: 'auth' is not NAME=PATH" in capsys.readouterr().err
