"""What a preview file holds, in real git: every service's image (the branch's where it built
one, staging's pinned digest for the rest) and the revision Argo CD reads the charts at."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from ci.core.gitops import ImageRef, PushPolicy
from ci.core.gitrepo import Git
from ci.core.preview import build_preview, preview_path, read_preview, write_preview
from delivery.helpers import SERVICES, digest_of

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = PushPolicy(max_attempts=3)
BUILT = ImageRef(tag="feat-x-1a2b3c4", digest="sha256:" + "e" * 64)


def test_services_the_branch_did_not_build_run_stagings_images(
    clone: Callable[[str], Git],
) -> None:
    repo = clone("a")
    preview = build_preview("feat/x", {"svc0": BUILT}, "p.test", NOW, revision="a" * 40)
    assert write_preview(repo, preview, POLICY) is not None

    stored = read_preview(preview_path(repo.workdir, preview.slug))
    assert set(stored.images) == set(SERVICES)
    assert stored.images["svc0"].digest == BUILT.digest
    for service in SERVICES[1:]:
        assert stored.images[service].digest == digest_of(service)  # staging's pin
    assert stored.revision == "a" * 40


def test_a_new_revision_alone_is_rolled_out(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    first = build_preview("feat/x", {"svc0": BUILT}, "p.test", NOW, revision="a" * 40)
    assert write_preview(repo, first, POLICY) is not None
    assert write_preview(repo, first, POLICY) is None  # same images, same charts
    charts_changed = build_preview("feat/x", {"svc0": BUILT}, "p.test", NOW, revision="b" * 40)
    assert write_preview(repo, charts_changed, POLICY) is not None


def test_the_revision_defaults_to_the_branch_and_must_be_a_git_ref() -> None:
    assert build_preview("feat/x", {"svc0": BUILT}, "p.test", NOW).revision == "feat/x"
    with pytest.raises(ValueError, match="revision"):
        build_preview("feat/x", {"svc0": BUILT}, "p.test", NOW, revision="main..evil")
