"""`make run OBSERVE=1`: a real Prometheus (Debian's package) beside the local app, scraping every
service's /metrics directly (not through the edge, where /metrics answers 404) and evaluating
the cluster's own alert rules (charts/observability/rules), so an alert can be watched firing
on a laptop before it pages anyone."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ci.localapp.process import ManagedProcess, StackError, wait_until_ready
from ci.localapp.servers import free_port
from ci.localapp.stack import HOST

SCRAPE_INTERVAL = "5s"
# The `namespace` label the rules group by (the cluster's are chat-staging, chat-production).
NAMESPACE = "local"


def rule_files(repo_root: Path) -> list[Path]:
    files = sorted((repo_root / "charts" / "observability" / "rules").glob("*.rules.yaml"))
    if not files:
        raise StackError(f"{repo_root}/charts/observability/rules: no *.rules.yaml")
    return files


def prometheus_config(services: Mapping[str, str], rules: list[Path]) -> dict[str, Any]:
    """The configuration: one scrape job per service (job = the service's name, as the cluster's
    ServiceMonitors name it), labelled with the local namespace."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(path) for path in rules],
        "scrape_configs": [
            {
                "job_name": name,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [url.split("://", 1)[1]], "labels": {"namespace": NAMESPACE}}
                ],
            }
            for name, url in sorted(services.items())
        ],
    }


def start_prometheus(
    repo_root: Path, services: Mapping[str, str], workdir: Path, logs: Path, timeout: float
) -> tuple[ManagedProcess, str]:
    """Prometheus started and ready (its /-/ready answers 200); returns it and its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise StackError("OBSERVE: no prometheus binary (apt-get install prometheus)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(services, rule_files(repo_root))))
    port = free_port()
    process = ManagedProcess(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={HOST}:{port}",
        ],
        env={"PATH": "/usr/bin:/bin"},
        cwd=workdir,
        log_path=logs / "prometheus.log",
    )
    process.start()
    url = f"http://{HOST}:{port}"
    try:
        wait_until_ready({"prometheus": (process, f"{url}/-/ready")}, timeout)
    except StackError:
        process.stop()
        raise
    return process, url
