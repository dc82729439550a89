"""What the e2e tests do through the public API: sign up users and poll with a deadline.

Everything goes through the one base URL, under the ingress paths (/api/auth, /api/chat, ...),
so the suite runs unchanged against the local stack's edge router and the K3s ingress.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

T = TypeVar("T")

REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
PASSWORD = "correct horse battery staple 42"
SIGN_UP_PATIENCE = 120.0  # seconds a sign-up may wait out auth's per-IP rate limits


@dataclass
class User:
    """A registered, logged-in user and a client that sends their access token."""

    id: str
    username: str
    password: str
    access_token: str
    refresh_token: str
    client: httpx.Client


def client_for(base_url: str, access_token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT, headers=headers)


def unique_username(prefix: str = "e2e") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def register(client: httpx.Client, username: str, password: str = PASSWORD) -> dict[str, str]:
    answer = _patiently(client, "/api/auth/register", {"username": username, "password": password})
    assert answer.status_code == 201, f"register: {answer.status_code} {answer.text}"
    body: dict[str, str] = answer.json()
    return body


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> dict[str, object]:
    answer = _patiently(client, "/api/auth/login", {"username": username, "password": password})
    assert answer.status_code == 200, f"login: {answer.status_code} {answer.text}"
    body: dict[str, object] = answer.json()
    return body


def _patiently(client: httpx.Client, path: str, body: dict[str, str]) -> httpx.Response:
    """POST like a well-behaved client: on 429, wait Retry-After and try again (bounded).

    auth limits sign-ups and logins per client IP, and every request of this suite comes from
    one address; the rate-limit tests check the 429 itself without this helper.
    """
    deadline = time.monotonic() + SIGN_UP_PATIENCE
    while True:
        answer = client.post(path, json=body)
        if answer.status_code != 429 or time.monotonic() > deadline:
            return answer
        time.sleep(min(float(answer.headers.get("Retry-After", "1")), 10.0))


def sign_up(base_url: str, prefix: str = "e2e") -> User:
    """Register a fresh user and log in; the returned client carries the access token."""
    username = unique_username(prefix)
    with client_for(base_url) as anonymous:
        created = register(anonymous, username)
        tokens = login(anonymous, username)
    access, refresh = str(tokens["access_token"]), str(tokens["refresh_token"])
    return User(
        id=created["id"],
        username=username,
        password=PASSWORD,
        access_token=access,
        refresh_token=refresh,
        client=client_for(base_url, access),
    )


def poll(
    probe: Callable[[], T], until: Callable[[T], bool], *, timeout: float, interval: float = 0.25
) -> T:
    """Call `probe` until `until(result)` holds; fail with the last result after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout:.0f}s; last: {result!r}")
        time.sleep(interval)
