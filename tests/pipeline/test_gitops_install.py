"""Decisions of the GitOps first install (ci.core.gitops_install): the real argocd/ files pointed
at the engine's git server, and Application objects shaped as Argo CD's API returns them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci.core import gitops_install as gi
from harness.fakehttp import JsonServer, Request

from ci import gitops_wait

ROOT = Path(__file__).resolve().parents[2]
SERVED = "git://git/chat-platform.git"


def argocd_files() -> dict[str, str]:
    return {
        p.relative_to(ROOT).as_posix(): p.read_text()
        for p in (ROOT / "argocd").rglob("*")
        if p.is_file() and p.suffix in {".yaml", ".json"}
    }


def repo_urls(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for k, v in value.items() for u in ([v] if k == "repoURL" else repo_urls(v))]
    if isinstance(value, list):
        return [u for v in value for u in repo_urls(v)]
    return []


def test_every_repo_url_of_the_real_argocd_files_follows_the_served_repository() -> None:
    files = argocd_files()
    origin = gi.source_url(files)

    changed = gi.retarget(files, SERVED)

    assert gi.SOURCE_FILE in changed
    assert "argocd/root.yaml" in changed
    for path, text in {**files, **changed}.items():
        assert origin not in (changed.get(path, text)), path
    for path, text in changed.items():
        if path.endswith(".yaml") and "{{" not in text:
            urls = [u for doc in yaml.safe_load_all(text) for u in repo_urls(doc)]
            assert set(urls) <= {SERVED}, path


def test_a_missing_source_file_is_named() -> None:
    with pytest.raises(ValueError, match=r"argocd/source.yaml: missing"):
        gi.retarget({"argocd/root.yaml": "kind: Application\n"}, SERVED)


def app(
    name: str,
    wave: str | None = None,
    sync: str = "Synced",
    health: str = "Healthy",
    **status: Any,
) -> dict[str, Any]:
    annotations = {gi.WAVE_ANNOTATION: wave} if wave is not None else {}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "status": {"sync": {"status": sync}, "health": {"status": health}, **status},
    }


def test_applications_wait_in_waves_lowest_first_each_with_its_own_deadline() -> None:
    found = gi.waves([app("auth", "2"), app("postgres", "1"), app("backend", "2"), app("root")])

    assert [(w.number, w.apps) for w in found] == [
        (0, ("root",)),
        (1, ("postgres",)),
        (2, ("auth", "backend")),
    ]
    assert found[2].deadline_seconds > found[1].deadline_seconds


def test_a_wave_is_done_when_every_application_is_synced_and_healthy() -> None:
    wave = gi.waves([app("auth", "2"), app("backend", "2")])[0]

    progressing = [app("auth", "2"), app("backend", "2", "OutOfSync", "Progressing")]
    assert gi.judge(wave, progressing, 10) == gi.Verdict(False, None)
    assert gi.judge(wave, [app("auth", "2"), app("backend", "2")], 10) == gi.Verdict(True, None)


def test_an_expired_deadline_names_each_pending_application_with_argo_cd_s_conditions() -> None:
    pending = app(
        "backend",
        "2",
        "OutOfSync",
        "Missing",
        conditions=[{"type": "ComparisonError", "message": "repository not found"}],
    )
    wave = gi.waves([app("auth", "2"), pending])[0]

    verdict = gi.judge(wave, [pending], wave.deadline_seconds)

    assert verdict.done is False
    assert verdict.failure is not None
    assert "deadline of wave 2" in verdict.failure
    assert (
        "Application/backend (wave 2): OutOfSync/Missing: ComparisonError: repository not found"
        in verdict.failure
    )
    assert "Application/auth: gone" in verdict.failure


def test_a_failed_sync_fails_at_once_with_its_message() -> None:
    failed = app(
        "auth",
        "2",
        "OutOfSync",
        "Progressing",
        operationState={"phase": "Failed", "message": "one or more objects failed to apply"},
    )
    wave = gi.waves([failed])[0]

    verdict = gi.judge(wave, [failed], 1)

    assert verdict.failure == (
        "Application/auth (wave 2): OutOfSync/Progressing: "
        "sync Failed: one or more objects failed to apply"
    )


def test_a_wave_annotation_that_is_no_number_is_named() -> None:
    with pytest.raises(ValueError, match=r"Application/auth: .*sync-wave 'first' is no integer"):
        gi.waves([app("auth", "first")])


APPLICATIONS = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"


def kubeconfig_for(url: str, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "stand-in"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def serving(polls: list[list[dict[str, Any]]]) -> JsonServer:
    """The API server's answers to successive list calls (the last one repeats)."""
    seen = iter(range(10_000))

    def answer(request: Request) -> tuple[int, object]:
        if request.path.split("?")[0] != APPLICATIONS:
            return 404, {"kind": "Status", "code": 404}
        items = polls[min(next(seen), len(polls) - 1)]
        return 200, {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationList",
            "items": items,
        }

    return JsonServer(answer)


def test_the_wait_follows_the_app_of_apps_until_every_wave_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops_wait, "POLL_SECONDS", 0.01)
    polls = [
        [app("root", None, "OutOfSync", "Progressing")],
        [app("root"), app("staging", "1", "OutOfSync", "Missing")],
        [app("root"), app("staging", "1")],
    ]
    with serving(polls) as server:
        config = kubeconfig_for(server.url, tmp_path / "kubeconfig")
        code = gitops_wait.main(["wait", "--kubeconfig", str(config), "--output", str(tmp_path)])

    assert code == 0
    assert not (tmp_path / "diagnostics").exists()


def test_a_failed_sync_stops_the_wait_with_diagnostics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops_wait, "POLL_SECONDS", 0.01)
    broken = app("staging", "1", "OutOfSync", "Degraded")
    with serving([[app("root"), broken]]) as server:
        config = kubeconfig_for(server.url, tmp_path / "kubeconfig")
        code = gitops_wait.main(["wait", "--kubeconfig", str(config), "--output", str(tmp_path)])

    assert code == 1
    failure = (tmp_path / "diagnostics" / "failure.txt").read_text()
    assert "Application/staging (wave 1): OutOfSync/Degraded" in failure
    assert (tmp_path / "diagnostics" / "applications.json").is_file()


def test_the_runner_script_is_valid_sh_and_bootstraps_before_waiting() -> None:
    script = gi.runner_script("/etc/rancher/k3s/run.yaml", "https://k3s:6443", "http://k3s", "/out")

    subprocess.run(["sh", "-n", "-c", script], check=True, timeout=60)
    lines = script.splitlines()
    order = [
        lines.index(next(x for x in lines if key in x))
        for key in (
            "gitops_wait kubeconfig",
            "k3s/bootstrap.sh",
            "gitops_wait wait",
            "ci.cluster e2e",
        )
    ]
    assert order == sorted(order)
    assert (ROOT / "k3s" / "bootstrap.sh").is_file()
