"""Bumps against a real bare remote: concurrency, ordering, idempotence, format preservation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from ci.core import bumpqueue, gitops
from ci.core.gitops import (
    SKIP_CI_MARKER,
    CommitResult,
    GitOpsError,
    ImageRef,
    PushPolicy,
    PushRejectedError,
    UnknownSourceError,
    bump,
    promote,
    read_image,
    rollback,
    values_path,
)
from ci.core.gitrepo import Git
from delivery.helpers import SERVICES, commit_file, digest_of, git, lose_every_push, push_sources

FAST = PushPolicy(max_attempts=60, backoff_seconds=0.02, max_backoff_seconds=0.3)
JOIN_DEADLINE_SECONDS = 300
Bumper = Callable[..., CommitResult]


@pytest.fixture(params=["bump", "deploy"])
def bumper(request: pytest.FixtureRequest) -> Bumper:
    """Both ways to pin an image: the lone writer's retry loop and the CLI's queued deploy."""
    return bump if request.param == "bump" else bumpqueue.deploy


def ref(name: str) -> ImageRef:
    return ImageRef(tag=f"sha-{name}"[:40], digest=digest_of(name))


def race(jobs: Mapping[str, Callable[[], CommitResult]]) -> dict[str, CommitResult]:
    """Start every job at once (a barrier), wait for all; any exception fails the test."""
    barrier = threading.Barrier(len(jobs))
    results: dict[str, CommitResult] = {}
    errors: list[BaseException] = []

    def run(name: str, job: Callable[[], CommitResult]) -> None:
        barrier.wait()
        try:
            results[name] = job()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_DEADLINE_SECONDS)
    assert not [t for t in threads if t.is_alive()], "a bumper never finished"
    assert errors == []
    return results


def landed(repo: Git, results: Mapping[str, CommitResult]) -> None:
    """Every commit a bumper reported is on the remote's branch: nothing was lost; and no
    queued request was left behind."""
    git(repo.workdir, "fetch", "--quiet", "origin")
    for name, result in results.items():
        if result.commit is not None:
            assert repo.succeeds("merge-base", "--is-ancestor", result.commit, "origin/main"), name
    assert git(repo.workdir, "ls-remote", "origin", f"{bumpqueue.NAMESPACE}/*") == ""


def test_bump_commits_once_with_structured_message(
    clone: Callable[[str], Git], bumper: Bumper
) -> None:
    repo = clone("a")
    source = repo.head()
    result = bumper(repo, "staging", {"svc1": ref("new1")}, source, FAST)

    assert result.commit is not None
    assert [c.service for c in result.changes] == ["svc1"]
    message = git(repo.workdir, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == f"deploy(staging): svc1 {SKIP_CI_MARKER}"
    assert "deploy(staging): svc1 initial@sha256:" in message
    assert f"-> sha-new1@{digest_of('new1')[:19]}" in message
    assert git(repo.workdir, "log", "-1", "--format=%(trailers:key=Source,valueonly)") == source
    # Exactly one file changed, and it is on the remote.
    changed = git(repo.workdir, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert changed == ["charts/svc1/values-staging.yaml"]
    fresh = clone("check")
    assert read_image(values_path(fresh.workdir, "svc1", "staging")) == ref("new1")


def test_bump_preserves_comments_and_formatting(
    clone: Callable[[str], Git], bumper: Bumper
) -> None:
    repo = clone("a")
    path = values_path(repo.workdir, "svc2", "staging")
    before = path.read_text()
    bumper(repo, "staging", {"svc2": ref("x")}, repo.head(), FAST)
    after = path.read_text()

    changed = [
        (b, a) for b, a in zip(before.splitlines(), after.splitlines(), strict=True) if b != a
    ]
    assert changed == [
        ('  tag: "initial"', '  tag: "sha-x"'),
        (f"  digest: {digest_of('svc2')}", f"  digest: {digest_of('x')}"),
    ]


def test_unchanged_digest_makes_no_commit(clone: Callable[[str], Git], bumper: Bumper) -> None:
    repo = clone("a")
    first = bumper(repo, "staging", {"svc3": ref("same")}, repo.head(), FAST)
    head = repo.head()
    second = bumper(repo, "staging", {"svc3": ref("same")}, head, FAST)

    assert first.commit is not None
    assert second.commit is None
    assert second.changes == ()
    assert repo.head() == head
    assert git(repo.workdir, "rev-parse", "origin/main") == head
    assert repo.is_clean()


def test_ten_concurrent_bumpers_of_different_services_lose_no_update(
    clone: Callable[[str], Git],
    bumper: Bumper,
) -> None:
    clones = {service: clone(service) for service in SERVICES}
    source = clones[SERVICES[0]].head()

    def job(service: str) -> Callable[[], CommitResult]:
        return lambda: bumper(
            clones[service], "staging", {service: ref(f"c-{service}")}, source, FAST
        )

    results = race({service: job(service) for service in SERVICES})

    final = clone("final")
    for service in SERVICES:
        assert read_image(values_path(final.workdir, service, "staging")) == ref(f"c-{service}")
    subjects = git(final.workdir, "log", "--format=%s").splitlines()
    assert len([s for s in subjects if s.startswith("deploy(staging)")]) == len(SERVICES)
    landed(final, results)
    # The race was real: at least one bumper had to redo its change and push again.
    assert max(r.attempts for r in results.values()) > 1


def test_ten_concurrent_bumpers_of_one_service_end_on_the_newest_source(
    clone: Callable[[str], Git],
    bumper: Bumper,
) -> None:
    sources = push_sources(clone("builder").workdir, 10)
    clones = [clone(f"pipeline{i}") for i in range(10)]

    def job(i: int) -> Callable[[], CommitResult]:
        return lambda: bumper(clones[i], "staging", {"svc0": ref(f"build{i}")}, sources[i], FAST)

    results = race({str(i): job(i) for i in range(10)})

    final = clone("final")
    assert read_image(values_path(final.workdir, "svc0", "staging")) == ref("build9")
    pinned = git(
        final.workdir,
        "log",
        "-1",
        "--format=%(trailers:key=Source,valueonly)",
        "--",
        "charts/svc0/values-staging.yaml",
    )
    assert pinned == sources[9]
    landed(final, results)
    # Each pipeline either landed its pin or was told a newer build already runs.
    for result in results.values():
        assert (result.commit is None) == (result.stale == ("svc0",))
    deploys = git(final.workdir, "log", "--format=%s", "--grep=^deploy(staging)").splitlines()
    assert len(deploys) == len([r for r in results.values() if r.commit])
    assert max(r.attempts for r in results.values()) > 1


def test_ten_mixed_bumpers_pin_each_service_to_its_newest_source(
    clone: Callable[[str], Git],
    bumper: Bumper,
) -> None:
    builder = clone("builder")
    older, newer = push_sources(builder.workdir, 2)
    services = SERVICES[:5]
    clones = {f"{s}-{age}": clone(f"{s}-{age}") for s in services for age in ("old", "new")}

    def job(name: str) -> Callable[[], CommitResult]:
        service, age = name.split("-")
        source = older if age == "old" else newer
        return lambda: bumper(clones[name], "staging", {service: ref(name)}, source, FAST)

    results = race({name: job(name) for name in clones})

    final = clone("final")
    for service in services:
        assert read_image(values_path(final.workdir, service, "staging")) == ref(f"{service}-new")
    landed(final, results)


def test_stale_bump_is_refused_and_changes_nothing(
    clone: Callable[[str], Git], bumper: Bumper
) -> None:
    repo = clone("a")
    old, new = push_sources(repo.workdir, 2)
    bumper(repo, "staging", {"svc1": ref("new")}, new, FAST)
    head = repo.head()

    late = bumper(repo, "staging", {"svc1": ref("old"), "svc2": ref("old")}, old, FAST)

    # svc1 runs a newer build and stays; svc2 had no known source and takes the pin.
    assert late.stale == ("svc1",)
    assert [c.service for c in late.changes] == ["svc2"]
    assert read_image(values_path(repo.workdir, "svc1", "staging")) == ref("new")
    alone = bumper(repo, "staging", {"svc1": ref("old")}, old, FAST)
    assert (alone.commit, alone.stale) == (None, ("svc1",))
    assert repo.head() == git(repo.workdir, "rev-parse", "origin/main") != head
    assert repo.is_clean()


def test_a_build_from_a_side_branch_is_not_stale(
    clone: Callable[[str], Git], bumper: Bumper
) -> None:
    repo = clone("a")
    base = repo.head()
    (main_build,) = push_sources(repo.workdir, 1)
    git(repo.workdir, "checkout", "--quiet", "-b", "side", base)
    side_build = commit_file(repo.workdir, "services/svc1/side.txt", "x\n", "fix: side")
    git(repo.workdir, "push", "--quiet", "origin", "side")
    git(repo.workdir, "checkout", "--quiet", "main")
    bumper(repo, "staging", {"svc1": ref("main")}, main_build, FAST)

    result = bumper(repo, "staging", {"svc1": ref("side")}, side_build, FAST)

    assert result.stale == ()
    assert read_image(values_path(repo.workdir, "svc1", "staging")) == ref("side")


def test_rollback_and_promote_keep_their_meaning(clone: Callable[[str], Git]) -> None:
    repo = clone("a")
    old, new = push_sources(repo.workdir, 2)
    bump(repo, "staging", {"svc1": ref("old")}, old, FAST)
    good = repo.head()
    bump(repo, "staging", {"svc1": ref("new")}, new, FAST)

    # Explicit: rollback goes back to the older build although a newer one ran.
    assert rollback(repo, "staging", good, FAST).commit is not None
    assert read_image(values_path(repo.workdir, "svc1", "staging")) == ref("old")
    # After the rollback the environment runs `old` again, so `new` is a newer build.
    assert bump(repo, "staging", {"svc1": ref("new")}, new, FAST).commit is not None
    # Promotion copies the digest and its source: an older build for production is stale.
    assert promote(repo, "staging", "production", ["svc1"], FAST).commit is not None
    late = bump(repo, "production", {"svc1": ref("old")}, old, FAST)
    assert late.stale == ("svc1",)
    assert read_image(values_path(repo.workdir, "svc1", "production")) == ref("new")


def test_concurrent_edit_of_the_same_file_is_redone_on_top(
    clone: Callable[[str], Git], tmp_path: Path
) -> None:
    ours, theirs = clone("ours"), clone("theirs")
    # Someone else edits the same lines and another one and pushes right before our push (a
    # pre-push hook fires between our commit and our push, the exact window of a real race).
    path = values_path(theirs.workdir, "svc4", "staging")
    text = path.read_text().replace('tag: "initial"', 'tag: "hand-edited"')
    path.write_text(text.replace("replicaCount: 1", "replicaCount: 3"))
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

    result = bump(ours, "staging", {"svc4": ref("mine")}, ours.head(), FAST)

    assert fired.exists()
    assert result.attempts == 2
    assert ours.is_clean()
    assert git(ours.workdir, "rev-parse", "HEAD^") == theirs.head()
    final = values_path(clone("final").workdir, "svc4", "staging")
    assert read_image(final) == ref("mine")
    assert "replicaCount: 3" in final.read_text()


def test_bad_input_names_the_field(clone: Callable[[str], Git], bumper: Bumper) -> None:
    repo = clone("a")
    path = values_path(repo.workdir, "svc5", "staging")
    path.write_text("image: just-a-string\n")
    git(repo.workdir, "commit", "-qam", "break it")
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")
    source = repo.head()

    with pytest.raises(ValueError, match=r"values-staging\.yaml: field 'image'"):
        bumper(repo, "staging", {"svc5": ref("x")}, source, FAST)
    with pytest.raises(ValueError, match="not a DNS-1123 label"):
        bumper(repo, "Staging!", {"svc5": ref("x")}, source, FAST)
    with pytest.raises(ValueError, match="sha256"):
        ImageRef(tag="v1", digest="md5:abc")
    with pytest.raises(ValueError, match=r"charts/nosuch/values-staging\.yaml: file not found"):
        bumper(repo, "staging", {"nosuch": ref("x")}, source, FAST)
    with pytest.raises(ValueError, match="not a full commit sha"):
        bumper(repo, "staging", {"svc6": ref("x")}, "nope", FAST)
    with pytest.raises(UnknownSourceError, match="no such commit"):
        bumper(repo, "staging", {"svc6": ref("x")}, "0" * 40, FAST)
    assert repo.is_clean()
    assert repo.head() == source == git(repo.workdir, "ls-remote", "origin", "main").split()[0]


def test_refused_push_restores_the_clone(clone: Callable[[str], Git], remote: Path) -> None:
    repo = clone("a")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    start = repo.head()

    with pytest.raises(GitOpsError, match=r"refused: .*pre-receive hook declined"):
        bump(repo, "staging", {"svc6": ref("x")}, start, FAST)

    assert (repo.head(), repo.is_clean()) == (start, True)


def test_retries_are_bounded(clone: Callable[[str], Git], tmp_path: Path) -> None:
    ours, theirs = clone("ours"), clone("theirs")
    lose_every_push(ours.workdir, theirs.workdir)
    start = ours.head()

    with pytest.raises(PushRejectedError, match="after 3 attempts"):
        bump(ours, "staging", {"svc7": ref("y")}, start, PushPolicy(max_attempts=3))

    assert ours.head() == start
    assert ours.is_clean()
    assert len(git(theirs.workdir, "log", "--format=%s", "--grep=^other$").splitlines()) == 3


def test_pinned_source_found_beyond_the_recent_window(
    clone: Callable[[str], Git], bumper: Bumper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops, "RECENT_PINS", 1)
    repo = clone("a")
    old, new = push_sources(repo.workdir, 2)
    bumper(repo, "staging", {"svc1": ref("new")}, new, FAST)
    path = values_path(repo.workdir, "svc1", "staging")
    path.write_text(path.read_text().replace("replicaCount: 1", "replicaCount: 2"))
    git(repo.workdir, "commit", "-qam", "chore: two replicas")  # no trailer: not a pin
    git(repo.workdir, "push", "-q", "origin", "HEAD:main")

    assert gitops.pinned_source(repo, "svc1", "staging") == new
    assert bumper(repo, "staging", {"svc1": ref("old")}, old, FAST).stale == ("svc1",)
