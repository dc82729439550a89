"""`make run OBSERVE=1` (`python -m ci.localapp --observe`): a real Prometheus (Debian's package)
with the cluster's alert rules, scraping the real services of the local app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ci.localapp.prometheus import prometheus_config, rule_files
from ci.localapp.stack import SOURCE_ROOT
from harness.lifetime import bound_to_parent

REPO_ROOT = SOURCE_ROOT.parents[1]
DEADLINE = 180.0  # seconds; a loaded machine scrapes late, never wait a fixed time


def rules_in_files() -> list[tuple[str, str]]:
    """(group, alert or record) of every rule in the rule files Prometheus is given."""
    return [
        (group["name"], rule.get("alert") or rule["record"])
        for path in rule_files(REPO_ROOT)
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_the_configuration_passes_promtool_with_the_rule_files(tmp_path: Path) -> None:
    config = prometheus_config(
        {"ai": "http://127.0.0.1:8001", "auth": "http://127.0.0.1:8002"}, rule_files(REPO_ROOT)
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make setup (Debian package prometheus)"
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules_in_files())} rules found" in result.stdout
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ai"]["static_configs"] == [
        {"targets": ["127.0.0.1:8001"], "labels": {"namespace": "local"}}
    ]


def until(condition: Any, what: str) -> Any:
    """Poll `condition()` until it returns something truthy, within DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE:.0f}s: {what}")
        time.sleep(0.5)


@pytest.fixture
def observed_app(postgres_admin_url: str, redis_url: str) -> Iterator[dict[str, Any]]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(SOURCE_ROOT),
        "TEST_DATABASE_URL": postgres_admin_url,
        "TEST_REDIS_URL": redis_url,
    }
    process = subprocess.Popen(
        # ai needs auth's JWKS to start.
        bound_to_parent([sys.executable, "-m", "ci.localapp", "--only", "ai,auth", "--observe"]),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line, f"no URLs printed; stderr:\n{process.stderr.read() if process.stderr else ''}"
        yield json.loads(line)
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_prometheus_scrapes_every_service_and_evaluates_the_rules(
    observed_app: dict[str, Any],
) -> None:
    prometheus = observed_app["prometheus"]
    with httpx.Client(base_url=prometheus, timeout=10) as client:

        def query(expr: str) -> list[dict[str, Any]]:
            answer = client.get("/api/v1/query", params={"query": expr}).json()
            assert answer["status"] == "success", answer
            result: list[dict[str, Any]] = answer["data"]["result"]
            return result

        def targets_up() -> bool:
            up = {r["metric"]["job"]: r["value"][1] for r in query('up{namespace="local"}')}
            return up == {"ai": "1", "auth": "1"}

        until(targets_up, "ai and auth scraped")
        for url in observed_app["services"].values():
            httpx.get(f"{url}/health", timeout=10)
        groups = client.get("/api/v1/rules").json()["data"]["groups"]
        assert {g["name"] for g in groups} == {group for group, _ in rules_in_files()}
        assert len(rules_in_files()) >= 22, "the rule files hold the platform's rules"
        assert all(rule["health"] != "err" for g in groups for rule in g["rules"])
        # The services' own metrics arrive, with the labels the rules group by.
        series = until(
            lambda: query('http_requests_total{namespace="local", job="auth", route="/health"}'),
            "auth's request counter",
        )
        assert series[0]["metric"]["namespace"] == "local"
