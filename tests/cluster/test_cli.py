"""`python -m ci.cluster`: usage errors (exit 2) and, against a stand-in Kubernetes API serving
recorded answers (no cluster runs here), failed waits (exit 1) and diagnostics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from chartkit import REPO
from ci.cluster import main
from ci.core.cluster_cnpg import CNPG_NAMESPACE
from harness.fakehttp import JsonServer, Request, Response

from cluster.recorded import CUSTOM_FIELDS, answers, kubeconfig_for

NAMESPACE = "chat-ci"
LISTS = {
    "/apis/apps/v1/namespaces/chat-ci/deployments": "V1DeploymentList",
    "/apis/apps/v1/namespaces/chat-ci/statefulsets": "V1StatefulSetList",
    "/apis/batch/v1/namespaces/chat-ci/jobs": "V1JobList",
    "/api/v1/namespaces/chat-ci/pods": "V1PodList",
    "/api/v1/namespaces/chat-ci/persistentvolumeclaims": "V1PersistentVolumeClaimList",
    "/api/v1/namespaces/chat-ci/events": "CoreV1EventList",
    "/api/v1/nodes": "V1NodeList",
    "/apis/postgresql.cnpg.io/v1/namespaces/chat-ci/clusters": "ClusterList",
    "/apis/postgresql.cnpg.io/v1/namespaces/chat-ci/databases": "DatabaseList",
}
DATABASE_NAMES = ("auth", "backend", "data-processor", "media-storage")
CRASH_LOG = "Traceback (most recent call last):\nRuntimeError: REDIS_URL is not reachable\n"


class RecordedApi:
    """Answers the list calls with one recorded file; logs of previous runs say they crashed.
    Lists of the operator's namespace answer with `<ListType>@cnpg-system` (none: empty)."""

    def __init__(self, name: str) -> None:
        self.bodies = answers(name)
        self.seen: list[str] = []

    def answer(self, request: Request) -> tuple[int, object] | Response:
        url = urlsplit(request.path)
        self.seen.append(url.path)
        if url.path.endswith("/log"):
            previous = parse_qs(url.query).get("previous") == ["true"]
            text = CRASH_LOG if previous else "starting\n"
            return Response(200, text.encode(), {"Content-Type": "text/plain"})
        operator = f"/namespaces/{CNPG_NAMESPACE}/"
        list_type = LISTS.get(url.path.replace(operator, f"/namespaces/{NAMESPACE}/"))
        # A custom resource list the recording lacks: the API server has no such CRD.
        uninstalled = list_type in CUSTOM_FIELDS and list_type not in self.bodies
        if list_type is None or uninstalled or request.method != "GET":
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        key = f"{list_type}@{CNPG_NAMESPACE}" if operator in url.path else list_type
        return 200, self.bodies.get(key, {"metadata": {}, "items": []})


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[tuple[Path, RecordedApi]]:
    api = RecordedApi("healthy")
    with JsonServer(lambda request: api.answer(request)) as server:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig_for(server.url)))
        yield path, api


def run(*argv: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "ci.cluster", *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "ci" / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["install", "--kubeconfig", "k"], "--images"),
        (["wait", "--images", "x"], "--kubeconfig"),
        (["wait", "--kubeconfig", "k", "--timeout", "0"], "--timeout"),
        (["launch", "--kubeconfig", "k"], "launch"),
    ],
)
def test_usage_errors_exit_2_naming_the_argument(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert named in capsys.readouterr().err


def test_the_module_runs_as_a_command_and_exits_2_without_a_command() -> None:
    code, stderr = run()

    assert code == 2
    assert "COMMAND" in stderr


def test_install_with_a_bad_image_exits_2_before_touching_any_cluster(tmp_path: Path) -> None:
    out = tmp_path / "out"

    code = main(["install", "--kubeconfig", "missing", "--images", "auth", "--output", str(out)])

    assert code == 2
    assert not out.exists()


def test_install_names_services_without_an_image(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["install", "--kubeconfig", "k", "--repo", str(REPO), "--images", "auth=a/auth:1"])

    assert code == 2
    assert "--images: no image for ai, backend, data-processor, frontend, media-storage" in (
        capsys.readouterr().err
    )


def test_a_kubeconfig_that_is_not_there_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["wait", "--kubeconfig", str(tmp_path / "nope"), "--output", str(tmp_path)])

    assert code == 2
    assert f"--kubeconfig: {tmp_path / 'nope'} is not a file" in capsys.readouterr().err


def test_wait_on_a_ready_namespace_exits_0_and_records_its_time(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path
) -> None:
    path, api = kubeconfig

    code = main(["wait", "--kubeconfig", str(path), "--output", str(tmp_path / "out")])

    assert code == 0
    assert "/api/v1/namespaces/chat-ci/pods" in api.seen
    assert set(json.loads((tmp_path / "out" / "timings.json").read_text())) == {"ready"}


def test_wait_exits_1_naming_the_crashing_pod_and_its_last_exit(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, api = kubeconfig
    api.bodies = answers("crashloop")

    code = main(["wait", "--kubeconfig", str(path), "--output", str(tmp_path)])

    assert code == 1
    err = capsys.readouterr().err
    assert "namespace chat-ci failed:" in err
    assert "Pod/backend-5f7c9d8b6-qp2vx: CrashLoopBackOff: container backend" in err
    assert "last exit code 3 (Error)" in err


def test_wait_exits_1_when_its_deadline_expires_naming_what_is_still_waiting(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, api = kubeconfig
    api.bodies = answers("rollout-stuck")

    code = main(["wait", "--kubeconfig", str(path), "--timeout", "0.1", "--output", str(tmp_path)])

    assert code == 1
    err = capsys.readouterr().err
    assert "namespace chat-ci: deadline expired, still waiting for:" in err
    assert "Deployment/media-storage: 0 of 1 replicas available" in err


def test_wait_reads_cloudnativepg_clusters_and_fails_on_one_that_needs_a_person(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, api = kubeconfig
    recorded = answers("cloudnativepg")
    api.bodies = {**recorded, "ClusterList": recorded["ClusterList@unrecoverable"]}

    code = main(["wait", "--kubeconfig", str(path), "--output", str(tmp_path)])

    assert code == 1
    assert "/apis/postgresql.cnpg.io/v1/namespaces/chat-ci/databases" in api.seen
    assert (
        "Cluster/postgres: Cluster is unrecoverable and needs manual intervention: "
        "Missing primary PVC" in capsys.readouterr().err
    )


def test_wait_on_a_namespace_without_cloudnativepg_crds_treats_them_as_absent(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path
) -> None:
    path, api = kubeconfig  # healthy.json: no CloudNativePG lists, so 404 as without its CRDs

    assert main(["wait", "--kubeconfig", str(path), "--output", str(tmp_path)]) == 0
    assert "/apis/postgresql.cnpg.io/v1/namespaces/chat-ci/clusters" in api.seen


def test_diagnose_writes_events_pods_verdicts_and_the_crashed_run_s_log(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path
) -> None:
    path, api = kubeconfig
    api.bodies = answers("crashloop")

    code = main(["diagnose", "--kubeconfig", str(path), "--output", str(tmp_path)])

    folder = tmp_path / "diagnostics"
    assert code == 0
    assert (
        folder / "logs" / "backend-5f7c9d8b6-qp2vx.backend.previous.log"
    ).read_text() == CRASH_LOG
    assert "waiting (CrashLoopBackOff)" in (folder / "pods.txt").read_text()
    assert (
        "failed\tPod/backend-5f7c9d8b6-qp2vx: CrashLoopBackOff"
        in (folder / "verdicts.txt").read_text()
    )
    assert (folder / "events.txt").is_file()


def test_diagnose_keeps_cloudnativepg_s_status_and_the_operator_s_logs(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path
) -> None:
    path, api = kubeconfig
    recorded = answers("cloudnativepg")
    operator_pod = {
        "metadata": {"name": "cnpg-cloudnative-pg-7d5c9b8f6-k2x9z", "namespace": CNPG_NAMESPACE},
        "spec": {"containers": [{"name": "manager", "image": "cloudnative-pg:1.30.0"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "manager",
                    "image": "cloudnative-pg:1.30.0",
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-12-06T07:30:00Z"}},
                }
            ],
        },
    }
    api.bodies = {
        **recorded,
        "ClusterList": recorded["ClusterList@starting"],
        f"V1PodList@{CNPG_NAMESPACE}": {"metadata": {}, "items": [operator_pod]},
    }

    code = main(["diagnose", "--kubeconfig", str(path), "--output", str(tmp_path)])

    folder = tmp_path / "diagnostics"
    assert code == 0
    dumped = list(yaml.safe_load_all((folder / "cloudnativepg.yaml").read_text()))
    assert [(o["kind"], o["metadata"]["name"]) for o in dumped] == [
        ("Cluster", "postgres"),
        *(("Database", f"postgres-{s}") for s in DATABASE_NAMES),
    ]
    assert dumped[0]["status"]["phase"] == "Setting up primary"
    log = folder / "logs" / CNPG_NAMESPACE / "cnpg-cloudnative-pg-7d5c9b8f6-k2x9z.manager.log"
    assert log.read_text() == "starting\n"


def test_diagnose_of_a_namespace_without_cloudnativepg_writes_none_of_it(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path
) -> None:
    path, api = kubeconfig

    assert main(["diagnose", "--kubeconfig", str(path), "--output", str(tmp_path)]) == 0
    assert not (tmp_path / "diagnostics" / "cloudnativepg.yaml").exists()
    assert not any(f"/namespaces/{CNPG_NAMESPACE}/" in seen for seen in api.seen)


def test_e2e_needs_the_repository_s_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["e2e", "--kubeconfig", "k", "--repo", str(tmp_path), "--base-url", "http://k3s"])

    assert code == 2
    assert f"--repo: {tmp_path} has no tests/e2e" in capsys.readouterr().err


def test_the_command_line_and_its_core_do_not_import_dagger() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, ci.cluster; print('dagger' in sys.modules)"],
        env={**os.environ, "PYTHONPATH": str(REPO / "ci" / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.stdout.strip() == "False", done.stderr


def test_run_fails_naming_a_node_that_never_gets_ready_and_leaves_diagnostics(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, api = kubeconfig
    api.bodies = {**answers("node-not-ready"), **answers("crashloop")}
    argv = [
        "run",
        "--kubeconfig",
        str(path),
        "--images",
        "auth=a/auth:1",
        "--base-url",
        "http://k3s",
        "--consume-kubeconfig",
    ]

    code = main([*argv, "--timeout", "0.1", "--output", str(tmp_path)])

    assert code == 1
    assert not path.exists()  # no cluster-admin credentials left in the engine's volume
    err = capsys.readouterr().err
    assert (
        "cluster: deadline expired: Node/k3s: not Ready: KubeletNotReady: container runtime" in err
    )
    assert (tmp_path / "diagnostics" / "pods.txt").is_file()
    assert not (tmp_path / "timings.json").exists()  # the cluster never got ready


def test_run_waits_for_every_expected_node_and_names_the_missing_one(
    kubeconfig: tuple[Path, RecordedApi], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, api = kubeconfig
    api.bodies = answers("node-not-ready")  # the server's node only: the agent never joined
    argv = ["run", "--kubeconfig", str(path), "--images", "auth=a/auth:1", "--nodes", "2"]

    code = main([*argv, "--base-url", "http://k3s", "--timeout", "0.1", "--output", str(tmp_path)])

    assert code == 1
    err = capsys.readouterr().err
    assert "cluster: deadline expired: 1 of 2 nodes registered (Node/k3s: not Ready" in err


@pytest.mark.parametrize("nodes", ["0", "two", "-1"])
def test_run_refuses_a_node_count_that_is_not_positive(
    nodes: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--kubeconfig", "k", "--images", "auth=a/auth:1", "--base-url", "http://k3s"]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--nodes", nodes])
    assert exited.value.code == 2
    assert f"--nodes: {nodes!r} is not a positive whole number" in capsys.readouterr().err


def test_run_fails_when_k3s_never_writes_its_kubeconfig(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--kubeconfig", str(tmp_path / "k3s.yaml"), "--images", "auth=a/auth:1"]
    output = tmp_path / "out"  # not there yet: `integration --allow-failure` exports it

    code = main([*argv, "--base-url", "http://k3s", "--timeout", "0.1", "--output", str(output)])

    assert code == 1
    assert f"K3s wrote no kubeconfig at {tmp_path / 'k3s.yaml'}" in capsys.readouterr().err
    failure = (output / "diagnostics" / "failure.txt").read_text()
    assert f"deadline expired: K3s wrote no kubeconfig at {tmp_path / 'k3s.yaml'}" in failure


def test_a_cluster_that_does_not_answer_exits_1_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with JsonServer(lambda request: (200, {})) as server:
        closed = server.url  # the port is free again once the server is gone
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig_for(closed)))

    code = main(["wait", "--kubeconfig", str(path), "--output", str(tmp_path)])

    assert code == 1
    assert "ci.cluster wait: the cluster did not answer:" in capsys.readouterr().err
