"""The HTTP API through Flask's test client, against each storage backend for real: a
temporary volume, and a bucket on a real S3 server (weed); the catalog on a real PostgreSQL.

(No conftest.py: mypy maps every conftest in a hyphenated service folder to the same module.)
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from harness.s3 import ADMIN_KEYS, S3Server
from harness.servers import PostgresServer
from harness.tokens import TokenIssuer
from media_storage.app import MediaService, create_app
from media_storage.blobs import BlobStore
from media_storage.config import Settings
from media_storage.migrate import upgrade
from media_storage.s3store import S3Store
from werkzeug.test import TestResponse

MAX_BYTES = 64 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def png_bytes(size: int, fill: bytes = b"\x01") -> bytes:
    """Bytes that sniff as PNG (the signature), padded to `size`."""
    return (PNG_SIGNATURE + fill * size)[:size]


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    return tmp_path / "volume" / "media"


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    with s3_server.bucket() as name:
        yield name


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, media_root: Path) -> dict[str, Any]:
    """The storage settings of one backend (the spool under media_root for both)."""
    if request.param == "filesystem":
        return {"media_storage": "filesystem", "media_root": media_root}
    s3 = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return {
        "media_storage": "s3",
        "media_spool_dir": media_root / "tmp",
        "media_s3_endpoint": s3.endpoint,
        "media_s3_bucket": bucket,
        "media_s3_access_key": ADMIN_KEYS[0],
        "media_s3_secret_key": ADMIN_KEYS[1],
    }


@pytest.fixture
def settings(backend: dict[str, Any], database_url: str, token_issuer: TokenIssuer) -> Settings:
    upgrade(database_url)
    return Settings(
        **backend,
        database_url=database_url,
        media_max_upload_bytes=MAX_BYTES,
        jwks_url=token_issuer.jwks_url,
        jwt_issuer=token_issuer.issuer,
        jwt_audience=token_issuer.audience,
    )


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def alice(token_issuer: TokenIssuer) -> dict[str, str]:
    return token_issuer.bearer(str(uuid.uuid4()), "alice")


@pytest.fixture
def bob(token_issuer: TokenIssuer) -> dict[str, str]:
    return token_issuer.bearer(str(uuid.uuid4()), "bob")


def upload(
    client: FlaskClient, headers: dict[str, str], data: bytes, name: str = "picture.png"
) -> TestResponse:
    return client.post(
        "/files",
        data={"file": (io.BytesIO(data), name)},
        headers=headers,
        content_type="multipart/form-data",
    )


def stored_files(app: Flask) -> list[str]:
    """The name of every object in the store and of every file left in its spool (listed by
    the test, not by the store's own code)."""
    store = app.extensions["media"].blobs
    spooled = [p.name for p in store.spool.tmp.iterdir()]
    if isinstance(store, S3Store):
        listed = store.client.list_objects(store.bucket, recursive=True)
        return sorted([str(o.object_name).rsplit("/", 1)[-1] for o in listed] + spooled)
    return sorted([p.name for p in store.blobs.rglob("*") if p.is_file()] + spooled)


def test_upload_list_download_roundtrip(
    app: Flask, client: FlaskClient, alice: dict[str, str], media_root: Path
) -> None:
    data = png_bytes(5000)
    created = upload(client, alice, data)
    assert created.status_code == 201, created.json
    body = created.json
    assert body is not None
    digest = hashlib.sha256(data).hexdigest()
    assert body["sha256"] == digest
    assert body["size"] == len(data)
    assert body["content_type"] == "image/png"
    assert body["name"] == "picture.png"
    assert stored_files(app) == [digest]
    if isinstance(app.extensions["media"].blobs, BlobStore):
        assert (media_root / "blobs" / digest[:2] / digest[2:4] / digest).read_bytes() == data

    listed = client.get("/files", headers=alice).json
    assert listed == {"items": [body]}

    download = client.get(f"/files/{body['id']}", headers=alice)
    assert download.status_code == 200
    assert download.data == data
    assert download.headers["ETag"] == f'"{digest}"'
    assert download.headers["Content-Type"] == "image/png"
    assert download.headers["Accept-Ranges"] == "bytes"
    assert "private" in download.headers["Cache-Control"]


def test_claimed_type_is_ignored_bytes_decide(client: FlaskClient, alice: dict[str, str]) -> None:
    response = client.post(
        "/files",
        data={"file": (io.BytesIO(b"just text\n"), "fake.png", "image/png")},
        headers=alice,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    assert response.json is not None
    assert response.json["content_type"] == "text/plain"


def test_if_none_match_gives_304(client: FlaskClient, alice: dict[str, str]) -> None:
    body = upload(client, alice, png_bytes(1000)).json
    assert body is not None
    etag = f'"{body["sha256"]}"'
    response = client.get(f"/files/{body['id']}", headers={**alice, "If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    other = client.get(f"/files/{body['id']}", headers={**alice, "If-None-Match": '"other"'})
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, 999),
        ("bytes=-5", 995, 999),
        ("bytes=990-5000", 990, 999),
    ],
)
def test_range_requests_get_206(
    client: FlaskClient, alice: dict[str, str], range_header: str, start: int, end: int
) -> None:
    data = png_bytes(1000, fill=bytes(range(256)))
    body = upload(client, alice, data).json
    assert body is not None
    response = client.get(f"/files/{body['id']}", headers={**alice, "Range": range_header})
    assert response.status_code == 206
    assert response.data == data[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/1000"
    assert response.headers["Content-Length"] == str(end - start + 1)


def test_unsatisfiable_range_gets_416(client: FlaskClient, alice: dict[str, str]) -> None:
    body = upload(client, alice, png_bytes(1000)).json
    assert body is not None
    response = client.get(f"/files/{body['id']}", headers={**alice, "Range": "bytes=5000-6000"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */1000"
    assert response.json is not None
    assert "detail" in response.json


def test_upload_over_the_limit_is_refused_and_leaves_nothing(
    app: Flask, client: FlaskClient, alice: dict[str, str]
) -> None:
    # One byte over: the request is small enough to pass the Content-Length pre-check, so the
    # limit trips while the body streams.
    response = upload(client, alice, png_bytes(MAX_BYTES + 1))
    assert response.status_code == 413
    assert response.json is not None
    assert str(MAX_BYTES) in response.json["detail"]
    # Far over: refused from Content-Length before reading the body.
    assert upload(client, alice, png_bytes(MAX_BYTES * 4)).status_code == 413
    assert stored_files(app) == []
    assert client.get("/files", headers=alice).json == {"items": []}
    # Exactly at the limit is fine.
    assert upload(client, alice, png_bytes(MAX_BYTES)).status_code == 201


@pytest.mark.parametrize(
    "data",
    [
        b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 100,  # an executable
        b"<html><script>alert(1)</script></html>",  # HTML (stored XSS)
        b"PK\x03\x04" + b"\x00" * 100,  # a zip archive
        b"\x00\x01\x02\x03\xfe\xff" * 50,  # unidentifiable binary
    ],
)
def test_forbidden_type_is_refused_and_leaves_nothing(
    app: Flask, client: FlaskClient, alice: dict[str, str], data: bytes
) -> None:
    response = upload(client, alice, data, name="innocent.png")
    assert response.status_code == 415
    assert response.json is not None
    assert "not allowed" in response.json["detail"]
    assert stored_files(app) == []
    assert client.get("/files", headers=alice).json == {"items": []}


def test_forbidden_type_is_refused_before_the_rest_is_read(
    app: Flask, client: FlaskClient, alice: dict[str, str]
) -> None:
    data = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * (MAX_BYTES - 100)
    assert upload(client, alice, data).status_code == 415
    assert stored_files(app) == []


@pytest.mark.parametrize(
    ("request_body", "content_type", "status"),
    [
        (b"not multipart", "application/octet-stream", 415),
        (
            b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            400,
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
            "multipart/form-data; boundary=b",
            400,
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
            b"\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            400,
        ),
    ],
    ids=["not-multipart", "no-file-field", "truncated", "empty-file"],
)
def test_malformed_uploads_get_4xx(
    app: Flask,
    client: FlaskClient,
    alice: dict[str, str],
    request_body: bytes,
    content_type: str,
    status: int,
) -> None:
    response = client.post("/files", data=request_body, headers=alice, content_type=content_type)
    assert response.status_code == status
    assert response.json is not None
    assert response.json["detail"]
    assert stored_files(app) == []


def test_two_file_fields_are_refused(
    app: Flask, client: FlaskClient, alice: dict[str, str]
) -> None:
    response = client.post(
        "/files",
        data={"file": [(io.BytesIO(b"one\n"), "a.txt"), (io.BytesIO(b"two\n"), "b.txt")]},
        headers=alice,
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert stored_files(app) == []


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "..\\..\\boot.ini", "evil\x00.txt", "../" * 20 + "x", ".."],
)
def test_path_like_names_cannot_escape_the_root(
    app: Flask,
    client: FlaskClient,
    alice: dict[str, str],
    tmp_path: Path,
    media_root: Path,
    name: str,
) -> None:
    before = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(media_root))
    response = upload(client, alice, b"root:x:0:0:root:/root:/bin/sh\n", name=name)
    assert response.status_code == 201
    body = response.json
    assert body is not None
    assert "/" not in body["name"]
    assert "\\" not in body["name"]
    assert "\x00" not in body["name"]
    after = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(media_root))
    assert after == before
    assert stored_files(app) == [body["sha256"]]
    download = client.get(f"/files/{body['id']}", headers=alice)
    assert download.data == b"root:x:0:0:root:/root:/bin/sh\n"
    assert "attachment" in download.headers["Content-Disposition"]


@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/%2Fetc%2Fpasswd",
        "/files/x",
    ],
)
def test_path_like_ids_are_not_found(client: FlaskClient, alice: dict[str, str], path: str) -> None:
    response = client.get(path, headers=alice)
    assert response.status_code == 404
    assert b"root:" not in response.data


def test_users_see_only_their_own_files(
    client: FlaskClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    body = upload(client, alice, png_bytes(2000)).json
    assert body is not None
    file_url = f"/files/{body['id']}"
    assert client.get("/files", headers=bob).json == {"items": []}
    assert client.get(file_url, headers=bob).status_code == 404
    assert client.delete(file_url, headers=bob).status_code == 404
    assert client.get(file_url, headers=alice).status_code == 200


def test_shared_content_is_stored_once_and_removed_with_its_last_reference(
    app: Flask, client: FlaskClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    data = png_bytes(3000)
    first = upload(client, alice, data).json
    second = upload(client, bob, data).json
    assert first is not None
    assert second is not None
    assert first["sha256"] == second["sha256"]
    assert len(stored_files(app)) == 1

    assert client.delete(f"/files/{first['id']}", headers=alice).status_code == 204
    assert client.get(f"/files/{first['id']}", headers=alice).status_code == 404
    assert len(stored_files(app)) == 1
    assert client.get(f"/files/{second['id']}", headers=bob).data == data

    assert client.delete(f"/files/{second['id']}", headers=bob).status_code == 204
    assert stored_files(app) == []
    assert client.delete(f"/files/{second['id']}", headers=bob).status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer", "Basic YWxpY2U6cHc=", "Bearer not.a.jwt"])
def test_requests_without_a_valid_token_get_401(client: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/files", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json is not None
    assert response.json["detail"]


def test_expired_or_foreign_tokens_get_401(client: FlaskClient, token_issuer: TokenIssuer) -> None:
    expired = token_issuer.issue("u1", "alice", exp=1)
    wrong_audience = token_issuer.issue("u1", "alice", aud="other")
    for token in (expired, wrong_audience):
        response = client.get("/files", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_health_ready_and_metrics(client: FlaskClient, alice: dict[str, str]) -> None:
    assert client.get("/health").json == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json is not None
    assert ready.json["checks"]["storage"]["status"] == "ok"
    assert ready.json["checks"]["catalog"]["status"] == "ok"
    client.get("/files", headers=alice)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'http_requests_total{method="GET",route="/files",status="200"} 1.0' in metrics.text
    assert metrics.headers["X-Request-ID"]


def test_not_ready_when_the_volume_is_not_writable(app: Flask, client: FlaskClient) -> None:
    media: MediaService = app.extensions["media"]
    # Root ignores permission bits, so break the volume structurally instead.
    media.blobs.spool.tmp.rmdir()
    media.blobs.spool.tmp.write_text("not a directory")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json is not None
    assert response.json["checks"]["storage"]["status"] == "error"


def test_concurrent_uploads_and_deletes_of_shared_content_keep_blobs_consistent(
    app: Flask, client: FlaskClient, alice: dict[str, str], token_issuer: TokenIssuer
) -> None:
    """Threads race to upload and delete the same bytes; the blob lives exactly as long as a
    row references it (alice's copy stays throughout)."""
    data = png_bytes(4000)
    kept = upload(client, alice, data).json
    assert kept is not None
    errors: list[str] = []

    def churn() -> None:
        own = app.test_client()
        headers = token_issuer.bearer(str(uuid.uuid4()), "racer")
        for _ in range(10):
            created = upload(own, headers, data)
            if created.status_code != 201 or created.json is None:
                errors.append(f"upload {created.status_code}")
                continue
            gone = own.delete(f"/files/{created.json['id']}", headers=headers)
            if gone.status_code != 204:
                errors.append(f"delete {gone.status_code}")

    threads = [threading.Thread(target=churn) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(stored_files(app)) == 1
    assert client.get(f"/files/{kept['id']}", headers=alice).data == data
    assert client.delete(f"/files/{kept['id']}", headers=alice).status_code == 204
    assert stored_files(app) == []


def test_each_user_has_a_storage_quota(
    settings: Settings, alice: dict[str, str], bob: dict[str, str]
) -> None:
    """A user cannot fill the volume: past MEDIA_USER_QUOTA_BYTES uploads get 507, others may."""
    client = create_app(settings.model_copy(update={"media_user_quota_bytes": 3000})).test_client()
    assert upload(client, alice, png_bytes(1000, b"\x01")).status_code == 201
    assert upload(client, alice, png_bytes(1500, b"\x02")).status_code == 201
    refused = upload(client, alice, png_bytes(600, b"\x03"))
    assert refused.status_code == 507
    assert "quota of 3000 bytes" in refused.get_json()["detail"]
    assert upload(client, bob, png_bytes(2500, b"\x04")).status_code == 201
    # Deleting frees the room again.
    first = client.get("/files", headers=alice).get_json()["items"][0]["id"]
    assert client.delete(f"/files/{first}", headers=alice).status_code == 204
    assert upload(client, alice, png_bytes(600, b"\x05")).status_code == 201


def test_database_unavailable_is_a_503_to_retry_and_it_answers_again_after(
    private_postgres: PostgresServer,
    media_root: Path,
    token_issuer: TokenIssuer,
    alice: dict[str, str],
) -> None:
    """PostgreSQL stopped (or being failed over): 503 with Retry-After, not a 500; then back."""
    url = private_postgres.url()
    upgrade(url)
    settings = Settings(
        media_storage="filesystem",
        media_root=media_root,
        database_url=url,
        jwks_url=token_issuer.jwks_url,
        jwt_issuer=token_issuer.issuer,
        jwt_audience=token_issuer.audience,
    )
    client = create_app(settings).test_client()
    assert client.get("/files", headers=alice).status_code == 200
    private_postgres.stop()
    answer = client.get("/files", headers=alice)
    assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "1")
    assert answer.get_json() == {"detail": "database unavailable"}
    private_postgres.start()
    assert client.get("/files", headers=alice).status_code == 200
