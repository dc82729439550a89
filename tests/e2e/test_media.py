"""Files of one user: upload, list, ranged download, delete (/api/media)."""

from __future__ import annotations

import hashlib
from typing import Any

from e2e.api import User

# A text file: on media-storage's default allow-list, recognised from its bytes.
CONTENT = "".join(f"line {i:04d} of the e2e upload\n" for i in range(400)).encode()


def upload(user: User, name: str, content: bytes, content_type: str) -> dict[str, Any]:
    answer = user.client.post("/api/media/files", files={"file": (name, content, content_type)})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_upload_download_with_range_and_delete(user: User) -> None:
    stored = upload(user, "notes.txt", CONTENT, "text/plain")
    assert stored["size"] == len(CONTENT)
    assert stored["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert stored["content_type"].startswith("text/plain")
    listed = user.client.get("/api/media/files").json()["items"]
    assert stored["id"] in [f["id"] for f in listed]

    whole = user.client.get(f"/api/media/files/{stored['id']}")
    assert whole.status_code == 200
    assert whole.content == CONTENT
    assert whole.headers["etag"]

    part = user.client.get(f"/api/media/files/{stored['id']}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == CONTENT[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(CONTENT)}"

    assert user.client.delete(f"/api/media/files/{stored['id']}").status_code == 204
    assert user.client.get(f"/api/media/files/{stored['id']}").status_code == 404
    assert stored["id"] not in [
        f["id"] for f in user.client.get("/api/media/files").json()["items"]
    ]


def test_files_are_private_to_their_owner(user: User, new_user: Any) -> None:
    stored = upload(user, "private.txt", b"mine alone\n", "text/plain")
    stranger = new_user()
    assert stranger.client.get(f"/api/media/files/{stored['id']}").status_code == 404
    assert stranger.client.delete(f"/api/media/files/{stored['id']}").status_code == 404
    assert user.client.get(f"/api/media/files/{stored['id']}").content == b"mine alone\n"


def test_a_forbidden_type_is_refused(user: User) -> None:
    # An ELF executable header, whatever the client claims it is.
    answer = user.client.post(
        "/api/media/files",
        files={"file": ("cat.png", b"\x7fELF\x02\x01\x01" + bytes(200), "image/png")},
    )
    assert 400 <= answer.status_code < 500
    assert "detail" in answer.json()
    assert user.client.get("/api/media/files").json()["items"] == []
