"""Per-service releases from conventional commits: next version, changelog, annotated tags.

A commit belongs to a service when it touches `services/<name>/`, a library the service `uses`
(`services/<lib>/`), or its chart `charts/<name>/`. Since the service's last `<name>-v<semver>`
tag reachable from HEAD:
- `feat` -> minor, `fix` / `perf` / `revert` -> patch, `<type>!:` or a `BREAKING CHANGE:` footer
  -> major; every other type (chore, docs, ci, deploy, ...) releases nothing.
- Pre-1.0 rule: while the version is 0.y.z a breaking change bumps the minor (0.3.1 -> 0.4.0),
  as semver allows for initial development; a first release starts from 0.0.0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from pathlib import Path

from ci.core.catalog import Catalog
from ci.core.gitops import SKIP_CI_MARKER, PushPolicy, transact
from ci.core.gitrepo import Git
from ci.core.yamlfile import atomic_write

HEADER = re.compile(
    r"^(?P<type>[a-zA-Z]+)(?:\((?P<scope>[^()\r\n]*)\))?(?P<bang>!)?: (?P<description>\S.*)$"
)
BREAKING_FOOTER = re.compile(r"^BREAKING[ -]CHANGE: ", re.MULTILINE)
PLAIN_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
CHANGELOG_TITLE = "# Changelog"


class Level(IntEnum):
    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3


TYPE_LEVEL = {"feat": Level.MINOR, "fix": Level.PATCH, "perf": Level.PATCH, "revert": Level.PATCH}


@dataclass(frozen=True)
class Change:
    """One conventional commit."""

    sha: str
    type: str
    scope: str | None
    breaking: bool
    description: str

    @property
    def level(self) -> Level:
        if self.breaking:
            return Level.MAJOR
        return TYPE_LEVEL.get(self.type, Level.NONE)


SECTIONS: tuple[tuple[str, Callable[[Change], bool]], ...] = (
    ("Breaking changes", lambda c: c.breaking),
    ("Features", lambda c: c.type == "feat" and not c.breaking),
    ("Bug fixes", lambda c: c.type == "fix" and not c.breaking),
    ("Performance", lambda c: c.type == "perf" and not c.breaking),
    ("Reverts", lambda c: c.type == "revert" and not c.breaking),
)


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version | None:
        match = PLAIN_VERSION.fullmatch(text)
        if not match:
            return None
        major, minor, patch = (int(part) for part in match.groups())
        return cls(major, minor, patch)

    def bump(self, level: Level) -> Version:
        if level == Level.MAJOR and self.major == 0:
            level = Level.MINOR  # pre-1.0 rule
        if level == Level.MAJOR:
            return Version(self.major + 1, 0, 0)
        if level == Level.MINOR:
            return Version(self.major, self.minor + 1, 0)
        if level == Level.PATCH:
            return Version(self.major, self.minor, self.patch + 1)
        return self

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class ReleasePlan:
    service: str
    previous: Version | None
    version: Version
    changes: tuple[Change, ...]

    @property
    def tag(self) -> str:
        return tag_name(self.service, self.version)

    @property
    def level(self) -> Level:
        return max((c.level for c in self.changes), default=Level.NONE)


def tag_name(service: str, version: Version) -> str:
    return f"{service}-v{version}"


def parse_commit(sha: str, message: str) -> Change | None:
    """The conventional-commit reading of `message`, or None when it is not one."""
    subject, _, body = message.strip().partition("\n")
    match = HEADER.fullmatch(subject.strip())
    if not match:
        return None
    breaking = bool(match["bang"]) or bool(BREAKING_FOOTER.search(body))
    return Change(
        sha=sha,
        type=match["type"].lower(),
        scope=match["scope"],
        breaking=breaking,
        description=match["description"].strip(),
    )


def service_paths(catalog: Catalog, service: str) -> list[str]:
    """The paths whose changes belong to `service`'s releases."""
    entry = catalog.get(service)
    libraries = [f"services/{library}/" for library in entry.uses]
    return [f"services/{service}/", *libraries, f"charts/{service}/"]


def last_release(git: Git, service: str) -> tuple[str, Version] | None:
    """The highest `<service>-vX.Y.Z` tag reachable from HEAD (pre-releases are not bases)."""
    prefix = f"{service}-v"
    found: list[tuple[Version, str]] = []
    for tag in git.run("tag", "--list", f"{prefix}*", "--merged", "HEAD").splitlines():
        version = Version.parse(tag[len(prefix) :])
        if version is not None:
            found.append((version, tag))
    if not found:
        return None
    version, tag = max(found, key=lambda item: (item[0].major, item[0].minor, item[0].patch))
    return tag, version


def changes_since(git: Git, since: str | None, paths: Sequence[str]) -> list[Change]:
    """Conventional commits after `since` (or all) touching `paths`, oldest first."""
    revision = f"{since}..HEAD" if since else "HEAD"
    out = git.run(
        "log", "--no-merges", "--reverse", "--format=%H%x1f%B%x1e", revision, "--", *paths
    )
    changes = []
    for record in out.split("\x1e"):
        if not record.strip():
            continue
        sha, _, message = record.strip("\n").partition("\x1f")
        change = parse_commit(sha, message)
        if change is not None:
            changes.append(change)
    return changes


def plan_service(git: Git, catalog: Catalog, service: str) -> ReleasePlan | None:
    """The next release of `service`, or None when no commit since its last tag warrants one."""
    last = last_release(git, service)
    changes = changes_since(git, last[0] if last else None, service_paths(catalog, service))
    relevant = tuple(c for c in changes if c.level > Level.NONE)
    if not relevant:
        return None
    previous = last[1] if last else None
    level = max(c.level for c in relevant)
    version = (previous or Version(0, 0, 0)).bump(level)
    return ReleasePlan(service=service, previous=previous, version=version, changes=relevant)


def nothing_to_release(git: Git, service: str) -> str:
    """Why `service` has no release planned, for an empty plan's explanation."""
    last = last_release(git, service)
    since = f"since {last[0]}" if last else "in its history (no release tag yet)"
    return f"no conventional commit that releases (feat, fix, perf, revert, breaking) {since}"


def plan_releases(
    git: Git, catalog: Catalog, services: Iterable[str] | None = None
) -> list[ReleasePlan]:
    names = list(services) if services else catalog.names()
    plans = [plan_service(git, catalog, name) for name in names]
    return [plan for plan in plans if plan is not None]


def changelog_section(plan: ReleasePlan, day: date) -> str:
    lines = [f"## {plan.service} {plan.version} ({day.isoformat()})", ""]
    if plan.previous:
        lines[-1:] = ["", f"Changes since {tag_name(plan.service, plan.previous)}.", ""]
    for title, belongs in SECTIONS:
        entries = [c for c in plan.changes if belongs(c)]
        if not entries:
            continue
        lines += [f"### {title}", ""]
        for change in entries:
            scope = f"**{change.scope}:** " if change.scope else ""
            lines.append(f"- {scope}{change.description} ({change.sha[:7]})")
        lines.append("")
    return "\n".join(lines)


def write_changelog(root: Path, plan: ReleasePlan, day: date) -> Path:
    """Prepend the release's section to services/<name>/CHANGELOG.md (newest first)."""
    path = root / "services" / plan.service / "CHANGELOG.md"
    existing = path.read_text(encoding="utf-8") if path.exists() else f"{CHANGELOG_TITLE}\n"
    title, _, rest = existing.partition("\n")
    if title.strip() != CHANGELOG_TITLE:
        title, rest = CHANGELOG_TITLE, existing
    body = rest.lstrip("\n")
    text = f"{title}\n\n{changelog_section(plan, day)}\n" + (f"{body}" if body else "")
    atomic_write(path, text.rstrip("\n") + "\n")
    return path


def release_message(plans: Sequence[ReleasePlan]) -> str:
    names = ", ".join(f"{p.service} {p.version}" for p in plans)
    lines = [f"chore(release): {names} {SKIP_CI_MARKER}", ""]
    lines += [f"Release: {p.tag}" for p in plans]
    return "\n".join(lines) + "\n"


def tag_releases(
    git: Git,
    catalog: Catalog,
    day: date,
    services: Iterable[str] | None = None,
    policy: PushPolicy | None = None,
) -> list[ReleasePlan]:
    """Plan, write changelogs, commit, and push the commit with annotated tags atomically.

    The tags are (re)created on the final commit before every push attempt, so a rebase after a
    lost race never leaves a tag on a commit that is not on the branch.
    """
    policy = policy or PushPolicy()
    plans: list[ReleasePlan] = []

    def edit(_start: str) -> tuple[list[Path], str] | None:
        plans[:] = plan_releases(git, catalog, services)
        if not plans:
            return None
        paths = [write_changelog(git.workdir, plan, day) for plan in plans]
        return paths, release_message(plans)

    def tags_at(head: str) -> list[str]:
        refs = []
        for plan in plans:
            note = f"{plan.tag}\n\n{changelog_section(plan, day)}"
            git.run("tag", "--force", "--annotate", plan.tag, "--file=-", head, stdin=note)
            refs.append(f"refs/tags/{plan.tag}:refs/tags/{plan.tag}")
        return refs

    try:
        commit, _ = transact(git, policy, edit, extra_refs=tags_at)
    except BaseException:
        # Nothing half-done: tags made for a push that did not happen go too.
        for plan in plans:
            git.run("tag", "--delete", plan.tag, check=False)
        raise
    return plans if commit else []
