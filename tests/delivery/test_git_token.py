"""The git token reaches git only through its environment variable (a dagger.Secret in the
engine): the real `git credential fill` answers with it, and nothing else carries it."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest
from ci.core.gitrepo import token_environment

TOKEN = "ghs_0123456789abcdefSECRET"


def fill(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=github.com\npath=acme/chat.git\n\n",
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_git_gets_the_token_from_the_variable_when_it_asks() -> None:
    done = fill({**token_environment("github.com"), "GIT_TOKEN": TOKEN})

    assert done.returncode == 0, done.stderr
    assert "username=x-access-token\n" in done.stdout
    assert f"password={TOKEN}\n" in done.stdout


def test_the_token_is_in_no_other_variable_in_any_encoding() -> None:
    env = token_environment("github.com")
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()

    assert all(TOKEN not in value and encoded not in value for value in env.values())
    assert all("GIT_TOKEN" not in name for name in env)


def test_another_host_gets_no_token() -> None:
    done = fill({**token_environment("git.example.com"), "GIT_TOKEN": TOKEN})

    assert TOKEN not in done.stdout


def test_a_variable_name_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not an environment variable name"):
        token_environment("github.com", "GIT TOKEN; rm")
