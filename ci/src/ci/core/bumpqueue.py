"""Concurrent deploys of one environment land together, through a queue of requests on the remote.

Why: each push to the deployment branch lands one writer, so N pipelines racing with
fetch-redo-push retries do O(N^2) work: 100 racing bumps took 48 s on two cores, nearly all of
it attempts that lost. Here a deploy first tries to land alone (nothing more to do when nobody
else deploys). After losing that race, or when others are already queued, it publishes its
request as the ref `refs/bump-requests/<env>/<branch>/<id>` (a commit with an empty tree on top
of the source; its message carries the images and the source) and waits, looking with
`ls-remote` only. The owner of the oldest pending request lands every pending request of the
environment: one commit each, exactly the commit a lone bump makes plus a `Bump-Request`
trailer, each decided on the chain so far (stale builds refused, the newest source wins, an
equal pin makes no commit), all written by one `git fast-import` and pushed with the leased
deletion of their refs, atomically. A waiter whose ref is gone finds its commit by that trailer.

Failures: a waiter whose queue head makes no progress for PATIENCE_SECONDS times its place
behind it (the head's owner died) lands the queue itself; a request older than TTL_SECONDS (by
the clock of the machine that looks) is left to its owner, whose own clock still calls it fresh,
and one older than PRUNE_SECONDS is deleted; a deploy that fails or gives up withdraws its
request (leased, so it never deletes a landed one), so the next in line takes over at once.
Transient faults of the remote (an `unpacker error` of a read-only or full object store, a
dropped connection) are retried with the policy's backoff wherever we push. A remote that
refuses refs outside branches and tags gets the lone writer's fetch-redo-push retries instead
(`gitops.bump`).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ci.core.gitops import (
    SOURCE_TRAILER,
    CommitResult,
    GitOpsError,
    ImageChange,
    ImageRef,
    PushPolicy,
    PushRejectedError,
    UnknownSourceError,
    bump,
    bump_message,
    check_label,
    check_source,
    image_edit,
    is_stale,
    pinned_image,
    pinned_sources,
    push_atomic,
    push_may_succeed_later,
    restore,
    sync_branch,
    values_path,
)
from ci.core.gitrepo import Git, GitError
from ci.core.yamlfile import YamlFileError

NAMESPACE = "refs/bump-requests"
LANDING_REF = "refs/bump-queue/landing"  # local only: where fast-import writes a landing
REQUEST_TRAILER = "Bump-Request"
IMAGE_KEY = "Image"
TTL_SECONDS = 30 * 60  # others land a request younger than this
PRUNE_SECONDS = 24 * 60 * 60  # a request older than this is deleted by whoever lands
PATIENCE_SECONDS = 30.0
MAX_WAIT_SECONDS = 15 * 60  # then the deploy fails (and withdraws): well inside TTL_SECONDS
# A waiter polls the remote less often the further back it is: the queue's head lands the rest.
POLL_STEP_SECONDS = 0.05
MAX_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Request:
    """One pipeline's deploy: pin `images` in `env` on `branch`, built from `source`."""

    id: str  # 16 hex digits of the request time in ns, "-", 8 random hex: sorts by time
    env: str
    branch: str
    source: str
    images: Mapping[str, ImageRef]
    sha: str = field(default="", compare=False)  # the request commit, once published

    @classmethod
    def new(cls, env: str, branch: str, source: str, images: Mapping[str, ImageRef]) -> Request:
        return cls(f"{time.time_ns():016x}-{os.urandom(4).hex()}", env, branch, source, images)

    @property
    def ref(self) -> str:
        return requests_prefix(self.env, self.branch) + self.id

    def message(self) -> str:
        lines = [f"bump-request({self.env}): {', '.join(sorted(self.images))}", ""]
        lines += [f"{IMAGE_KEY}: {s}={r.tag}@{r.digest}" for s, r in sorted(self.images.items())]
        lines += [f"{SOURCE_TRAILER}: {self.source}"]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(
        cls, env: str, branch: str, request_id: str, sha: str, message: str
    ) -> Request | None:
        """The request a fetched ref holds; None when it is malformed (never landed)."""
        images: dict[str, ImageRef] = {}
        fields: dict[str, str] = {}
        for line in message.splitlines():
            key, sep, value = line.partition(": ")
            if sep and key == IMAGE_KEY:
                service, _, ref = value.partition("=")
                try:
                    images[check_label("service", service)] = ImageRef.parse(ref)
                except ValueError:
                    return None
            elif sep:
                fields[key] = value.strip()
        try:
            int(request_id.partition("-")[0], 16)
            source = check_source(fields.get(SOURCE_TRAILER, ""))
        except ValueError:
            return None
        return cls(request_id, env, branch, source, images, sha) if images else None


def requests_prefix(env: str, branch: str) -> str:
    """Where the requests for `branch` in `env` live: the id is the one segment after it (a
    longer name belongs to a branch whose name goes on with a slash)."""
    return f"{NAMESPACE}/{env}/{branch}/"


@dataclass(frozen=True)
class Queue:
    """The remote branch's tip and the environment's requests, oldest first."""

    tip: str
    pending: tuple[Request, ...]  # for this branch, younger than TTL_SECONDS
    prunable: tuple[Request, ...]  # older than PRUNE_SECONDS, or not ours to read

    def ids(self) -> list[str]:
        return [r.id for r in self.pending]


def fetch_queue(git: Git, policy: PushPolicy, env: str) -> Queue:
    """Fetch the branch and its requests in `env` (pruning landed ones): two processes."""
    branch_ref = f"refs/remotes/{policy.remote}/{policy.branch}"
    prefix = requests_prefix(env, policy.branch)
    tracking = f"refs/remotes/{policy.remote}/{prefix.removeprefix('refs/')}"
    git.run(
        "fetch", "--quiet", "--prune", "--no-tags", policy.remote,
        f"+refs/heads/{policy.branch}:{branch_ref}", f"+{prefix}*:{tracking}*",
    )  # fmt: skip
    out = git.run(
        "for-each-ref", "--format=%(refname)%00%(objectname)%00%(contents)%1e", branch_ref, tracking
    )
    tip = ""
    requests: list[Request] = []
    malformed: list[Request] = []
    for record in out.split("\x1e"):
        name, _, rest = record.strip("\n").partition("\x00")
        sha, _, message = rest.partition("\x00")
        if name == branch_ref:
            tip = sha
        elif name.startswith(tracking) and "/" not in name.removeprefix(tracking):
            request_id = name.removeprefix(tracking)
            found = Request.parse(env, policy.branch, request_id, sha, message)
            if found is None:  # kept out of the queue; pruned once old enough to be safe
                malformed.append(Request(request_id, env, policy.branch, "", {}, sha))
            else:
                requests.append(found)
    if not tip:
        raise GitOpsError(f"{policy.remote}/{policy.branch}: no such branch on the remote")
    now = time.time()
    pending = sorted((r for r in requests if not older(r.id, TTL_SECONDS, now)), key=lambda r: r.id)
    prunable = [r for r in [*requests, *malformed] if older(r.id, PRUNE_SECONDS, now)]
    return Queue(tip, tuple(pending), tuple(prunable))


def older(request_id: str, seconds: float, now: float) -> bool:
    """The request is older than `seconds` by the time in its id (an id not made here: yes).

    Only ever a reason to leave a request to its owner, or after a day to delete it: a machine
    whose clock is behind makes requests that look old elsewhere, and it lands them itself.
    """
    try:
        return now - int(request_id.partition("-")[0], 16) / 1e9 > seconds
    except ValueError:
        return True


def publish(git: Git, policy: PushPolicy, request: Request) -> Request:
    """Push the request as a new ref (its id is unique: no race to lose). Its commit's parent is
    the source, so whoever fetches the request has the source's history to order it by."""
    empty_tree = git.run("mktree", stdin="")
    sha = git.run(
        "commit-tree", empty_tree, "-p", request.source, "-F", "-", stdin=request.message()
    )
    for attempt in range(1, policy.max_attempts + 1):
        try:
            git.run("push", "--porcelain", policy.remote, f"{sha}:{request.ref}")
            return replace(request, sha=sha)
        except GitError as exc:
            # A transient fault (an unpacker error of a read-only remote) is waited out; a
            # refusal goes up to the caller.
            if not push_may_succeed_later(exc) or attempt == policy.max_attempts:
                raise
            policy.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


WITHDRAW_ATTEMPTS = 5


def withdraw(git: Git, policy: PushPolicy, request: Request) -> None:
    """Delete our request unless it changed hands, so the next in the queue takes over at once
    (retried a few times; what is left is landed after PATIENCE_SECONDS, pruned after a day)."""
    lease = f"--force-with-lease={request.ref}:{request.sha}"
    for attempt in range(1, WITHDRAW_ATTEMPTS + 1):
        try:
            git.run("push", "--porcelain", "--quiet", policy.remote, lease, f":{request.ref}")
            return
        except GitError as exc:
            if not push_may_succeed_later(exc) or attempt == WITHDRAW_ATTEMPTS:
                return
            policy.sleep(policy.delay(attempt))


@dataclass(frozen=True)
class Outcome:
    """What landing decided for one request."""

    commit: str | None
    changes: tuple[ImageChange, ...]
    stale: tuple[str, ...]


@dataclass
class Chain:
    """The commits one landing makes on the tip, decided in memory from one read of the tip:
    each request sees the values and pinned sources the requests before it left."""

    git: Git
    env: str
    texts: dict[str, str | None]  # service -> its values file's text (None: no such file)
    pinned: dict[str, str | None]  # service -> the source its pin was built from
    known_sources: set[str]
    commits: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # message, files
    decided: dict[str, tuple[int | None, Outcome]] = field(default_factory=dict)
    _stale: dict[tuple[str, str | None], bool] = field(default_factory=dict)

    @classmethod
    def read(cls, git: Git, queue: Queue, env: str) -> Chain:
        """Three git processes whatever the queue's length: files, pins, sources."""
        services = sorted({s for r in queue.pending for s in r.images})
        paths = {s: values_path(Path("."), s, env).as_posix() for s in services}
        blobs = git.blobs([f"{queue.tip}:{path}" for path in paths.values()])
        texts = {s: blobs[f"{queue.tip}:{path}"] for s, path in paths.items()}
        sources = sorted({r.source for r in queue.pending})
        checks = git.run(
            "cat-file", "--batch-check", stdin="".join(f"{s}^{{commit}}\n" for s in sources)
        )
        known = {
            s
            for s, line in zip(sources, checks.splitlines(), strict=True)
            if line.split()[1:2] == ["commit"]
        }
        return cls(git, env, texts, pinned_sources(git, queue.tip, env, services), known)

    def is_stale(self, source: str, pinned: str | None) -> bool:
        key = (source, pinned)
        if key not in self._stale:
            self._stale[key] = is_stale(self.git, source, pinned)
        return self._stale[key]

    def add(self, request: Request) -> None:
        """Decide `request` on the chain so far; ValueError (naming the file or the source) when
        it cannot be decided here: the errors a lone bump raises."""
        if request.source not in self.known_sources:
            raise UnknownSourceError(f"no such commit in {self.git.workdir} (after fetching)")
        changes: list[ImageChange] = []
        stale: list[str] = []
        files: dict[str, str] = {}
        for service, ref in sorted(request.images.items()):
            path = values_path(Path("."), service, self.env)
            text = self.texts[service]
            if text is None:
                raise YamlFileError(f"{path}: file not found")
            if self.is_stale(request.source, self.pinned[service]):
                stale.append(service)
                continue
            edit = image_edit(path, text, ref)
            if edit is not None:
                files[service] = edit[0]
                changes.append(ImageChange(service, self.env, edit[1], ref))
        index = None
        if changes:
            message = bump_message(
                self.env, changes, request.source, extra_trailers=[(REQUEST_TRAILER, request.id)]
            )
            paths = {values_path(Path("."), s, self.env).as_posix(): t for s, t in files.items()}
            self.commits.append((message, paths))
            index = len(self.commits) - 1
            self.texts.update(files)
            self.pinned.update((c.service, request.source) for c in changes)
        self.decided[request.id] = (index, Outcome(None, tuple(changes), tuple(stale)))


def write_commits(
    git: Git, tip: str, commits: Sequence[tuple[str, Mapping[str, str]]]
) -> list[str]:
    """Write `commits` (message, {path: text}) one after another on `tip` in one `git
    fast-import`, leaving the work tree and index alone; returns their shas."""
    idents = dict(line.partition("=")[::2] for line in git.run("var", "-l").splitlines())
    author, committer = idents["GIT_AUTHOR_IDENT"], idents["GIT_COMMITTER_IDENT"]
    stream = bytearray()

    def data(text: str) -> None:
        raw = text.encode()
        stream.extend(b"data %d\n%s\n" % (len(raw), raw))

    for number, (message, files) in enumerate(commits, 1):
        stream.extend(f"commit {LANDING_REF}\nmark :{number}\n".encode())
        stream.extend(f"author {author}\ncommitter {committer}\n".encode())
        data(message)
        if number == 1:
            stream.extend(f"from {tip}\n".encode())
        for path, text in sorted(files.items()):
            stream.extend(f"M 100644 inline {path}\n".encode())
            data(text)
    with tempfile.TemporaryDirectory(prefix="bump-queue-") as tmp:
        marks = Path(tmp) / "marks"
        git.run_bytes(
            "fast-import", "--quiet", "--force", f"--export-marks={marks}", stdin=bytes(stream)
        )
        shas = dict(line.split() for line in marks.read_text().splitlines())
    return [shas[f":{number}"] for number in range(1, len(commits) + 1)]


def land(git: Git, policy: PushPolicy, queue: Queue, own: Request) -> Outcome | None:
    """Commit every pending request on the tip, oldest first, and push the commits together with
    the deletion of the decided (and prunable) requests, atomically. Returns our request's
    outcome, or None when another writer pushed first. A request of somebody else that cannot
    be decided here (its source is unknown to us, its values file is gone) is left to its owner.
    """
    chain = Chain.read(git, queue, own.env)
    for request in queue.pending:
        try:
            chain.add(request)
        except ValueError:  # a bad request of somebody else's is left to its owner
            if request.id == own.id:
                raise
    shas = write_commits(git, queue.tip, chain.commits) if chain.commits else []
    arguments = [f"{shas[-1]}:refs/heads/{policy.branch}"] if shas else []
    for request in [*queue.prunable, *(r for r in queue.pending if r.id in chain.decided)]:
        if request.sha:  # published (our own may not be yet)
            arguments += [f"--force-with-lease={request.ref}:{request.sha}", f":{request.ref}"]
    if arguments and push_atomic(git, policy, arguments) is not None:
        return None
    git.run("reset", "--quiet", "--hard", shas[-1] if shas else queue.tip)
    index, outcome = chain.decided[own.id]
    return replace(outcome, commit=None if index is None else shas[index])


def _landed_elsewhere(git: Git, own: Request, since: str, tip: str) -> Outcome:
    """Our request's fate when another writer decided it: its commit between `since` and `tip`
    (found by the Bump-Request trailer), or no commit (stale, or already pinned)."""
    fmt = f"--format=%H%x1f%(trailers:key={REQUEST_TRAILER},valueonly)"
    commit = None
    for line in git.run("log", fmt, f"{since}..{tip}").splitlines():
        sha, _, request_id = line.partition("\x1f")
        if request_id.strip() == own.id:
            commit = sha
            break
    after, before = (commit, f"{commit}^") if commit else (tip, tip)
    paths = {s: values_path(Path("."), s, own.env) for s in own.images}
    blobs = git.blobs([f"{rev}:{p.as_posix()}" for p in paths.values() for rev in (after, before)])
    changes: list[ImageChange] = []
    stale: list[str] = []
    for service, ref in sorted(own.images.items()):
        path = paths[service]
        now, then = (
            pinned_image(path, blobs[f"{rev}:{path.as_posix()}"]) for rev in (after, before)
        )
        if now == ref and then != ref:
            changes.append(ImageChange(service, own.env, then, ref))
        elif now != ref:
            stale.append(service)
    return Outcome(commit, tuple(changes), tuple(stale))


def _poll_delay(position: int) -> float:
    return random.uniform(0.5, 1.0) * min(MAX_POLL_SECONDS, POLL_STEP_SECONDS * position)  # noqa: S311


def remote_queue(git: Git, policy: PushPolicy, env: str) -> tuple[str, list[str]]:
    """(the branch's tip, the ids of its requests in `env`, oldest first) as the remote has them
    now: one `ls-remote`, no objects fetched (the cheap way to wait)."""
    prefix = requests_prefix(env, policy.branch)
    out = git.run("ls-remote", policy.remote, f"refs/heads/{policy.branch}", f"{prefix}*")
    tip, ids = "", []
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        if name == f"refs/heads/{policy.branch}":
            tip = sha
        elif name.startswith(prefix) and "/" not in name.removeprefix(prefix):
            ids.append(name.removeprefix(prefix))
    now = time.time()
    return tip, sorted(i for i in ids if not older(i, TTL_SECONDS, now))


def _wait_and_land(git: Git, policy: PushPolicy, own: Request, since: str) -> tuple[Outcome, int]:
    """Wait until our request is landed, landing the queue when at its head, or when the head
    has been stuck for PATIENCE_SECONDS times our place behind it. Returns (outcome, attempts).
    """
    attempts = 1  # the attempt to land alone
    seen: tuple[str, str] | None = None
    progress_at = time.monotonic()
    deadline = progress_at + MAX_WAIT_SECONDS
    while True:
        if time.monotonic() > deadline:
            raise PushRejectedError(
                f"bump request {own.id} still queued after {MAX_WAIT_SECONDS} s"
            )
        tip, ids = remote_queue(git, policy, own.env)
        if own.id not in ids:
            git.run("fetch", "--quiet", "--no-tags", policy.remote, policy.branch)
            git.run("reset", "--quiet", "--hard", tip)
            return _landed_elsewhere(git, own, since, tip), attempts
        if (tip, ids[0]) != seen:
            seen, progress_at = (tip, ids[0]), time.monotonic()
        position = ids.index(own.id)
        if position and time.monotonic() - progress_at < PATIENCE_SECONDS * position:
            policy.sleep(_poll_delay(position))
            continue
        if attempts >= policy.max_attempts:
            raise PushRejectedError.after(policy)
        attempts += 1
        queue = fetch_queue(git, policy, own.env)
        if own.id not in queue.ids():
            continue  # landed since we looked: the next look says how
        outcome = land(git, policy, queue, own)
        if outcome is not None:
            return outcome, attempts
        # Lost a race, or the remote is failing for now: back off as a lone writer would.
        policy.sleep(max(_poll_delay(1), policy.delay(attempts)))


def deploy(
    git: Git,
    env: str,
    images: Mapping[str, ImageRef],
    source_sha: str,
    policy: PushPolicy | None = None,
) -> CommitResult:
    """`gitops.bump` that scales with concurrent deploys of `env`: alone first, queued after a
    lost race (see the module's docstring). The same result, the same history."""
    policy = policy or PushPolicy()
    check_label("environment", env)
    check_source(source_sha)
    if not images:
        raise ValueError("bump: no images given")
    queue = fetch_queue(git, policy, env)
    start = sync_branch(git, policy, fetched=True)
    own = Request.new(env, policy.branch, source_sha, images)
    alone = replace(queue, pending=(own,))
    try:
        if not queue.pending:  # nobody is queued: land alone, as the head of a queue of one
            outcome = land(git, policy, alone, own)
            if outcome is not None:
                return CommitResult(outcome.commit, outcome.changes, 1, outcome.stale)
        else:  # bad input fails here, before anything is published
            Chain.read(git, alone, env).add(own)
        try:
            own = publish(git, policy, own)
        except GitError as exc:  # a remote that takes no refs but branches and tags: alone
            if push_may_succeed_later(exc):
                raise PushRejectedError.after(policy) from exc
            return bump(git, env, images, source_sha, policy)
        outcome, attempts = _wait_and_land(git, policy, own, since=start)
    except BaseException:
        if own.sha:
            withdraw(git, policy, own)
        restore(git, start)
        raise
    return CommitResult(outcome.commit, outcome.changes, attempts, outcome.stale)
