"""Diagnostics over recorded API shapes: which logs to fetch, pod table, events in order."""

from __future__ import annotations

from ci.core.cluster_diagnostics import LogRequest, events_text, log_requests, pod_table

from cluster.recorded import snapshot


def test_a_crash_looping_container_gets_its_previous_run_fetched() -> None:
    pods = snapshot("crashloop").pods

    assert log_requests(pods) == [LogRequest("backend-5f7c9d8b6-qp2vx", "backend", previous=True)]
    assert log_requests(pods)[0].path == "logs/backend-5f7c9d8b6-qp2vx.backend.previous.log"


def test_running_and_finished_containers_get_their_logs_and_unstarted_ones_none() -> None:
    assert log_requests(snapshot("healthy").pods) == [
        LogRequest("auth-6d9c7b8f5d-x2k8p", "auth", previous=False),
        LogRequest("auth-migrate-7w9qz", "migrate", previous=False),
    ]
    assert log_requests(snapshot("image-never-pull").pods) == []


def test_pod_table_shows_state_restarts_and_unschedulable_reason() -> None:
    crash = pod_table(snapshot("crashloop").pods).splitlines()
    stuck = pod_table(snapshot("rollout-stuck").pods).splitlines()

    assert crash == [
        "POD\tPHASE\tCONTAINER\tREADY\tRESTARTS\tSTATE",
        "backend-5f7c9d8b6-qp2vx\tRunning\tbackend\tFalse\t4\twaiting (CrashLoopBackOff)",
    ]
    assert stuck[1].startswith("media-storage-7d-k2j4h\tPending\t-\t-\t-\tUnschedulable: 0/1 nodes")


def test_events_are_listed_oldest_first_with_repeat_counts() -> None:
    text = events_text(snapshot("pvc-pending").events)

    assert text == (
        "2026-11-27T10:03:02+00:00\tNormal\tPersistentVolumeClaim/postgres-backup\t"
        "WaitForFirstConsumer\twaiting for first consumer to be created before binding (x9)\n"
    )
    assert events_text([]) == ""
