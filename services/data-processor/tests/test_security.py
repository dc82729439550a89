"""Findings of the second security pass, against gunicorn serving the app over real HTTP (the
harness's PostgreSQL and Redis): Unicode digits, look-alike admin names, cookie flags."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable

import httpx
import pytest
from harness.tokens import TokenIssuer

Manage = Callable[..., subprocess.CompletedProcess[bytes]]
STAFF_PASSWORD = "a-long-password-9"
FULLWIDTH_RTSTAFF = "".join(chr(ord(c) + 0xFEE0) for c in "rtstaff")


# Superscript two, circled one, Arabic-Indic three, fullwidth one: isdigit(), not ASCII.
@pytest.mark.parametrize("days", ["\u00b2", "\u2460", "\u0663", "\uff11"])
def test_unicode_digits_in_days_are_a_400_naming_the_parameter(
    server: str, token_issuer: TokenIssuer, days: str
) -> None:
    headers = token_issuer.bearer(str(uuid.uuid4()), "alice")
    response = httpx.get(f"{server}/stats/me", params={"days": days}, headers=headers, timeout=10)
    assert response.status_code == 400, response.text
    assert "'days'" in response.json()["detail"]


def _create_staff(manage: Manage, username: str) -> None:
    created = manage(
        "createsuperuser", "--noinput", "--username", username, "--email", "staff@example.org",
        env={"DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD},
    )  # fmt: skip
    assert created.returncode == 0, created.stderr.decode()


def _admin_login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    """The admin's login form as a browser posts it: CSRF cookie from the form page, then POST.
    The cookie goes back by hand: it is `Secure`, and this is plain HTTP."""
    page = client.get("/admin/login/")
    csrf = page.cookies["csrftoken"]
    return client.post(
        "/admin/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Cookie": f"csrftoken={csrf}"},
    )


def test_look_alike_names_share_the_accounts_login_budget(server: str, manage: Manage) -> None:
    """Fullwidth `rtstaff` is `rtstaff` to Django's form (NFKC), so it is to the limit too."""
    _create_staff(manage, "rtstaff")
    with httpx.Client(base_url=server, timeout=30) as client:
        guesses = [_admin_login(client, "rtstaff", f"guess-{i}").status_code for i in range(5)]
        assert guesses == [200] * 5  # the form again, with an error: the budget (5) is spent
        look_alikes = [
            _admin_login(client, name, STAFF_PASSWORD)
            for name in (FULLWIDTH_RTSTAFF, " RTSTAFF ", "rtsta\ufb00")  # U+FB00: the ligature ff
        ]
    assert [r.status_code for r in look_alikes] == [429, 429, 429]


def _cookie(response: httpx.Response, name: str) -> str:
    (found,) = (c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}="))
    return found


def test_session_and_csrf_cookies_are_secure(server: str, manage: Manage) -> None:
    _create_staff(manage, "cookiestaff")
    with httpx.Client(base_url=server, timeout=30) as client:
        page = client.get("/admin/login/")
        logged_in = _admin_login(client, "cookiestaff", STAFF_PASSWORD)
    assert logged_in.status_code == 302, logged_in.text
    for cookie in (_cookie(page, "csrftoken"), _cookie(logged_in, "sessionid")):
        assert "; secure" in cookie.lower(), cookie
    assert "; httponly" in _cookie(logged_in, "sessionid").lower()


def test_admin_logins_that_succeed_cost_no_budget(server: str, manage: Manage) -> None:
    """Only failures spend the account's budget (5): a sixth good login is not refused."""
    _create_staff(manage, "busystaff")
    with httpx.Client(base_url=server, timeout=30) as client:
        logins = [_admin_login(client, "busystaff", STAFF_PASSWORD).status_code for _ in range(7)]
    assert logins == [302] * 7
