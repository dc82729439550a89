"""Bumps against a real bare remote: concurrency, idempotence, conflicts, format preservation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from ci.core.gitops import (
    SKIP_CI_MARKER,
    ConflictError,
    GitOpsError,
    ImageRef,
    PushPolicy,
    PushRejectedError,
    bump,
    read_image,
    values_path,
)
from ci.core.gitrepo import Git
from delivery.helpers import SERVICES, digest_of, git

FAST = PushPolicy(max_attempts=60, backoff_seconds=0.02, max_backoff_seconds=0.3)


def ref(name: str) -> ImageRef:
    return ImageRef(tag=f"sha-{name}"[:40], digest=digest_of(name))


def test_bump_commits_once_with_structured_message(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    result = bump(repo, "staging", {"svc1": ref("new1")}, "abc123", FAST)

    assert result.commit is not None
    assert [c.service for c in result.changes] == ["svc1"]
    message = git(repo.workdir, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == f"deploy(staging): svc1 {SKIP_CI_MARKER}"
    assert "deploy(staging): svc1 initial@sha256:" in message
    assert f"-> sha-new1@{digest_of('new1')[:19]}" in message
    assert git(repo.workdir, "log", "-1", "--format=%(trailers:key=Source,valueonly)") == "abc123"
    # Exactly one file changed, and it is on the remote.
    changed = git(repo.workdir, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert changed == ["charts/svc1/values-staging.yaml"]
    fresh = clone("check")
    assert read_image(values_path(fresh.workdir, "svc1", "staging")) == ref("new1")


def test_bump_preserves_comments_and_formatting(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    path = values_path(repo.workdir, "svc2", "staging")
    before = path.read_text()
    bump(repo, "staging", {"svc2": ref("x")}, "abc", FAST)
    after = path.read_text()

    changed = [
        (b, a) for b, a in zip(before.splitlines(), after.splitlines(), strict=True) if b != a
    ]
    assert changed == [
        ('  tag: "initial"', '  tag: "sha-x"'),
        (f"  digest: {digest_of('svc2')}", f"  digest: {digest_of('x')}"),
    ]


def test_unchanged_digest_makes_no_commit(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    first = bump(repo, "staging", {"svc3": ref("same")}, "abc", FAST)
    head = repo.head()
    second = bump(repo, "staging", {"svc3": ref("same")}, "def", FAST)

    assert first.commit is not None
    assert second.commit is None
    assert second.changes == ()
    assert repo.head() == head
    assert git(repo.workdir, "rev-parse", "origin/main") == head
    assert repo.is_clean()


def test_ten_concurrent_bumpers_lose_no_update(clone: Callable[[str], Git]) -> None:
    clones = {service: clone(service) for service in SERVICES}
    barrier = threading.Barrier(len(clones))
    errors: list[BaseException] = []
    attempts: dict[str, int] = {}

    def run(service: str, repo: Git) -> None:
        barrier.wait()
        try:
            result = bump(repo, "staging", {service: ref(f"c-{service}")}, "src", FAST)
            attempts[service] = result.attempts
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in clones.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)

    assert errors == []
    final = clone("final")
    for service in SERVICES:
        assert read_image(values_path(final.workdir, service, "staging")) == ref(f"c-{service}")
    subjects = git(final.workdir, "log", "--format=%s").splitlines()
    assert len([s for s in subjects if s.startswith("deploy(staging)")]) == len(SERVICES)
    # The race was real: at least one bumper had to rebase and retry.
    assert max(attempts.values()) > 1


def test_conflicting_edit_stops_cleanly(clone: Callable[[str], Git], tmp_path: Path) -> None:
    ours, theirs = clone("ours"), clone("theirs")
    # Someone else edits the same lines and pushes right before our push (a pre-push hook fires
    # between our commit and our push, the exact window of a real race).
    path = values_path(theirs.workdir, "svc4", "staging")
    path.write_text(path.read_text().replace('tag: "initial"', 'tag: "hand-edited"'))
    git(theirs.workdir, "commit", "-qam", "chore: hand edit")
    hook = ours.workdir / ".git" / "hooks" / "pre-push"
    fired = tmp_path / "fired"
    hook.write_text(
        "#!/bin/sh\n"
        f'[ -e "{fired}" ] && exit 0\n'
        f'touch "{fired}"\n'
        f'git -C "{theirs.workdir}" push -q origin HEAD:main\n'
    )
    hook.chmod(0o755)
    start = ours.head()

    with pytest.raises(ConflictError, match=r"charts/svc4/values-staging\.yaml"):
        bump(ours, "staging", {"svc4": ref("mine")}, "abc", FAST)

    assert fired.exists()
    assert ours.is_clean()
    assert ours.in_progress_operation() is None
    assert ours.head() == start
    remote_tip = git(ours.workdir, "ls-remote", "origin", "refs/heads/main").split()[0]
    assert remote_tip == theirs.head()


def test_bad_input_names_the_field(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    path = values_path(repo.workdir, "svc5", "staging")
    path.write_text("image: just-a-string\n")
    git(repo.workdir, "commit", "-qam", "break it")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")

    with pytest.raises(ValueError, match=r"values-staging\.yaml: field 'image'"):
        bump(repo, "staging", {"svc5": ref("x")}, "abc", FAST)
    with pytest.raises(ValueError, match="not a DNS-1123 label"):
        bump(repo, "Staging!", {"svc5": ref("x")}, "abc", FAST)
    with pytest.raises(ValueError, match="sha256"):
        ImageRef(tag="v1", digest="md5:abc")
    with pytest.raises(ValueError, match=r"charts/nosuch/values-staging\.yaml: file not found"):
        bump(repo, "staging", {"nosuch": ref("x")}, "abc", FAST)
    assert repo.is_clean()


def test_refused_push_restores_the_clone(clone: Callable[[str], Git], remote: Path) -> None:
    repo = clone("a")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    start = repo.head()

    with pytest.raises(GitOpsError, match=r"refused: .*pre-receive hook declined"):
        bump(repo, "staging", {"svc6": ref("x")}, "abc", FAST)

    assert (repo.head(), repo.is_clean()) == (start, True)


def test_retries_are_bounded(clone: Callable[[str], Git], tmp_path: Path) -> None:
    ours, theirs = clone("ours"), clone("theirs")
    # Before each of our pushes, someone else pushes an unrelated commit: we always lose.
    hook = ours.workdir / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        f'cd "{theirs.workdir}" && git pull -q --rebase origin main && '
        "date +%s%N >> other.txt && git add other.txt && git commit -qm other && "
        "git push -q origin HEAD:main\n"
    )
    hook.chmod(0o755)
    start = ours.head()

    with pytest.raises(PushRejectedError, match="after 3 attempts"):
        bump(ours, "staging", {"svc7": ref("y")}, "abc", PushPolicy(max_attempts=3))

    assert ours.head() == start
    assert ours.is_clean()
    assert len(git(theirs.workdir, "log", "--format=%s", "--grep=^other$").splitlines()) == 3
