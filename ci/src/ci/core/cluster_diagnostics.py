"""What a failed install leaves behind for a person: events, pod statuses, which container logs
to fetch (including the run before the last restart) and where each goes in `diagnostics/`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubernetes.client import CoreV1Event, V1Pod

from ci.core.cluster_readiness import container_statuses, name_of, pod_status

EVENTS_FILE = "events.txt"
PODS_FILE = "pods.txt"
MANIFESTS_DIR = "manifests"
LOGS_DIR = "logs"
CNPG_DIAGNOSTICS = "cloudnativepg.yaml"  # Clusters and Databases as the API returned them


@dataclass(frozen=True)
class LogRequest:
    """One container log to read: the current run, or the previous one (`--previous`)."""

    pod: str
    container: str
    previous: bool

    @property
    def path(self) -> str:
        suffix = ".previous" if self.previous else ""
        return f"{LOGS_DIR}/{self.pod}.{self.container}{suffix}.log"


def log_requests(pods: Iterable[V1Pod]) -> list[LogRequest]:
    """Every container that ever started, and the previous run of every one that restarted."""
    requests: list[LogRequest] = []
    for pod in pods:
        for container in container_statuses(pod):
            state = container.state
            started = state is not None and (state.running or state.terminated) is not None
            if started:
                requests.append(LogRequest(name_of(pod), container.name, previous=False))
            if container.restart_count or (
                container.last_state is not None and container.last_state.terminated is not None
            ):
                requests.append(LogRequest(name_of(pod), container.name, previous=True))
    return requests


def _container_state(status: object) -> str:
    state = getattr(status, "state", None)
    if state is None:
        return "unknown"
    if state.waiting is not None:
        return f"waiting ({state.waiting.reason})"
    if state.terminated is not None:
        return f"terminated ({state.terminated.reason}, exit {state.terminated.exit_code})"
    return "running"


def pod_table(pods: Iterable[V1Pod]) -> str:
    """One line per container: pod, phase, container, ready, restarts, state."""
    lines = ["POD\tPHASE\tCONTAINER\tREADY\tRESTARTS\tSTATE"]
    for pod in sorted(pods, key=name_of):
        status, name = pod_status(pod), name_of(pod)
        statuses = container_statuses(pod)
        if not statuses:
            unmet = [
                f"{c.reason}: {c.message}" for c in status.conditions or [] if c.status == "False"
            ]
            why = unmet[0] if unmet else status.reason
            lines.append(f"{name}\t{status.phase}\t-\t-\t-\t{why}")
        for container in statuses:
            lines.append(
                f"{name}\t{status.phase}\t{container.name}\t{container.ready}\t"
                f"{container.restart_count}\t{_container_state(container)}"
            )
    return "\n".join(lines) + "\n"


def events_text(events: Iterable[CoreV1Event]) -> str:
    """Events oldest first: time, type, object, reason, message (count when repeated)."""

    def when(event: CoreV1Event) -> str:
        stamp = event.last_timestamp or event.event_time or event.first_timestamp
        return stamp.isoformat() if stamp is not None else ""

    lines = []
    for event in sorted(events, key=when):
        obj = event.involved_object
        repeated = f" (x{event.count})" if (event.count or 1) > 1 else ""
        lines.append(
            f"{when(event)}\t{event.type}\t{obj.kind}/{obj.name}\t{event.reason}\t"
            f"{event.message}{repeated}"
        )
    return "\n".join(lines) + ("\n" if lines else "")
