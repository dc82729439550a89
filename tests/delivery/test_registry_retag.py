"""Re-tagging against a real registry: same digest under the version tag, nothing rebuilt."""

from __future__ import annotations

import hashlib
from pathlib import Path

import bcrypt
import httpx
import pytest
from ci.core.registry import ImageName, Manifest, RegistryClient, RegistryError
from delivery.registry_server import (
    OCI_INDEX,
    OCI_MANIFEST,
    LocalRegistry,
    push_image,
    push_index,
    run_registry,
)
from delivery.token_registry import PASSWORD, USER, run_token_registry


def test_retag_points_the_version_at_the_same_digest(registry: LocalRegistry) -> None:
    digest = push_image(registry.url, "chat/auth", "sha-1a2b3c4", b"auth build 1")
    blobs_before = registry.blob_count()

    with RegistryClient(registry.url) as client:
        result = client.retag("chat/auth", digest, "1.4.0")
        assert result == digest
        assert client.head_digest("chat/auth", "1.4.0") == digest
        assert client.get_manifest("chat/auth", "1.4.0").media_type == OCI_MANIFEST

    # Nothing was built or uploaded: the registry holds exactly the blobs it held before.
    assert registry.blob_count() == blobs_before
    raw = httpx.get(
        f"{registry.url}/v2/chat/auth/manifests/1.4.0",
        headers={"Accept": OCI_MANIFEST},
        timeout=10,
    )
    assert raw.headers["Docker-Content-Digest"] == digest
    assert b'\n   "schemaVersion"' in raw.content  # the exact bytes, formatting included


def test_retag_by_tag_and_of_an_index(registry: LocalRegistry) -> None:
    digest = push_image(registry.url, "chat/backend", "sha-0000001", b"backend")
    size = len(httpx.get(f"{registry.url}/v2/chat/backend/manifests/{digest}", timeout=10).content)
    index = push_index(registry.url, "chat/backend", "main-0000001", digest, size)

    with RegistryClient(registry.url) as client:
        assert client.retag("chat/backend", "main-0000001", "2.0.0") == index
        manifest = client.get_manifest("chat/backend", "2.0.0")
        assert manifest.media_type == OCI_INDEX
        assert manifest.digest == index


def test_retag_of_a_missing_image_fails_clearly(registry: LocalRegistry) -> None:
    with RegistryClient(registry.url) as client:
        assert client.head_digest("chat/ai", "nope") is None
        with pytest.raises(RegistryError, match=r"GET manifest chat/ai:sha256:0+: HTTP 404"):
            client.retag("chat/ai", "sha256:" + "0" * 64, "1.0.0")
        with pytest.raises(ValueError, match="tag"):
            client.put_manifest("chat/ai", "bad tag!", client_manifest())


def client_manifest() -> Manifest:
    return Manifest(media_type=OCI_MANIFEST, data=b"{}", digest="sha256:" + "1" * 64)


def test_image_name_parsing() -> None:
    assert ImageName.parse("ghcr.io/org/app/auth:1.0@sha256:" + "a" * 64) == ImageName(
        "https://ghcr.io", "org/app/auth"
    )
    assert ImageName.parse("127.0.0.1:5000/chat/auth") == ImageName(
        "http://127.0.0.1:5000", "chat/auth"
    )
    with pytest.raises(ValueError, match="registry host"):
        ImageName.parse("auth:1.0")


def htpasswd_line(user: str, password: str) -> str:
    # The registry reads bcrypt htpasswd entries ($2b$); cost 4 keeps the test fast.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{hashed}\n"


def test_retag_with_credentials_on_a_registry_that_requires_them(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_line("ci", "s3cret"))
    with run_registry(tmp_path / "auth-registry", htpasswd=htpasswd) as server:
        digest = push_image(server.url, "chat/auth", "sha-1", b"private", auth=("ci", "s3cret"))

        for user, password in ((None, None), ("ci", "wrong")):
            client = RegistryClient(server.url, user, password)
            with client, pytest.raises(RegistryError, match="HTTP 401"):
                client.retag("chat/auth", digest, "1.0.0")
        with RegistryClient(server.url, "ci", "s3cret") as client:
            assert client.retag("chat/auth", digest, "1.0.0") == digest
            assert client.head_digest("chat/auth", "1.0.0") == digest


def test_retag_through_the_bearer_token_flow() -> None:
    manifest = b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}'
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    with run_token_registry() as server:
        server.manifests[digest] = (OCI_MANIFEST, manifest)
        with RegistryClient(server.url, USER, PASSWORD) as client:
            assert client.retag("org/chat/auth", digest, "2.1.0") == digest
        wrong = RegistryClient(server.url, USER, "wrong")
        with wrong, pytest.raises(RegistryError, match=r"token request .* HTTP 401"):
            wrong.retag("org/chat/auth", digest, "2.1.1")

    assert server.manifests["2.1.0"] == (OCI_MANIFEST, manifest)
    assert server.issued == ["repository:org/chat/auth:pull", "repository:org/chat/auth:pull,push"]
