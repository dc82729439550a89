"""The deploy queue against a real bare remote: requests of dead pipelines, expiry, bad requests,
bounded retries. (Concurrency, ordering and idempotence run for both bumpers in
test_gitops_bump.py.)"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from ci.core import bumpqueue
from ci.core.bumpqueue import Request, deploy, publish
from ci.core.gitops import (
    CommitResult,
    ImageRef,
    PushPolicy,
    PushRejectedError,
    pinned_image,
    values_path,
)
from ci.core.gitrepo import Git
from ci.core.yamlfile import YamlFileError
from delivery.helpers import commit_file, digest_of, git, lose_every_push, push_sources

FAST = PushPolicy(max_attempts=60, backoff_seconds=0.02, max_backoff_seconds=0.3)


def ref(name: str) -> ImageRef:
    return ImageRef(tag=f"sha-{name}", digest=digest_of(name))


def requests_on(repo: Git) -> list[str]:
    out = git(repo.workdir, "ls-remote", "origin", f"{bumpqueue.NAMESPACE}/*")
    return [line.split("\t")[1] for line in out.splitlines()]


def trailer(repo: Git, revision: str, key: str) -> str:
    return git(repo.workdir, "log", "-1", f"--format=%(trailers:key={key},valueonly)", revision)


def final_image(repo: Git, service: str) -> ImageRef | None:
    """What the remote's branch pins for `service` in staging now."""
    git(repo.workdir, "fetch", "--quiet", "origin")
    path = values_path(Path("."), service, "staging")
    return pinned_image(path, git(repo.workdir, "show", f"origin/main:{path}"))


def test_a_dead_pipelines_request_is_landed_by_the_next_deploy(
    clone: Callable[[str], Git], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bumpqueue, "PATIENCE_SECONDS", 0.2)
    dead, alive = clone("dead"), clone("alive")
    source = dead.head()
    # A pipeline published its request and was killed before it landed it.
    orphan = publish(dead, FAST, Request.new("staging", "main", source, {"svc1": ref("orphan")}))

    result = deploy(alive, "staging", {"svc2": ref("alive")}, source, FAST)

    assert result.commit is not None
    assert result.attempts == 2  # it queued behind the orphan, then landed both
    assert trailer(alive, result.commit, bumpqueue.REQUEST_TRAILER) != orphan.id
    assert trailer(alive, f"{result.commit}^", bumpqueue.REQUEST_TRAILER) == orphan.id
    assert final_image(dead, "svc1") == ref("orphan")
    assert final_image(dead, "svc2") == ref("alive")
    assert requests_on(alive) == []


def test_an_old_request_is_left_to_its_owner_and_a_day_old_one_pruned(
    clone: Callable[[str], Git],
) -> None:
    old, repo = clone("old"), clone("repo")
    source = old.head()

    def published_ago(seconds: float, service: str) -> Request:
        made = time.time_ns() - int(seconds * 1e9)
        request = Request(
            f"{made:016x}-00000000", "staging", "main", source, {service: ref(service)}
        )
        return publish(old, FAST, request)

    # 31 minutes old here: maybe a live deploy on a machine whose clock is behind; a day: dead.
    behind = published_ago(bumpqueue.TTL_SECONDS + 60, "svc3")
    published_ago(bumpqueue.PRUNE_SECONDS + 60, "svc4")

    result = deploy(repo, "staging", {"svc5": ref("new")}, source, FAST)

    assert result.attempts == 1  # neither made it queue
    assert final_image(repo, "svc5") == ref("new")
    assert final_image(repo, "svc3") != ref("svc3")
    assert final_image(repo, "svc4") != ref("svc4")
    assert requests_on(repo) == [behind.ref]


def test_a_malformed_request_is_left_alone(clone: Callable[[str], Git]) -> None:
    repo = clone("repo")
    tree = git(repo.workdir, "mktree", input_text="")
    junk = git(repo.workdir, "commit-tree", tree, "-m", "Image: svc5=not an image")
    name = bumpqueue.requests_prefix("staging", "main") + f"{time.time_ns():016x}-0badf00d"
    git(repo.workdir, "push", "--quiet", "origin", f"{junk}:{name}")

    result = deploy(repo, "staging", {"svc5": ref("good")}, repo.head(), FAST)

    assert result.commit is not None
    assert final_image(repo, "svc5") == ref("good")
    assert requests_on(repo) == [name]  # not ours to judge until it expires


def test_bad_input_fails_before_anything_is_queued(
    clone: Callable[[str], Git], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bumpqueue, "PATIENCE_SECONDS", 0.2)
    other, repo = clone("other"), clone("repo")
    source = other.head()
    waiting = publish(other, FAST, Request.new("staging", "main", source, {"svc6": ref("x")}))

    with pytest.raises(YamlFileError, match=r"charts/nosuch/values-staging\.yaml: file not found"):
        deploy(repo, "staging", {"nosuch": ref("x")}, source, FAST)

    assert requests_on(repo) == [waiting.ref]
    assert (repo.head(), repo.is_clean()) == (source, True)


def test_a_deploy_that_keeps_losing_gives_up_and_withdraws(
    clone: Callable[[str], Git], tmp_path: Path
) -> None:
    ours, theirs = clone("ours"), clone("theirs")
    lose_every_push(ours.workdir, theirs.workdir)
    start = ours.head()

    with pytest.raises(PushRejectedError, match="after 3 attempts"):
        deploy(ours, "staging", {"svc7": ref("y")}, start, PushPolicy(max_attempts=3))

    assert requests_on(ours) == []
    assert (ours.head(), ours.is_clean()) == (start, True)
    assert final_image(theirs, "svc7") != ref("y")


def test_a_remote_that_refuses_request_refs_gets_plain_retries(
    clone: Callable[[str], Git], remote: Path, tmp_path: Path
) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new name; do\n"
        '  case "$name" in refs/heads/*|refs/tags/*) ;;\n'
        '  *) echo "no custom refs" >&2; exit 1;; esac\n'
        "done\n"
    )
    hook.chmod(0o755)
    ours, theirs = clone("ours"), clone("theirs")
    git(theirs.workdir, "commit", "--quiet", "--allow-empty", "-m", "chore: theirs")
    # Someone else lands right before our first push: we lose the race and would queue.
    fired = tmp_path / "fired"
    pre_push = ours.workdir / ".git" / "hooks" / "pre-push"
    pre_push.write_text(
        "#!/bin/sh\n"
        f'[ -e "{fired}" ] && exit 0\n'
        f'touch "{fired}"\n'
        f'git -C "{theirs.workdir}" push -q origin HEAD:main\n'
    )
    pre_push.chmod(0o755)

    result = deploy(ours, "staging", {"svc8": ref("retried")}, ours.head(), FAST)

    assert fired.exists()
    assert result.commit is not None
    assert git(ours.workdir, "rev-parse", f"{result.commit}^") == theirs.head()
    assert final_image(theirs, "svc8") == ref("retried")


def test_requests_for_another_branch_neither_block_nor_land(clone: Callable[[str], Git]) -> None:
    other, repo = clone("other"), clone("repo")
    source = other.head()
    for branch in ("release", "main/next"):  # "main/next" shares main's prefix in the namespace
        publish(
            other,
            FAST,
            Request.new("staging", branch, source, {"svc9": ref(branch.replace("/", "-"))}),
        )

    result = deploy(repo, "staging", {"svc9": ref("main")}, source, FAST)

    assert result.attempts == 1  # nothing queued for main: it landed alone
    assert final_image(repo, "svc9") == ref("main")
    assert len(requests_on(repo)) == 2


def test_a_request_brings_its_source_along(
    clone: Callable[[str], Git], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bumpqueue, "PATIENCE_SECONDS", 0.2)
    dead, alive = clone("dead"), clone("alive")
    # A build of a commit that was never pushed anywhere else (only the request carries it).
    source = commit_file(dead.workdir, "services/svc1/code.txt", "local\n", "feat: local build")
    publish(dead, FAST, Request.new("staging", "main", source, {"svc1": ref("local")}))

    deploy(alive, "staging", {"svc2": ref("alive")}, alive.head(), FAST)

    assert final_image(alive, "svc1") == ref("local")
    assert trailer(alive, "origin/main^", "Source") == source
    assert requests_on(alive) == []


@dataclass
class ObjectStore:
    """The remote's object store, to be mounted read-only (root ignores permission bits, not a
    read-only mount): every push that carries objects then fails with `unpacker error`, as on
    a full or read-only volume; ref deletions still work."""

    path: Path
    read_only: bool = False

    def break_writes(self) -> None:
        subprocess.run(["mount", "--bind", str(self.path), str(self.path)], check=True)
        self.read_only = True
        subprocess.run(["mount", "-o", "remount,ro,bind", str(self.path)], check=True)

    def heal(self) -> None:
        if self.read_only:
            subprocess.run(["umount", str(self.path)], check=True)
            self.read_only = False


@pytest.fixture
def object_store(remote: Path) -> Iterator[ObjectStore]:
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (CI and this machine run tests as root)")
    store = ObjectStore(remote / "objects")
    try:
        yield store
    finally:
        store.heal()


def test_a_read_only_remote_is_waited_out_by_concurrent_deploys(
    clone: Callable[[str], Git], object_store: ObjectStore
) -> None:
    count = 6
    sources = push_sources(clone("builder").workdir, count)  # before the remote turns read-only
    clones = [clone(f"pipeline{i}") for i in range(count)]
    builder = clone("checker")
    object_store.break_writes()
    accepted = builder.succeeds("push", "--quiet", "origin", f"{sources[0]}:refs/heads/x")
    assert not accepted, "the remote still takes objects"
    waited: set[int] = set()
    results: dict[int, CommitResult] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        def sleep(seconds: float) -> None:
            waited.add(i)  # refused, and retrying instead of giving up
            time.sleep(seconds)

        policy = replace(FAST, max_attempts=100, sleep=sleep)
        try:
            results[i] = deploy(clones[i], "staging", {"svc0": ref(f"b{i}")}, sources[i], policy)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(waited) < count and len(errors) + len(results) < count:
        assert time.monotonic() < deadline, f"only {sorted(waited)} met the read-only remote"
        time.sleep(0.05)
    object_store.heal()  # the remote heals: each deploy must now get through
    for thread in threads:
        thread.join(timeout=300)
    assert errors == [], [str(e) for e in errors]
    assert sorted(results) == list(range(count))
    # Ordering: the newest build wins; no loss: every reported commit is on main, none queued.
    assert final_image(builder, "svc0") == ref(f"b{count - 1}")
    for i, result in results.items():
        assert (result.commit is None) == (result.stale == ("svc0",)), i
        if result.commit is not None:
            assert builder.succeeds("merge-base", "--is-ancestor", result.commit, "origin/main")
    assert requests_on(builder) == []


def test_a_head_that_fails_hands_the_queue_on_at_once(
    clone: Callable[[str], Git], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Patience longer than the deploy may wait: only the head's withdrawal can let it through.
    monkeypatch.setattr(bumpqueue, "PATIENCE_SECONDS", 3600.0)
    monkeypatch.setattr(bumpqueue, "MAX_WAIT_SECONDS", 300)
    head, waiter = clone("head"), clone("waiter")
    source = head.head()
    failing = publish(head, FAST, Request.new("staging", "main", source, {"svc1": ref("head")}))
    results: list[CommitResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(deploy(waiter, "staging", {"svc2": ref("waiter")}, source, FAST))
        except BaseException as exc:  # asserted below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while len(requests_on(head)) < 2:  # the waiter queued behind the head
        assert not errors, [str(e) for e in errors]
        assert time.monotonic() < deadline, requests_on(head)
        time.sleep(0.05)
    bumpqueue.withdraw(head, FAST, failing)  # what a head that fails or gives up does
    thread.join(timeout=300)

    assert errors == [], [str(e) for e in errors]
    assert len(results) == 1
    assert results[0].commit is not None
    assert final_image(waiter, "svc2") == ref("waiter")
    assert final_image(waiter, "svc1") != ref("head")
    assert requests_on(waiter) == []
