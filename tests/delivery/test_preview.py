"""Preview slugs (property-based), preview files in real git, gc with an injected clock."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ci.core.gitops import ImageRef, PushPolicy
from ci.core.gitrepo import Git
from ci.core.preview import (
    PreviewError,
    build_preview,
    destroy_preview,
    gc_previews,
    preview_path,
    preview_slug,
    read_preview,
    render,
    write_preview,
)
from ci.core.registry import RegistryClient
from delivery.helpers import git
from delivery.registry_server import LocalRegistry, push_image
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = PushPolicy(max_attempts=3)
branch_names = st.text(min_size=1, max_size=300)


@given(branch_names)
def test_slug_is_a_short_dns_label(branch: str) -> None:
    slug = preview_slug(branch)
    assert LABEL.fullmatch(slug)
    assert len(slug) <= 40
    assert len(f"preview-{slug}") <= 63


@given(branch_names)
def test_slug_is_stable(branch: str) -> None:
    # Derived only from the name (no salt, no clock): the suffix is the hash of the full name.
    full_hash = hashlib.sha256(branch.encode("utf-8", "surrogatepass")).hexdigest()
    assert preview_slug(branch) == preview_slug("".join(list(branch)))
    assert preview_slug(branch).endswith("-" + full_hash[:10])


@given(branch_names, branch_names)
def test_distinct_branches_get_distinct_slugs(a: str, b: str) -> None:
    if a != b:
        assert preview_slug(a) != preview_slug(b)


def test_slug_examples() -> None:
    assert preview_slug("feature/Login-Page").startswith("feature-login-page-")
    assert preview_slug("feat/x") != preview_slug("feat-x")
    long_a, long_b = "feature/" + "a" * 100 + "-one", "feature/" + "a" * 100 + "-two"
    assert preview_slug(long_a) != preview_slug(long_b)
    assert preview_slug("!!!").startswith("branch-")
    with pytest.raises(ValueError, match="empty"):
        preview_slug("")


def image(name: str) -> ImageRef:
    return ImageRef(tag=f"{name}-tag", digest="sha256:" + hashlib.sha256(name.encode()).hexdigest())


def remote_files(repo: Git) -> list[str]:
    git(repo.workdir, "fetch", "-q", "origin")
    listing = git(repo.workdir, "ls-tree", "-r", "--name-only", "origin/main", "argocd/previews")
    return listing.splitlines()


def test_preview_file_is_written_only_for_pushed_images(
    clone: Callable[[str], Git], registry: LocalRegistry
) -> None:
    repo = clone("a")
    pushed = push_image(registry.url, "chat/auth", "feat-x-abc1234", b"auth on feat/x")
    images = {
        "auth": ImageRef("feat-x-abc1234", pushed),
        "backend": image("never-pushed"),
    }
    preview = build_preview("feat/x", images, "preview.chat.test", NOW)

    with RegistryClient(registry.url) as client:

        def in_registry(service: str, ref: ImageRef) -> bool:
            return client.head_digest(f"chat/{service}", ref.digest) == ref.digest

        with pytest.raises(PreviewError, match=r"backend .* is not in the registry"):
            write_preview(repo, preview, POLICY, verify=in_registry)
        assert remote_files(repo) == []

        ok = build_preview("feat/x", {"auth": images["auth"]}, "preview.chat.test", NOW)
        commit = write_preview(repo, ok, POLICY, verify=in_registry)

    assert commit is not None
    slug = preview_slug("feat/x")
    assert remote_files(repo) == [f"argocd/previews/{slug}.yaml"]
    text = preview_path(repo.workdir, slug).read_text()
    assert "expires: '2026-11-28T12:00:00Z'" in text or "expires: 2026-11-28T12:00:00Z" in text
    stored = read_preview(preview_path(repo.workdir, slug))
    assert stored.namespace == f"preview-{slug}"
    assert stored.host == f"{slug}.preview.chat.test"
    assert stored.branch == "feat/x"
    assert stored.images["auth"].digest == pushed
    assert "[skip ci]" in git(repo.workdir, "log", "-1", "--format=%s")


def test_rewrite_with_same_images_is_a_no_op_and_destroy_removes(
    clone: Callable[[str], Git],
) -> None:
    repo = clone("a")
    preview = build_preview("fix/y", {"auth": image("a1")}, "p.test", NOW)
    assert write_preview(repo, preview, POLICY) is not None
    later = build_preview("fix/y", {"auth": image("a1")}, "p.test", NOW + timedelta(hours=1))
    assert write_preview(repo, later, POLICY) is None
    newer = build_preview("fix/y", {"auth": image("a2")}, "p.test", NOW + timedelta(hours=1))
    assert write_preview(repo, newer, POLICY) is not None

    assert destroy_preview(repo, "fix/y", POLICY) is not None
    assert remote_files(repo) == []
    assert destroy_preview(repo, "fix/y", POLICY) is None


def test_gc_removes_only_expired_and_never_unreadable(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    for branch, age in (("old", 100), ("older", 200), ("fresh", 1)):
        created = NOW - timedelta(hours=age)
        write_preview(
            repo, build_preview(branch, {"auth": image(branch)}, "p.test", created), POLICY
        )
    broken = repo.workdir / "argocd/previews/broken.yaml"
    broken.write_text("branch: x\nexpires: not-a-date\n")
    git(repo.workdir, "add", ".")
    git(repo.workdir, "commit", "-qm", "broken preview")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")

    removed, problems = gc_previews(repo, NOW, POLICY)

    assert sorted(removed) == sorted([preview_slug("old"), preview_slug("older")])
    assert len(problems) == 1
    assert "broken.yaml" in problems[0]
    assert sorted(remote_files(repo)) == sorted(
        ["argocd/previews/broken.yaml", f"argocd/previews/{preview_slug('fresh')}.yaml"]
    )
    # A second sweep at the same instant has nothing to do.
    assert gc_previews(repo, NOW, POLICY)[0] == []
    # Later the fresh one expires too (72 h default TTL).
    assert gc_previews(repo, NOW + timedelta(hours=72), POLICY)[0] == [preview_slug("fresh")]


SCHEMA = Path(__file__).resolve().parents[2] / "argocd" / "previews" / "schema.json"


def test_written_file_matches_the_applicationset_schema(tmp_path: Path) -> None:
    # jsonschema ships no type information; imported dynamically to stay mypy-strict clean.
    jsonschema = importlib.import_module("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    images = {name: image(name) for name in ("auth", "frontend")}
    preview = build_preview("feature/Login_Form#42", images, "preview.chat.example.com", NOW)
    path = tmp_path / "p.yaml"
    path.write_text(render(preview))

    document = YAML(typ="safe", pure=True).load(path.read_text())
    jsonschema.validate(document, schema)
    assert document["expires"] == "2026-11-28T12:00:00Z"
    bad = {**document, "images": {"auth": {"tag": "latest", "digest": image("x").digest}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_preview_cap_refuses_one_more(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    for branch in ("one", "two"):
        preview = build_preview(branch, {"auth": image(branch)}, "p.test", NOW)
        assert write_preview(repo, preview, POLICY, max_previews=2) is not None
    third = build_preview("three", {"auth": image("three")}, "p.test", NOW)
    start = repo.head()

    with pytest.raises(PreviewError, match="cap reached: 2 previews"):
        write_preview(repo, third, POLICY, max_previews=2)

    assert (repo.head(), repo.is_clean()) == (start, True)
    # Updating an existing preview is not "one more".
    newer = build_preview("two", {"auth": image("two-b")}, "p.test", NOW)
    assert write_preview(repo, newer, POLICY, max_previews=2) is not None
