"""Accounts and tokens through the ingress path /api/auth."""

from __future__ import annotations

from e2e.api import PASSWORD, User, client_for, register, unique_username


def test_register_login_and_me(base_url: str) -> None:
    username = unique_username()
    with client_for(base_url) as anonymous:
        created = register(anonymous, username)
        assert created["username"] == username
        tokens = anonymous.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}
        ).json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] > 0
    with client_for(base_url, tokens["access_token"]) as client:
        me = client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json() == {"id": created["id"], "username": username}


def test_a_taken_username_is_a_409(user: User, base_url: str) -> None:
    with client_for(base_url) as anonymous:
        answer = anonymous.post(
            "/api/auth/register", json={"username": user.username, "password": PASSWORD}
        )
    assert answer.status_code == 409
    assert "detail" in answer.json()


def test_a_wrong_password_is_refused(user: User, base_url: str) -> None:
    with client_for(base_url) as anonymous:
        answer = anonymous.post(
            "/api/auth/login", json={"username": user.username, "password": "not the password"}
        )
    assert answer.status_code == 401


def test_refresh_rotates_and_logout_ends_the_session(user: User, base_url: str) -> None:
    with client_for(base_url) as anonymous:
        rotated = anonymous.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
        assert rotated.status_code == 200, rotated.text
        new_refresh = rotated.json()["refresh_token"]
        assert new_refresh != user.refresh_token
        with client_for(base_url, rotated.json()["access_token"]) as client:
            assert client.get("/api/auth/me").json()["id"] == user.id

        assert (
            anonymous.post("/api/auth/logout", json={"refresh_token": new_refresh}).status_code
            == 204
        )
        after = anonymous.post("/api/auth/refresh", json={"refresh_token": new_refresh})
    assert after.status_code == 401


def test_every_service_refuses_requests_without_a_token(base_url: str) -> None:
    with client_for(base_url) as anonymous:
        answers = {
            path: anonymous.get(path).status_code
            for path in ("/api/auth/me", "/api/chat/conversations", "/api/media/files",
                         "/api/stats/stats/me")
        }  # fmt: skip
    assert answers == dict.fromkeys(answers, 401)


def test_a_forged_token_is_refused(base_url: str) -> None:
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
    with client_for(base_url, forged) as client:
        answer = client.get("/api/chat/conversations")
    assert answer.status_code == 401
