"""The preview of `integration --gitops` (ci.core.gitops_install, `python -m ci.gitops_wait
preview|preview-gone`): when the preview counts as Synced and Healthy, when as gone, and the
commands the runner runs. Application and Namespace objects are shaped as the API returns them;
the stand-in answers only what an API server would."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from ci.core import gitops_install as gi
from ci.core.preview import preview_slug
from harness.fakehttp import JsonServer, Request
from pipeline.test_gitops_install import app, kubeconfig_for

from ci import gitops_wait

SLUG = preview_slug(gi.PREVIEW_BRANCH)
PARENT = f"preview-{SLUG}"
ALL_APPLICATIONS = "/apis/argoproj.io/v1alpha1/applications"
NAMESPACES = "/api/v1/namespaces"
IMAGES = (
    "auth=0.1.0@sha256:" + "a" * 64,
    "backend=0.1.0@sha256:" + "b" * 64,
)
RUN = gi.PreviewRun("git://git/chat-platform.git", "main", IMAGES)


def preview_app(name: str, sync: str = "Synced", health: str = "Healthy") -> dict[str, Any]:
    found = app(name, None, sync, health)
    found["metadata"]["labels"] = {gi.PREVIEW_LABEL: SLUG}
    return found


def test_the_preview_is_ready_only_with_its_parent_and_children_synced_and_healthy() -> None:
    parent, child = preview_app(PARENT), preview_app(f"{PARENT}-auth")
    staging = app("staging-auth")  # not the preview's: no label

    assert gi.judge_preview([staging], SLUG, 1).done is False
    assert gi.judge_preview([parent], SLUG, 1).done is False  # no child yet
    pending = preview_app(f"{PARENT}-backend", "OutOfSync", "Missing")
    assert gi.judge_preview([parent, child, pending], SLUG, 1) == gi.Verdict(False, None)
    assert gi.judge_preview([parent, child, staging], SLUG, 1).done is True


def test_a_degraded_preview_fails_at_once_and_an_expired_one_names_what_is_pending() -> None:
    degraded = preview_app(f"{PARENT}-auth", "Synced", "Degraded")
    late = gi.PREVIEW_READY_SECONDS

    failed = gi.judge_preview([preview_app(PARENT), degraded], SLUG, 1)
    expired = gi.judge_preview([preview_app(f"{PARENT}-auth", "OutOfSync", "Missing")], SLUG, late)
    never = gi.judge_preview([], SLUG, late)

    assert failed.failure == f"Application/{PARENT}-auth (wave 0): Synced/Degraded"
    assert expired.failure is not None
    assert f"Application/{PARENT}-auth (wave 0): OutOfSync/Missing" in expired.failure
    assert f"Application/{PARENT}: never appeared" in expired.failure
    assert never.failure is not None
    assert f"no child Application of {PARENT} appeared" in never.failure


def test_the_preview_is_gone_when_no_application_nor_its_namespace_is_left() -> None:
    left = gi.preview_remains([preview_app(f"{PARENT}-auth"), app("staging")], ["default"], SLUG)
    namespace_only = gi.preview_remains([], ["default", f"preview-{SLUG}"], SLUG)

    assert left == [f"Application/{PARENT}-auth"]
    assert namespace_only == [f"Namespace/preview-{SLUG}"]
    assert gi.judge_gone([], SLUG, 0).done is True
    assert gi.judge_gone(namespace_only, SLUG, 1) == gi.Verdict(False, None)
    late = gi.judge_gone(namespace_only, SLUG, gi.PREVIEW_GONE_SECONDS)
    assert late.failure is not None
    assert f"Namespace/preview-{SLUG}" in late.failure


def test_the_runner_creates_and_deletes_one_preview_after_e2e_with_the_deliver_commands() -> None:
    script = gi.runner_script("/etc/k3s.yaml", "https://k3s:6443", "http://k3s", "/out", RUN)

    subprocess.run(["sh", "-n", "-c", script], check=True, timeout=60)
    lines = script.splitlines()
    keys = (
        "ci.cluster e2e",
        "ci.deliver preview --clone git://git/chat-platform.git --branch main",
        f"gitops_wait preview --kubeconfig /tmp/kubeconfig --slug {SLUG}",
        "ci.deliver preview-destroy --clone git://git/chat-platform.git --branch main",
        f"gitops_wait preview-gone --kubeconfig /tmp/kubeconfig --slug {SLUG}",
    )
    order = [lines.index(next(x for x in lines if key in x)) for key in keys]
    assert order == sorted(order)
    create = next(x for x in lines if "ci.deliver preview " in x)
    # Charts at the served branch (the preview's own branch does not exist there); staging's
    # pinned images, as `preview` passes them for every service a branch did not build.
    assert "--revision main" in create
    assert f"--preview-branch {gi.PREVIEW_BRANCH}" in create
    assert all(f"--image {image}" in create for image in IMAGES)


def test_without_a_pinned_image_the_preview_step_fails_saying_why() -> None:
    empty = gi.PreviewRun(RUN.served_url, "main", gi.pinned_images({"auth": None}))

    script = gi.runner_script("/etc/k3s.yaml", "https://k3s:6443", "http://k3s", "/out", empty)
    done = subprocess.run(
        ["sh", "-c", script.split("python -m ci.cluster e2e")[1].split("\n", 1)[1]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert "no image digest pinned" in done.stderr
    assert "ci.deliver" not in script
    assert gi.pinned_images({"b": "1@sha256:x", "a": None}) == ("b=1@sha256:x",)


Poll = tuple[list[dict[str, Any]], list[str]]  # (Applications, namespace names)


def cluster(polls: list[Poll]) -> JsonServer:
    """The API server's successive answers: (Applications, namespace names); the last repeats."""
    seen = {"apps": 0, "namespaces": 0}

    def answer(request: Request) -> tuple[int, object]:
        path = request.path.split("?")[0]
        if path == ALL_APPLICATIONS:
            apps = polls[min(seen["apps"], len(polls) - 1)][0]
            seen["apps"] += 1
            return 200, {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "ApplicationList",
                "items": apps,
            }
        if path == NAMESPACES:
            names = polls[min(seen["namespaces"], len(polls) - 1)][1]
            seen["namespaces"] += 1
            items = [{"metadata": {"name": n}} for n in names]
            return 200, {"apiVersion": "v1", "kind": "NamespaceList", "items": items}
        return 404, {"kind": "Status", "code": 404}

    return JsonServer(answer)


def wait(tmp_path: Path, server: JsonServer, command: str) -> int:
    config = kubeconfig_for(server.url, tmp_path / "kubeconfig")
    args = [command, "--kubeconfig", str(config), "--slug", SLUG, "--output", str(tmp_path)]
    return gitops_wait.main(args)


def test_the_wait_follows_the_preview_from_its_parent_to_every_child_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops_wait, "POLL_SECONDS", 0.01)
    polls: list[Poll] = [
        ([], []),
        ([preview_app(PARENT, "OutOfSync", "Missing")], []),
        ([preview_app(PARENT), preview_app(f"{PARENT}-auth", "Synced", "Progressing")], []),
        ([preview_app(PARENT), preview_app(f"{PARENT}-auth")], []),
    ]
    with cluster(polls) as server:
        assert wait(tmp_path, server, "preview") == 0
    assert not (tmp_path / gitops_wait.PREVIEW_DIAGNOSTICS).exists()


def test_the_wait_for_the_preview_to_go_lasts_until_its_namespace_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops_wait, "POLL_SECONDS", 0.01)
    namespace = f"preview-{SLUG}"
    polls: list[Poll] = [
        ([preview_app(PARENT), preview_app(f"{PARENT}-auth")], ["default", namespace]),
        ([], ["default", namespace]),  # Applications deleted, the namespace still terminating
        ([], ["default"]),
    ]
    with cluster(polls) as server:
        assert wait(tmp_path, server, "preview-gone") == 0


def test_a_preview_that_never_goes_fails_with_diagnostics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops_wait, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(gi, "PREVIEW_GONE_SECONDS", 0.05)
    stuck = preview_app(f"{PARENT}-auth", "Synced", "Healthy")
    with cluster([([stuck], ["default"])]) as server:
        assert wait(tmp_path, server, "preview-gone") == 1

    folder = tmp_path / gitops_wait.PREVIEW_DIAGNOSTICS
    failure = (folder / "failure.txt").read_text()
    assert "still there" in failure
    assert f"Application/{PARENT}-auth" in failure
    assert f"{PARENT}-auth" in (folder / "applications.txt").read_text()
