"""Readiness verdicts over recorded API shapes deserialised into the kubernetes client's models."""

from __future__ import annotations

import copy

import pytest
from ci.cluster import WaitFailedError, phase_selector, wait_until_ready
from ci.core.cluster_plan import Phase
from ci.core.cluster_readiness import (
    State,
    cnpg_cluster_verdict,
    deployment_verdict,
    job_verdict,
    judge,
    missing_images,
    node_verdict,
    nodes_unready,
    pod_verdict,
    ready,
    verdicts,
    waiting,
)

from cluster.recorded import answers, deserialize, snapshot

NOW = 1000.0
LATER = NOW + 60


def by_subject(name: str, variant: str = "") -> dict[str, tuple[State, str]]:
    return {v.subject: (v.state, v.reason) for v in verdicts(snapshot(name, variant))}


def test_a_healthy_install_is_done() -> None:
    found = verdicts(snapshot("healthy"))

    assert {v.subject for v in found} == {
        "Deployment/auth",
        "StatefulSet/postgres",
        "Job/auth-migrate",
        "Pod/auth-6d9c7b8f5d-x2k8p",
        "Pod/auth-migrate-7w9qz",
        "PersistentVolumeClaim/data-postgres-0",
    }
    assert all(v.state is State.READY for v in found), found
    assert judge(found, NOW, LATER, "install") == judge([], NOW, LATER, "install")
    assert judge(found, NOW, LATER, "install").done


def test_a_pending_claim_waits_with_its_event_and_expires_naming_it() -> None:
    found = verdicts(snapshot("pvc-pending"))

    assert by_subject("pvc-pending") == {
        "PersistentVolumeClaim/postgres-backup": (
            State.WAITING,
            "Pending: WaitForFirstConsumer: "
            "waiting for first consumer to be created before binding",
        )
    }
    assert not judge(found, NOW, LATER, "postgres").finished
    outcome = judge(found, LATER, LATER, "postgres")
    assert outcome.failure is not None
    assert "postgres: deadline expired" in outcome.failure
    assert "PersistentVolumeClaim/postgres-backup: Pending: WaitForFirstConsumer" in outcome.failure


def test_a_job_out_of_retries_fails_at_once_with_its_backoff() -> None:
    outcome = judge(verdicts(snapshot("job-backoff")), NOW, LATER, "backend PreSync")

    assert outcome.failure == (
        "backend PreSync failed:\n  Job/backend-migrate: BackoffLimitExceeded: Job has reached the "
        "specified backoff limit (3 failed pods, backoffLimit 2)"
    )


def test_a_job_still_retrying_waits_and_its_failed_pod_does_not_fail_the_wait() -> None:
    bodies = answers("job-backoff")
    job = copy.deepcopy(bodies["V1JobList"])
    job["items"][0]["status"] = {"active": 1, "failed": 1, "startTime": "2026-11-27T10:04:00Z"}
    found = verdicts(snapshot("job-backoff"))
    found[0] = job_verdict(deserialize(job, "V1JobList").items[0])

    assert found[0].state is State.WAITING
    assert found[0].reason == "running: 1 active, 1 failed of backoffLimit 2"
    assert found[1].subject == "Pod/backend-migrate-4kd8s"
    assert found[1].state is State.READY
    assert not judge(found, NOW, LATER, "backend PreSync").finished


def test_crash_loop_fails_with_restarts_and_last_exit() -> None:
    found = by_subject("crashloop")

    assert found["Pod/backend-5f7c9d8b6-qp2vx"] == (
        State.FAILED,
        "CrashLoopBackOff: container backend (ci.local/chat-platform/backend:ci), 4 restarts, "
        "last exit code 3 (Error)",
    )
    assert found["Deployment/backend"] == (State.WAITING, "0 of 1 replicas available")


def test_an_early_crash_loop_waits_for_dependencies() -> None:
    body = copy.deepcopy(answers("crashloop")["V1PodList"])
    body["items"][0]["status"]["containerStatuses"][0]["restartCount"] = 1

    verdict = pod_verdict(deserialize(body, "V1PodList").items[0])

    assert verdict.state is State.WAITING
    assert verdict.reason.startswith("CrashLoopBackOff: container backend")


def test_an_image_that_is_not_on_the_node_fails_naming_image_and_cause() -> None:
    outcome = judge(verdicts(snapshot("image-never-pull")), NOW, LATER, "ai")

    assert outcome.failure is not None
    assert (
        "Pod/ai-6b8d7c9f5-m4n7t: ErrImageNeverPull: container ai (ci.local/chat-platform/ai:ci)"
        in (outcome.failure)
    )
    assert "not loaded?" in outcome.failure


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
def test_a_pull_in_trouble_waits_and_names_the_reason(reason: str) -> None:
    body = copy.deepcopy(answers("image-never-pull")["V1PodList"])
    body["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] = reason

    verdict = pod_verdict(deserialize(body, "V1PodList").items[0])

    assert (verdict.state, verdict.reason.split(":")[0]) == (State.WAITING, reason)


def test_a_stuck_rollout_waits_then_the_deadline_names_deployment_and_unschedulable_pod() -> None:
    found = verdicts(snapshot("rollout-stuck"))

    assert not judge(found, NOW, LATER, "media-storage").finished
    outcome = judge(found, LATER + 1, LATER, "media-storage")
    assert outcome.failure is not None
    lines = outcome.failure.splitlines()
    assert lines[0] == "media-storage: deadline expired, still waiting for:"
    assert "  Deployment/media-storage: 0 of 1 replicas available" in lines
    assert any(
        line.startswith("  Pod/media-storage-7d-k2j4h: not scheduled: Unschedulable: 0/1 nodes")
        and "unbound immediate PersistentVolumeClaims" in line
        for line in lines
    ), lines


def test_progress_deadline_exceeded_fails_without_waiting_for_ours() -> None:
    found = by_subject("rollout-stuck", "progress-deadline")

    assert found["Deployment/media-storage"] == (
        State.FAILED,
        'ProgressDeadlineExceeded: ReplicaSet "media-storage-7d" has timed out progressing.',
    )


def test_an_expected_object_the_cluster_lacks_waits_as_not_created() -> None:
    found = verdicts(snapshot("healthy"), expected=["Deployment/auth", "Deployment/backend"])

    outcome = judge(found, LATER, LATER, "install")
    assert (
        outcome.failure
        == "install: deadline expired, still waiting for:\n  Deployment/backend: not created yet"
    )


def test_a_spec_the_controller_has_not_seen_waits() -> None:
    body = copy.deepcopy(answers("healthy")["V1DeploymentList"])
    body["items"][0]["metadata"]["generation"] = 2

    verdict = deployment_verdict(deserialize(body, "V1DeploymentList").items[0])

    assert verdict.state is State.WAITING
    assert "not observed" in verdict.reason


def test_a_node_is_ready_only_when_its_kubelet_says_so() -> None:
    body = copy.deepcopy(answers("node-not-ready")["V1NodeList"])
    waiting_node = node_verdict(deserialize(body, "V1NodeList").items[0])
    body["items"][0]["status"]["conditions"][1].update(status="True", reason="KubeletReady")
    ready_node = node_verdict(deserialize(body, "V1NodeList").items[0])

    assert waiting_node.state is State.WAITING
    assert waiting_node.reason.startswith("not Ready: KubeletNotReady: container runtime network")
    assert (ready_node.state, ready_node.reason) == (State.READY, "Ready")


def test_images_count_as_loaded_once_the_node_lists_them() -> None:
    body = copy.deepcopy(answers("node-not-ready")["V1NodeList"])
    body["items"][0]["status"]["images"] = [
        {
            "names": [
                "ci.local/chat-platform/auth:ci",
                "ci.local/chat-platform/auth@sha256:" + "a" * 64,
            ],
            "sizeBytes": 61234567,
        },
        {"names": ["docker.io/rancher/mirrored-pause:3.6"], "sizeBytes": 301463},
    ]
    nodes = deserialize(body, "V1NodeList").items
    wanted = ["ci.local/chat-platform/auth:ci", "ci.local/chat-platform/ai:ci"]

    assert missing_images(nodes, wanted) == ["ci.local/chat-platform/ai:ci"]
    assert missing_images(nodes, wanted[:1]) == []


def test_nodes_are_ready_only_when_every_expected_node_registered_and_is_ready() -> None:
    server, agent = ready("Node/k3s", "Ready"), ready("Node/agent-1", "Ready")
    joining = waiting("Node/agent-1", "not Ready: no Ready condition yet")

    assert nodes_unready([server], 1) is None
    assert nodes_unready([server, agent], 2) is None
    assert nodes_unready([server], 2) == "1 of 2 nodes registered (Node/k3s: Ready)"
    assert nodes_unready([], 1) == "0 of 1 nodes registered (none)"
    assert nodes_unready([server, joining], 2) == "Node/agent-1: not Ready: no Ready condition yet"


def test_a_healthy_cloudnativepg_cluster_and_its_applied_databases_are_ready() -> None:
    found = by_subject("cloudnativepg")

    assert found == {
        "Cluster/postgres": (State.READY, "1 of 1 instances ready"),
        "Database/postgres-auth": (State.READY, "applied"),
        "Database/postgres-backend": (State.READY, "applied"),
        "Database/postgres-data-processor": (State.READY, "applied"),
        "Database/postgres-media-storage": (State.READY, "applied"),
    }
    assert judge(verdicts(snapshot("cloudnativepg")), NOW, LATER, "postgres Sync").done


def test_a_cloudnativepg_cluster_setting_up_waits_and_expires_naming_its_phase() -> None:
    found = verdicts(snapshot("cloudnativepg", "starting"))

    assert not judge(found, NOW, LATER, "postgres Sync").finished
    outcome = judge(found, LATER, LATER, "postgres Sync")
    assert outcome.failure == (
        "postgres Sync: deadline expired, still waiting for:\n"
        "  Cluster/postgres: Setting up primary: Creating primary instance postgres-1 "
        "(0 of 1 instances ready)\n"
        "  Database/postgres-auth: the operator has not reconciled its latest spec yet\n"
        '  Database/postgres-backend: not applied: while reconciling database: role "backend" '
        "does not exist"
    )


def test_a_healthy_cluster_whose_roles_cannot_be_reconciled_waits_naming_role_and_reason() -> None:
    found = by_subject("cloudnativepg", "roles-stuck")

    assert found["Cluster/postgres"] == (
        State.WAITING,
        "1 of 1 instances ready, managed roles not reconciled: role media_storage: failed to get "
        'password secret media-storage-postgres-role: secrets "media-storage-postgres-role" not '
        "found",
    )


def test_an_unrecoverable_cluster_fails_at_once() -> None:
    outcome = judge(verdicts(snapshot("cloudnativepg", "unrecoverable")), NOW, LATER, "postgres")

    assert outcome.failure == (
        "postgres failed:\n  Cluster/postgres: Cluster is unrecoverable and needs manual "
        "intervention: Missing primary PVC"
    )


def test_a_cluster_short_of_instances_or_a_database_behind_its_spec_waits() -> None:
    bodies = answers("cloudnativepg")
    cluster = copy.deepcopy(bodies["ClusterList"]["items"][0])
    cluster["spec"]["instances"] = 3
    cluster["status"]["instances"] = 3

    assert cnpg_cluster_verdict(cluster) == waiting(
        "Cluster/postgres", "Cluster in healthy state (1 of 3 instances ready)"
    )
    assert cnpg_cluster_verdict({"metadata": {"name": "postgres"}, "spec": {}}) == waiting(
        "Cluster/postgres", "the operator has not reconciled it yet (is it running?)"
    )
    assert by_subject("cloudnativepg", "stale")["Database/postgres-auth"] == (
        State.WAITING,
        "the operator has not reconciled its latest spec yet",
    )


def test_the_postgres_phase_waits_for_its_cluster_and_databases_and_not_another_s() -> None:
    cluster = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster"}
    database = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Database"}
    phase = Phase(
        "postgres",
        "Sync",
        (
            {**cluster, "metadata": {"name": "postgres"}},
            {**database, "metadata": {"name": "postgres-auth"}},
        ),
    )
    expected, selected = phase_selector(phase)
    starting = snapshot("cloudnativepg", "starting")
    other = copy.deepcopy(starting.clusters[0])
    other["metadata"]["name"] = "analytics"
    other["status"] = {"phase": "Invalid cluster definition"}
    starting.clusters.append(other)  # another release's: not this phase's to fail on
    clock = iter([NOW, NOW, LATER])

    with pytest.raises(WaitFailedError) as expired:
        wait_until_ready(lambda: starting, "postgres Sync", 30, expected, selected, clock.__next__)

    assert expected == ["Cluster/postgres", "Database/postgres-auth"]
    assert str(expired.value) == (
        "postgres Sync: deadline expired, still waiting for:\n"
        "  Cluster/postgres: Setting up primary: Creating primary instance postgres-1 "
        "(0 of 1 instances ready)\n"
        "  Database/postgres-auth: the operator has not reconciled its latest spec yet"
    )
    done = wait_until_ready(
        lambda: snapshot("cloudnativepg"), "postgres Sync", 30, expected, selected
    )
    assert {v.subject for v in done} == set(expected)
