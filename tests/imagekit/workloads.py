"""Every command the charts run from a service's image, read from the rendered charts.

For each rendered environment, every container (init containers too) whose image is the chart's
own: its command, its environment (literal values, ConfigMaps, Secrets by reference), its mounts
and its probes. Nothing here is a second list of commands: a worker or hook added to a chart is
run by the closure tier as soon as the chart renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml
from chartkit import CHARTS, ENVIRONMENTS, Manifest, load_values, pod_specs, render_environment

Kind = Literal["job", "server", "worker"]


@dataclass(frozen=True)
class SecretRef:
    secret: str
    key: str
    optional: bool


@dataclass(frozen=True)
class Mount:
    path: str
    secret: str | None  # the Secret whose keys become files; None: an empty writable dir


@dataclass(frozen=True)
class Run:
    """One container of a rendered workload that runs the service's image."""

    kind: Kind
    workload: str  # Job/auth-migrate
    container: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str | SecretRef], ...]
    mounts: tuple[Mount, ...]
    http_probe: str | None  # liveness httpGet path
    exec_probes: tuple[tuple[str, ...], ...]

    @property
    def name(self) -> str:
        return f"{self.workload}/{self.container}"


def image_runs(chart: str) -> list[Run]:
    """Distinct runs of the chart's image over every environment (first seen wins), jobs first."""
    seen: dict[tuple[str, tuple[str, ...]], Run] = {}
    for environment in ENVIRONMENTS:
        repository = _repository(chart, environment)
        rendered = render_environment(chart, environment)
        configmaps = {
            obj["metadata"]["name"]: obj.get("data", {}) for obj in rendered.of_kind("ConfigMap")
        }
        for obj in rendered.objects:
            for run in _runs_of(obj, repository, configmaps):
                seen.setdefault((run.name, run.argv), run)
    order: dict[Kind, int] = {"job": 0, "server": 1, "worker": 2}
    return sorted(seen.values(), key=lambda run: order[run.kind])


def _repository(chart: str, environment: str) -> str:
    """image.repository of values-<env>.yaml, else of values.yaml (as helm -f layers them)."""
    defaults = yaml.safe_load((CHARTS / chart / "values.yaml").read_text()) or {}
    for values in (load_values(chart, environment), defaults):
        repository = values.get("image", {}).get("repository")
        if repository:
            return str(repository)
    raise ValueError(f"{CHARTS / chart}/values.yaml: no image.repository")


def _runs_of(obj: Manifest, repository: str, configmaps: dict[str, Any]) -> list[Run]:
    runs: list[Run] = []
    workload = f"{obj['kind']}/{obj['metadata']['name']}"
    for spec in pod_specs(obj):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        containers = [*spec.get("initContainers", []), *spec["containers"]]
        for container in containers:
            if container["image"].split("@")[0].rsplit(":", 1)[0] != repository:
                continue
            runs.append(_run(obj["kind"], workload, container, volumes, configmaps))
    return runs


def _run(
    kind: str,
    workload: str,
    container: Manifest,
    volumes: dict[str, Manifest],
    configmaps: dict[str, Any],
) -> Run:
    where = f"{workload} container {container['name']}"
    if "command" not in container:
        raise ValueError(f"{where}: no command (the image's CMD would run; charts name it)")
    liveness = container.get("livenessProbe", {})
    http_probe = liveness.get("httpGet", {}).get("path")
    probes = tuple(
        tuple(container[probe]["exec"]["command"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        if "exec" in container.get(probe, {})
    )
    run_kind: Kind = "job" if kind == "Job" else ("server" if http_probe else "worker")
    return Run(
        kind=run_kind,
        workload=workload,
        container=container["name"],
        argv=tuple(container["command"]) + tuple(container.get("args", [])),
        env=_environment(where, container, configmaps),
        mounts=tuple(_mount(where, m, volumes) for m in container.get("volumeMounts", [])),
        http_probe=http_probe,
        exec_probes=probes,
    )


def _environment(
    where: str, container: Manifest, configmaps: dict[str, Any]
) -> tuple[tuple[str, str | SecretRef], ...]:
    """envFrom first, then env (Kubernetes: a name in env wins over the same name in envFrom)."""
    env: dict[str, str | SecretRef] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" not in source:
            raise ValueError(f"{where}: envFrom {source} (only ConfigMaps are resolved)")
        env.update(configmaps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = SecretRef(ref["name"], ref["key"], bool(ref.get("optional")))
        elif "configMapKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["configMapKeyRef"]
            env[entry["name"]] = configmaps[ref["name"]][ref["key"]]
        else:
            raise ValueError(f"{where}: env {entry['name']}: source not resolved here")
    return tuple(env.items())


def _mount(where: str, mount: Manifest, volumes: dict[str, Manifest]) -> Mount:
    volume = volumes[mount["name"]]
    if "secret" in volume:
        return Mount(mount["mountPath"], volume["secret"]["secretName"])
    if "emptyDir" in volume or "persistentVolumeClaim" in volume:
        return Mount(mount["mountPath"], None)
    raise ValueError(f"{where}: volume {mount['name']} of an unknown kind: {volume}")
