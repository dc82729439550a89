"""`python -m ci.deliver`: the commands the Dagger functions run, end to end on real git, a real
registry and a local GitHub API server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci.core.gitops import ImageRef, read_image, values_path
from ci.core.preview import preview_slug
from ci.core.registry import RegistryClient
from ci.deliver import main, parser
from delivery.cosign_layout import Signing, new_key, write_public_key
from delivery.cosign_layout import sign as cosign_sign
from delivery.github_server import TOKEN, FakeGitHub, run_fake_github
from delivery.helpers import configure_identity, git, service_yaml
from delivery.registry_server import LocalRegistry, push_image

ROOT = Path(__file__).resolve().parents[2]
KEY = new_key()  # the pipeline's cosign key pair, for this module's signatures


def values(repository: str, tag: str, digest: str) -> str:
    return (
        "# edited by the pipeline\n"
        f'image:\n  repository: {repository}\n  tag: "{tag}"\n  digest: "{digest}"\n'
        "replicas: 1\n"
    )


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with run_fake_github() as state:
        yield state


@pytest.fixture
def project(tmp_path: Path, registry: LocalRegistry) -> tuple[Path, dict[str, str]]:
    """A clone of a bare remote whose staging pins images that exist in the registry."""
    host = registry.url.removeprefix("http://")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    configure_identity(work)
    digests = {}
    for name in ("auth", "ai"):
        digest = push_image(
            registry.url, f"chat/{name}", f"main-{name}", f"{tmp_path}{name}".encode()
        )
        digests[name] = digest
        (work / "services" / name).mkdir(parents=True)
        (work / "services" / name / "service.yaml").write_text(service_yaml(name, []))
        chart = work / "charts" / name
        chart.mkdir(parents=True)
        for env in ("staging", "production", "preview"):
            pinned = (f"main-{name}", digest) if env == "staging" else ("0.0.0", "")
            (chart / f"values-{env}.yaml").write_text(values(f"{host}/chat/{name}", *pinned))
    git(work, "add", ".")
    git(work, "commit", "-qm", "chore: scaffold")
    git(work, "push", "-q", "origin", "HEAD:main")
    for name in ("auth", "ai"):  # signed, as the engine's publish signs (cosign's tag scheme)
        for digest in digests.values():
            sign(registry, name, digest)
    return work, digests


def sign(registry: LocalRegistry, service: str, digest: str) -> None:
    """A key-based signature where and as cosign stores one."""
    cosign_sign(registry.url, f"chat/{service}", digest, Signing(KEY))


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    return str(write_public_key(KEY, tmp_path / "cosign.pub"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else {}), captured.err


def test_bump_and_usage_errors(
    project: tuple[Path, dict[str, str]], key_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    work, digests = project
    image = f"auth=main-auth@{digests['auth']}"
    code, out, err = run(
        capsys,
        "bump",
        "--repo",
        str(work),
        "--env",
        "production",
        "--image",
        image,
        "--source",
        git(work, "rev-parse", "HEAD"),
        "--public-key",
        key_file,
    )
    assert code == 0, err
    assert out["commit"] == git(work, "rev-parse", "origin/main")
    assert read_image(values_path(work, "auth", "production")) == ImageRef(
        "main-auth", digests["auth"]
    )

    code, _, err = run(
        capsys,
        "bump",
        "--repo",
        str(work),
        "--env",
        "production",
        "--image",
        "auth=latest",
        "--source",
        git(work, "rev-parse", "HEAD"),
    )
    assert code == 2
    assert "--image 'auth=latest'" in err
    code, _, err = run(
        capsys, "rollback", "--repo", str(work), "--env", "production", "--to", "no-such-ref"
    )
    assert code == 1
    assert "is not a commit" in err


def test_argparse_usage_error_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ci.deliver", "bump", "--env"],
        cwd=ROOT / "ci" / "src",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "ci" / "src")},
    )
    assert proc.returncode == 2
    assert "--env" in proc.stderr


def test_release_retags_and_pins_production(
    project: tuple[Path, dict[str, str]],
    registry: LocalRegistry,
    key_file: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, digests = project
    (work / "services/auth/login.py").write_text("x = 1\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "feat(auth): login")
    git(work, "push", "-q", "origin", "HEAD:main")
    blobs = registry.blob_count()

    release = ["release", "--repo", str(work), "--insecure-registry", "--public-key", key_file]
    code, out, err = run(capsys, *release)

    assert code == 0, err
    assert "unsigned_allowed" not in out
    assert out["releases"] == {"auth": {"from": "", "to": "0.1.0"}}
    assert out["tags"] == ["auth-v0.1.0"]
    with RegistryClient(registry.url) as client:
        assert client.head_digest("chat/auth", "0.1.0") == digests["auth"]
        assert client.head_digest("chat/ai", "0.1.0") is None
    assert registry.blob_count() == blobs  # re-tagged, not rebuilt
    git(work, "fetch", "-q", "--tags", "origin")
    assert git(work, "cat-file", "-t", "auth-v0.1.0") == "tag"
    assert read_image(values_path(work, "auth", "production")) == ImageRef("0.1.0", digests["auth"])
    assert git(work, "log", "-1", "--format=%s").startswith("release(production): auth")
    # Nothing new: a second run releases nothing.
    code, out, _ = run(capsys, *release)
    assert (code, out["releases"]) == (0, {})


def test_release_as_pull_request(
    project: tuple[Path, dict[str, str]],
    key_file: str,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, digests = project
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    (work / "services/ai/fix.py").write_text("x = 1\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "fix: reply timeout")
    git(work, "push", "-q", "origin", "HEAD:main")

    code, out, err = run(
        capsys,
        "release",
        "--repo",
        str(work),
        "--insecure-registry",
        "--mode",
        "pull-request",
        "--github-repo",
        "x/chat",
        "--public-key",
        key_file,
    )

    assert code == 0, err
    assert out["production_branch"] == "release/ai-v0.0.1"
    assert out["pull_request"] == github.pulls[0]["html_url"]
    assert github.pulls[0]["head"] == "release/ai-v0.0.1"
    # main's production values are untouched; the branch pins the digest.
    assert read_image(values_path(work, "ai", "production")) is None
    shown = git(work, "show", "origin/release/ai-v0.0.1:charts/ai/values-production.yaml")
    assert digests["ai"] in shown
    assert 'tag: "0.0.1"' in shown


def test_preview_verifies_registry_and_comments(
    project: tuple[Path, dict[str, str]],
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, digests = project
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    base = ["--repo", str(work), "--insecure-registry", "--now", "2026-11-25T00:00:00Z"]
    good = f"auth=feat-login@{digests['auth']}"
    missing = "ai=feat-login@sha256:" + "9" * 64

    code, _, err = run(
        capsys,
        "preview",
        *base,
        "--preview-branch",
        "feat/login",
        "--domain",
        "preview.test",
        "--image",
        good,
        "--image",
        missing,
        "--github-repo",
        "x/chat",
        "--pr",
        "12",
    )
    assert code == 1
    assert "ai feat-login@sha256:9999" in err
    assert github.comments == {}

    code, out, err = run(
        capsys,
        "preview",
        *base,
        "--preview-branch",
        "feat/login",
        "--domain",
        "preview.test",
        "--image",
        good,
        "--github-repo",
        "x/chat",
        "--pr",
        "12",
    )
    assert code == 0, err
    slug = preview_slug("feat/login")
    assert out["host"] == f"{slug}.preview.test"
    assert out["expires"] == "2026-11-28T00:00:00Z"
    assert out["comment"] == "created"
    assert f"https://{slug}.preview.test/" in github.comments[12][0]["body"]
    assert (work / f"argocd/previews/{slug}.yaml").exists()

    code, out, _ = run(capsys, "preview-gc", *base[:2], "--now", "2026-11-29T00:00:00Z")
    assert (code, out["removed"]) == (0, [slug])
    code, out, _ = run(
        capsys,
        "preview-destroy",
        "--repo",
        str(work),
        "--preview-branch",
        "feat/login",
        "--github-repo",
        "x/chat",
        "--pr",
        "12",
    )
    assert (code, out["commit"], out["comment"]) == (0, None, "updated")
    assert "Destroyed" in github.comments[12][0]["body"]


# --- bad input: exit 2 naming the argument, nothing committed or pushed ---------------------


def state(work: Path) -> tuple[str, str, str]:
    """(local HEAD, remote main, work tree status): what bad input must leave unchanged."""
    remote = git(work, "ls-remote", "origin", "refs/heads/main").split()[0]
    return git(work, "rev-parse", "HEAD"), remote, git(work, "status", "--porcelain")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["release", "--dry-run", "--service", "nope"], "--service 'nope'"),
        (["release", "--to-env", "nope"], "--to-env 'nope': unknown environment"),
        (["release", "--from-env", "Bad!"], "--from-env 'Bad!'"),
        (["rollback", "--env", "nope", "--to", "HEAD~1"], "--env 'nope': unknown environment"),
        (["bump", "--env", "staging", "--image", "AUTH=x@sha256:" + "1" * 64], "--image"),
        (["bump", "--env", "staging", "--image", "nosuch=t@sha256:" + "1" * 64], "'nosuch'"),
        (["bump", "--env", "nope", "--image", "auth=t@sha256:" + "1" * 64], "--env 'nope'"),
        (["bump", "--env", "staging", "--source", "nope"], "--source 'nope'"),
        (["bump", "--env", "staging", "--source", "0" * 40], "--source 0000000000"),
        (["promote", "--from", "staging", "--to", "nope"], "--to 'nope'"),
        (["promote", "--from", "staging", "--to", "staging"], "--from and --to"),
        (["promote", "--from", "staging", "--to", "production", "--service", "x"], "'x'"),
        (["preview", "--preview-branch", "f", "--domain", "bad domain"], "--domain 'bad domain'"),
        (["preview", "--preview-branch", "f", "--domain", "example.com", "--pr", "0"], "--pr 0"),
        (["preview", "--preview-branch", "f", "--domain", "x.test", "--ttl-hours", "0"], "--ttl"),
        (["preview-destroy", "--preview-branch", "", "--github-repo", "x/y"], "--preview-branch"),
        (["preview-gc", "--now", "yesterday"], "--now 'yesterday'"),
        (["preview-gc", "--max-attempts", "0"], "--max-attempts 0"),
        (["preview-gc", "--branch", "a..b"], "--branch 'a..b'"),
    ],
)
def test_bad_input_exits_2_naming_it_and_changes_nothing(
    project: tuple[Path, dict[str, str]],
    key_file: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    named: str,
) -> None:
    work, digests = project
    command, *rest = argv
    if command in {"bump", "preview"} and "--image" not in rest:
        rest += ["--image", f"auth=main-auth@{digests['auth']}"]
    if command == "bump" and "--source" not in rest:
        rest += ["--source", git(work, "rev-parse", "HEAD")]
    if command in {"bump", "promote", "release"}:
        rest += ["--public-key", key_file]
    before = state(work)

    code, _, err = run(capsys, command, "--repo", str(work), *rest)

    assert code == 2, err
    assert named in err
    assert "Traceback" not in err
    assert state(work) == before


def test_stale_bump_exits_0_with_nothing_to_do(
    project: tuple[Path, dict[str, str]], key_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    work, digests = project
    old = git(work, "rev-parse", "HEAD")
    (work / "services/auth/more.py").write_text("y = 2\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "feat(auth): more")
    git(work, "push", "-q", "origin", "HEAD:main")
    new = git(work, "rev-parse", "HEAD")
    image = f"auth=main-auth@{digests['ai']}"
    base = ["bump", "--repo", str(work), "--public-key", key_file, "--env", "staging"]
    base += ["--image", image]

    code, out, err = run(capsys, *base, "--source", new)
    assert (code, out["stale"]) == (0, []), err
    before = state(work)
    code, out, err = run(capsys, *base[:-1], f"auth=old@{digests['auth']}", "--source", old)

    assert code == 0, err
    assert "nothing to do: staging already runs a newer build" in err
    assert (out["commit"], out["stale"]) == (None, ["auth"])
    assert state(work) == before


def release_state(work: Path, registry: LocalRegistry) -> tuple[str, str, str | None]:
    """The remote's main, its tags, and whether auth 0.1.0 exists in the registry."""
    with RegistryClient(registry.url) as client:
        retagged = client.head_digest("chat/auth", "0.1.0")
    tags = git(work, "ls-remote", "--tags", "origin")
    return git(work, "ls-remote", "origin", "refs/heads/main"), tags, retagged


def test_release_refuses_a_staging_digest_the_key_does_not_verify(
    project: tuple[Path, dict[str, str]],
    registry: LocalRegistry,
    key_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, _ = project
    unsigned = push_image(registry.url, "chat/auth", "main-unsigned", f"{tmp_path}rel".encode())
    forged = push_image(registry.url, "chat/ai", "main-forged", f"{tmp_path}ai".encode())
    cosign_sign(registry.url, "chat/ai", forged, Signing(new_key()))  # a stranger's key
    for name, tag, digest in (("auth", "main-unsigned", unsigned), ("ai", "main-forged", forged)):
        (work / "charts" / name / "values-staging.yaml").write_text(
            values(f"{registry.url.removeprefix('http://')}/chat/{name}", tag, digest)
        )
    (work / "services/auth/login.py").write_text("x = 1\n")
    (work / "services/ai/reply.py").write_text("x = 1\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "feat: login and reply")
    git(work, "push", "-q", "origin", "HEAD:main")
    release = ["release", "--repo", str(work), "--insecure-registry"]
    before = release_state(work, registry)

    code, _, err = run(capsys, *release, "--public-key", key_file)

    assert code == 1, err
    assert "refusing to pin 2 image digest(s) without a verified signature" in err
    assert f"auth: 127.0.0.1:{registry.url.rsplit(':', 1)[1]}/chat/auth@{unsigned} missing" in err
    assert f"chat/ai@{forged} invalid (signature does not verify against the public key)" in err
    assert release_state(work, registry) == before  # nothing re-tagged, tagged or pinned
    code, _, err = run(capsys, *release)
    assert code == 2
    assert "--public-key FILE (cosign.pub) is required" in err
    assert release_state(work, registry) == before

    code, out, err = run(capsys, *release, "--public-key", key_file, "--allow-unsigned")

    assert code == 0, err
    assert "WARNING: --allow-unsigned: pinned UNSIGNED auth: 127.0.0.1:" in err
    assert out["unsigned_allowed"] == [line for line in err.splitlines() if "WARNING" in line]
    assert len(out["unsigned_allowed"]) == 2
    assert read_image(values_path(work, "auth", "production")) == ImageRef("0.1.0", unsigned)


def test_release_dry_run_needs_no_remote_and_says_why_nothing(
    project: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = project
    git(work, "remote", "remove", "origin")

    code, out, err = run(capsys, "release", "--repo", str(work), "--dry-run")

    assert code == 0, err
    assert out["releases"] == {}
    unreleased = out["unreleased"]
    assert isinstance(unreleased, dict)
    assert set(unreleased) == {"auth", "ai"}
    assert "no conventional commit that releases" in unreleased["auth"]
    assert "no release tag yet" in unreleased["auth"]


def test_every_option_has_a_help_text() -> None:
    root = parser()
    missing = []
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for option in sub._actions:
                    if not option.help and option.dest != "help":
                        missing.append(f"{name} {'/'.join(option.option_strings)}")
    assert missing == []


def test_bump_refuses_an_unsigned_digest_until_it_is_signed(
    project: tuple[Path, dict[str, str]],
    registry: LocalRegistry,
    key_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, _ = project
    unsigned = push_image(registry.url, "chat/auth", "main-unsigned", f"{tmp_path}new".encode())
    argv = ["bump", "--repo", str(work), "--env", "production", "--public-key", key_file]
    argv += [
        "--image",
        f"auth=main-unsigned@{unsigned}",
        "--source",
        git(work, "rev-parse", "HEAD"),
    ]
    before = git(work, "rev-parse", "origin/main")

    code, _, err = run(capsys, *argv)

    assert code == 1
    assert "refusing to pin 1 image digest(s) without a verified signature" in err
    assert f"auth: 127.0.0.1:{registry.url.rsplit(':', 1)[1]}/chat/auth@{unsigned} missing" in err
    assert git(work, "rev-parse", "origin/main") == before
    sign(registry, "auth", unsigned)
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert read_image(values_path(work, "auth", "production")) == ImageRef(
        "main-unsigned", unsigned
    )
    assert "unsigned_allowed" not in out


def test_bump_refuses_a_signature_the_key_does_not_verify(
    project: tuple[Path, dict[str, str]],
    registry: LocalRegistry,
    key_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, _ = project
    forged = push_image(registry.url, "chat/auth", "main-forged", f"{tmp_path}forged".encode())
    cosign_sign(registry.url, "chat/auth", forged, Signing(new_key()))  # a stranger's key
    argv = ["bump", "--repo", str(work), "--env", "production", "--image"]
    argv += [f"auth=main-forged@{forged}", "--source", git(work, "rev-parse", "HEAD")]
    before = state(work)

    code, _, err = run(capsys, *argv, "--public-key", key_file)

    assert code == 1, err
    assert f"chat/auth@{forged} invalid (signature does not verify against the public key)" in err
    assert state(work) == before
    code, _, err = run(capsys, *argv)  # no key: nothing can be verified
    assert code == 2
    assert "--public-key FILE (cosign.pub) is required" in err
    code, _, err = run(capsys, *argv, "--public-key", str(tmp_path / "nope.pub"))
    assert code == 2
    assert f"--public-key {tmp_path / 'nope.pub'}: not a PEM public key" in err
    assert state(work) == before


def test_allow_unsigned_pins_and_says_so_loudly_and_promote_refuses_it(
    project: tuple[Path, dict[str, str]],
    registry: LocalRegistry,
    key_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, _ = project
    unsigned = push_image(registry.url, "chat/ai", "main-local", f"{tmp_path}local".encode())
    argv = ["bump", "--repo", str(work), "--env", "staging", "--allow-unsigned"]
    argv += ["--image", f"ai=main-local@{unsigned}", "--source", git(work, "rev-parse", "HEAD")]

    code, out, err = run(capsys, *argv)

    assert code == 0, err
    assert "WARNING: --allow-unsigned: pinned UNSIGNED ai: " in err
    assert out["unsigned_allowed"] == [line for line in err.splitlines() if "WARNING" in line]
    promote = ["promote", "--repo", str(work), "--from", "staging", "--to", "production"]
    code, _, err = run(capsys, *promote, "--public-key", key_file)
    assert code == 1
    assert f"chat/ai@{unsigned} missing" in err
    assert "chat/auth@" not in err  # auth's staging digest is signed by the key
    code, out, err = run(capsys, *promote, "--public-key", key_file, "--allow-unsigned")
    assert code == 0, err
    assert f"pinned UNSIGNED ai: 127.0.0.1:{registry.url.rsplit(':', 1)[1]}/chat/ai@" in err
    assert out["unsigned_allowed"] == [line for line in err.splitlines() if "WARNING" in line]
