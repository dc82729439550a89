"""Readiness verdicts over the kubernetes client's own models: is the install done, failed, or
still on its way, and why.

A verdict names the object (`Kind/name`) and a reason a person can act on. Failures that never
heal by waiting (a Job out of retries, an image that is not on the node, a container crashing
again and again, a rollout past its progress deadline) fail at once; everything else waits until
the deadline, and the expiry names every object still waiting with its last known reason.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import (
    CoreV1Event,
    V1Deployment,
    V1Job,
    V1Node,
    V1PersistentVolumeClaim,
    V1Pod,
    V1PodStatus,
    V1StatefulSet,
)

# Waiting reasons of a container that no amount of waiting fixes.
HOPELESS_WAITING = {
    "ErrImageNeverPull": "the image is not on the node and pullPolicy is Never (not loaded?)",
    "InvalidImageName": "the image reference is invalid",
    "CreateContainerConfigError": "the container's configuration is broken (missing Secret key?)",
}
# Waiting reasons that may heal (a registry hiccup, a dependency not up yet) but are worth naming.
PULL_WAITING = {"ErrImagePull", "ImagePullBackOff"}
CRASH_LOOP = "CrashLoopBackOff"
# CrashLoopBackOff this many restarts in is a failure, not a dependency that is still starting.
CRASH_RESTARTS = 3
# CloudNativePG's Cluster phases (cloudnative-pg v1.30.0 api/v1/cluster_types.go): the one of a
# cluster at rest, and those the operator never leaves without a person.
CNPG_HEALTHY = "Cluster in healthy state"
CNPG_HOPELESS = {
    "Cluster is unrecoverable and needs manual intervention",
    "Invalid cluster definition",
    "Cluster has incomplete or invalid image catalog",
}


class State(enum.Enum):
    READY = "ready"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    subject: str  # Kind/name
    state: State
    reason: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}"


def ready(subject: str, reason: str = "ready") -> Verdict:
    return Verdict(subject, State.READY, reason)


def waiting(subject: str, reason: str) -> Verdict:
    return Verdict(subject, State.WAITING, reason)


def failed(subject: str, reason: str) -> Verdict:
    return Verdict(subject, State.FAILED, reason)


def name_of(obj: Any) -> str:
    """metadata.name of a model (the models type every field as optional)."""
    meta = getattr(obj, "metadata", None)
    return str(meta.name) if meta is not None else "?"


def pod_status(pod: V1Pod) -> V1PodStatus:
    return pod.status if pod.status is not None else V1PodStatus()


def container_statuses(pod: V1Pod) -> list[Any]:
    """Init containers first, then the app containers."""
    status = pod_status(pod)
    return [*(status.init_container_statuses or []), *(status.container_statuses or [])]


def _condition(conditions: Sequence[Any] | None, kind: str) -> Any | None:
    return next((c for c in conditions or [] if c.type == kind), None)


def _observed(meta: Any, status: Any) -> bool:
    generation = meta.generation or 0
    return status is not None and (status.observed_generation or 0) >= generation


def deployment_verdict(deployment: V1Deployment) -> Verdict:
    subject = f"Deployment/{name_of(deployment)}"
    status = deployment.status
    if status is None or not _observed(deployment.metadata, status):
        return waiting(subject, "the controller has not observed the latest spec yet")
    progressing = _condition(status.conditions, "Progressing")
    if progressing and progressing.reason == "ProgressDeadlineExceeded":
        return failed(subject, f"ProgressDeadlineExceeded: {progressing.message}")
    wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    available = status.available_replicas or 0
    if updated < wanted:
        return waiting(subject, f"{updated} of {wanted} replicas updated")
    if available < wanted or (status.replicas or 0) > wanted:
        return waiting(subject, f"{available} of {wanted} replicas available")
    return ready(subject, f"{available} of {wanted} replicas available")


def statefulset_verdict(statefulset: V1StatefulSet) -> Verdict:
    subject = f"StatefulSet/{name_of(statefulset)}"
    status = statefulset.status
    if status is None or not _observed(statefulset.metadata, status):
        return waiting(subject, "the controller has not observed the latest spec yet")
    wanted = statefulset.spec.replicas if statefulset.spec.replicas is not None else 1
    ready_count = status.ready_replicas or 0
    if ready_count < wanted:
        return waiting(subject, f"{ready_count} of {wanted} replicas ready")
    if status.update_revision and status.current_revision != status.update_revision:
        return waiting(subject, f"rolling to revision {status.update_revision}")
    return ready(subject, f"{ready_count} of {wanted} replicas ready")


def job_verdict(job: V1Job) -> Verdict:
    subject = f"Job/{name_of(job)}"
    status = job.status
    limit = job.spec.backoff_limit if job.spec is not None else None
    if status is None:
        return waiting(subject, "not started yet")
    conditions = status.conditions
    complete = _condition(conditions, "Complete")
    if complete and complete.status == "True":
        return ready(subject, "complete")
    failure = _condition(conditions, "Failed")
    if failure and failure.status == "True":
        pods = status.failed or 0
        detail = f"{failure.reason}: {failure.message}" if failure.message else failure.reason
        return failed(subject, f"{detail} ({pods} failed pods, backoffLimit {limit})")
    active, failures = status.active or 0, status.failed or 0
    return waiting(subject, f"running: {active} active, {failures} failed of backoffLimit {limit}")


def _owned_by_job(pod: V1Pod) -> bool:
    owners = pod.metadata.owner_references if pod.metadata is not None else None
    return any(ref.kind == "Job" for ref in owners or [])


def _container_problem(pod: V1Pod) -> Verdict | None:
    """A failure or a named wait from the containers' own states."""
    subject = f"Pod/{name_of(pod)}"
    for status in container_statuses(pod):
        state_waiting = status.state.waiting if status.state else None
        if state_waiting is None or not state_waiting.reason:
            continue
        reason = state_waiting.reason
        where = f"container {status.name} ({status.image})"
        message = f": {state_waiting.message}" if state_waiting.message else ""
        if reason in HOPELESS_WAITING:
            return failed(subject, f"{reason}: {where}: {HOPELESS_WAITING[reason]}{message}")
        if reason == CRASH_LOOP:
            verdict = failed if status.restart_count >= CRASH_RESTARTS else waiting
            return verdict(
                subject,
                f"{CRASH_LOOP}: {where}, {status.restart_count} restarts{_last_exit(status)}",
            )
        if reason in PULL_WAITING:
            return waiting(subject, f"{reason}: {where}{message}")
    return None


def _last_exit(status: Any) -> str:
    terminated = status.last_state.terminated if status.last_state else None
    if terminated is None:
        return ""
    return f", last exit code {terminated.exit_code} ({terminated.reason})"


def pod_verdict(pod: V1Pod) -> Verdict:
    """Running pods must be Ready; a Job's pods only matter when they cannot start at all (the
    Job's own verdict judges their exit codes)."""
    subject = f"Pod/{name_of(pod)}"
    status = pod_status(pod)
    if status.phase == "Succeeded":
        return ready(subject, "completed")
    problem = _container_problem(pod)
    if problem is not None:
        return problem
    if status.phase == "Failed":
        if _owned_by_job(pod):
            return ready(subject, "failed; its Job decides whether to retry")
        return failed(subject, f"Failed: {status.reason}: {status.message}")
    scheduled = _condition(status.conditions, "PodScheduled")
    if scheduled and scheduled.status == "False":
        return waiting(subject, f"not scheduled: {scheduled.reason}: {scheduled.message}")
    if _owned_by_job(pod):
        return ready(subject, f"{status.phase}; its Job is judged on completion")
    pod_ready = _condition(status.conditions, "Ready")
    if pod_ready and pod_ready.status == "True":
        return ready(subject)
    unready = [
        f"{c.name} ({c.restart_count} restarts)"
        for c in status.container_statuses or []
        if not c.ready
    ]
    return waiting(
        subject, f"{status.phase}: containers not ready: {', '.join(unready) or 'none yet'}"
    )


def pvc_verdict(pvc: V1PersistentVolumeClaim, event: str | None = None) -> Verdict:
    """A Pending claim waits (with its latest event, e.g. WaitForFirstConsumer); Lost fails."""
    subject = f"PersistentVolumeClaim/{name_of(pvc)}"
    phase = pvc.status.phase if pvc.status else "Pending"
    if phase == "Bound":
        return ready(subject, "Bound")
    if phase == "Lost":
        return failed(subject, "Lost: its PersistentVolume is gone")
    return waiting(subject, f"Pending: {event}" if event else "Pending")


def _custom_name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _roles_unreconciled(status: Mapping[str, Any]) -> str:
    """The managed roles the operator cannot reconcile, with its reasons (e.g. a missing Secret)."""
    stuck = (status.get("managedRolesStatus") or {}).get("cannotReconcile") or {}
    return "; ".join(f"role {role}: {', '.join(errors)}" for role, errors in sorted(stuck.items()))


def cnpg_cluster_verdict(cluster: Mapping[str, Any]) -> Verdict:
    """Ready at rest ("Cluster in healthy state") with every instance ready and every managed
    role reconciled; a phase that needs a person fails at once."""
    subject = f"Cluster/{_custom_name(cluster)}"
    status: Mapping[str, Any] = cluster.get("status") or {}
    phase = status.get("phase")
    if not phase:
        return waiting(subject, "the operator has not reconciled it yet (is it running?)")
    detail = f"{phase}: {status['phaseReason']}" if status.get("phaseReason") else str(phase)
    if phase in CNPG_HOPELESS:
        return failed(subject, detail)
    wanted = (cluster.get("spec") or {}).get("instances", 1)
    count = f"{status.get('readyInstances', 0)} of {wanted} instances ready"
    if phase != CNPG_HEALTHY or status.get("readyInstances", 0) < wanted:
        return waiting(subject, f"{detail} ({count})")
    roles = _roles_unreconciled(status)
    if roles:
        return waiting(subject, f"{count}, managed roles not reconciled: {roles}")
    return ready(subject, count)


def cnpg_database_verdict(database: Mapping[str, Any]) -> Verdict:
    """Ready once the operator applied the latest spec (status.applied)."""
    subject = f"Database/{_custom_name(database)}"
    status: Mapping[str, Any] = database.get("status") or {}
    generation = (database.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation or "applied" not in status:
        return waiting(subject, "the operator has not reconciled its latest spec yet")
    if status["applied"] is not True:
        return waiting(subject, f"not applied: {status.get('message') or 'no message'}")
    return ready(subject, "applied")


def latest_events(events: Iterable[CoreV1Event]) -> dict[str, str]:
    """`Kind/name` -> `reason: message` of its newest event."""
    newest: dict[str, tuple[str, str]] = {}
    for event in events:
        obj = event.involved_object
        subject = f"{obj.kind}/{obj.name}"
        when = str(event.last_timestamp or event.event_time or event.first_timestamp or "")
        if subject not in newest or when >= newest[subject][0]:
            newest[subject] = (when, f"{event.reason}: {event.message}")
    return {subject: text for subject, (_, text) in newest.items()}


@dataclass
class Snapshot:
    """What the cluster reported for the objects under watch, in one read."""

    deployments: list[V1Deployment] = field(default_factory=list)
    statefulsets: list[V1StatefulSet] = field(default_factory=list)
    jobs: list[V1Job] = field(default_factory=list)
    pods: list[V1Pod] = field(default_factory=list)
    pvcs: list[V1PersistentVolumeClaim] = field(default_factory=list)
    events: list[CoreV1Event] = field(default_factory=list)
    # CloudNativePG's custom resources, as the API returns them (no client models exist).
    clusters: list[dict[str, Any]] = field(default_factory=list)
    databases: list[dict[str, Any]] = field(default_factory=list)


def verdicts(snapshot: Snapshot, expected: Iterable[str] = ()) -> list[Verdict]:
    """One verdict per object; an `expected` `Kind/name` the cluster does not have waits."""
    notes = latest_events(snapshot.events)
    found = [
        *(deployment_verdict(d) for d in snapshot.deployments),
        *(statefulset_verdict(s) for s in snapshot.statefulsets),
        *(job_verdict(j) for j in snapshot.jobs),
        *(pod_verdict(p) for p in snapshot.pods),
        *(pvc_verdict(c, notes.get(f"PersistentVolumeClaim/{name_of(c)}")) for c in snapshot.pvcs),
        *(cnpg_cluster_verdict(c) for c in snapshot.clusters),
        *(cnpg_database_verdict(d) for d in snapshot.databases),
    ]
    present = {v.subject for v in found}
    found += [waiting(subject, "not created yet") for subject in expected if subject not in present]
    return found


@dataclass(frozen=True)
class Outcome:
    """The wait's decision after one snapshot."""

    done: bool
    failure: str | None  # the reason the wait fails, naming every object concerned

    @property
    def finished(self) -> bool:
        return self.done or self.failure is not None


def judge(found: Sequence[Verdict], now: float, deadline: float, what: str) -> Outcome:
    """Done when everything is ready; failed at the first hopeless verdict or at the deadline."""
    broken = [v for v in found if v.state is State.FAILED]
    if broken:
        return Outcome(False, f"{what} failed:\n" + "\n".join(f"  {v}" for v in broken))
    pending = [v for v in found if v.state is State.WAITING]
    if not pending:
        return Outcome(True, None)
    if now >= deadline:
        lines = "\n".join(f"  {v}" for v in pending)
        return Outcome(False, f"{what}: deadline expired, still waiting for:\n{lines}")
    return Outcome(False, None)


def summary(found: Sequence[Verdict]) -> Mapping[str, int]:
    counts = {state.value: 0 for state in State}
    for verdict in found:
        counts[verdict.state.value] += 1
    return counts


def node_verdict(node: V1Node) -> Verdict:
    """A node is ready when its kubelet reports Ready (the API answering is not enough)."""
    subject = f"Node/{name_of(node)}"
    condition = _condition(node.status.conditions if node.status else None, "Ready")
    if condition is not None and condition.status == "True":
        return ready(subject, "Ready")
    reason = f"{condition.reason}: {condition.message}" if condition else "no Ready condition yet"
    return waiting(subject, f"not Ready: {reason}")


def nodes_unready(found: Sequence[Verdict], expected: int) -> str | None:
    """Why the cluster's nodes are not ready yet (None when they are): fewer than `expected`
    registered (an agent still joining), or one not Ready."""
    if len(found) < expected:
        registered = "; ".join(str(v) for v in found) or "none"
        return f"{len(found)} of {expected} nodes registered ({registered})"
    unready = [str(v) for v in found if v.state is not State.READY]
    return "; ".join(unready) or None


def missing_images(nodes: Sequence[V1Node], refs: Iterable[str]) -> list[str]:
    """The image references no node has yet (K3s imports its archives in the background)."""
    present = {
        name
        for node in nodes
        for image in (node.status.images if node.status else None) or []
        for name in image.names or []
    }
    return sorted(ref for ref in refs if ref not in present)
