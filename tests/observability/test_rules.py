"""The alerting rules as Prometheus runs them: `promtool check rules` and `promtool test rules`
(Debian's prometheus package), plus mutations that prove the tests can fail: every alert made to
never fire, or loosened so that its must-not-fire case fires, must break `promtool test rules`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "observability" / "rules"
RULE_FILE = RULES / "chat-platform.rules.yaml"
TESTS = Path(__file__).resolve().parent / "rules"
SEVERITIES = {"critical", "warning"}

# Per alert, edits of its expression that loosen it just enough for a case its tests expect NOT
# to fire to fire: each must make `promtool test rules` fail.
LOOSENED: dict[str, list[tuple[str, str]]] = {
    "ErrorBudgetBurnFast": [("(14.4 * 0.005)", "(0.1 * 0.005)")],
    "ErrorBudgetBurnSlow": [("(6 * 0.005)", "(0.1 * 0.005)")],
    "LatencyBudgetBurnFast": [("(14.4 * 0.01)", "(14.4 * 0.0001)")],
    "LatencyBudgetBurnSlow": [("(6 * 0.01)", "(6 * 0.0001)")],
    "ServiceDown": [("== 0", "== 1")],
    "PodCrashLooping": [("== 1", ">= 0")],
    "PersistentVolumeFillingUp": [("> 0.8", "> 0.7")],
    "BackupTooOld": [("26 * 3600", "1 * 3600")],
    "CertificateExpiringSoon": [("14 * 86400", "31 * 86400")],
    "ArgoCDApplicationDegraded": [
        ('health_status="Degraded"', 'health_status=~"Degraded|Healthy"')
    ],
    "ArgoCDApplicationOutOfSync": [('sync_status="OutOfSync"', 'sync_status=~"OutOfSync|Synced"')],
    "OutboxBacklogGrowing": [("[15m]) > 0", "[15m]) >= 0")],
    "EventConsumerLagGrowing": [
        ("data_processor_consumer_lag > 0", "data_processor_consumer_lag >= 0"),
        ("[15m]) > 0", "[15m]) < 1"),
    ],
    "PostgresMetricsDown": [("== 0", "<= 1")],
    "CloudNativePGInstanceDown": [("== 0", "<= 1")],
    "CloudNativePGNoPrimary": [("== 0)", "< 0)")],
    "CloudNativePGReplicaNotStreaming": [
        ('is_wal_receiver_up{job="postgres"} == 0', 'is_wal_receiver_up{job="postgres"} <= 1')
    ],
    "CloudNativePGReplicationLagHigh": [("> 60", "> 30")],
    "CloudNativePGWALArchivingFailing": [
        (
            "> cnpg_pg_stat_archiver_last_archived_time",
            "> 0 * cnpg_pg_stat_archiver_last_archived_time",
        )
    ],
    "CloudNativePGWALArchivingStalled": [('value="ready"} > 0', 'value="ready"} >= 0')],
    "CloudNativePGBaseBackupFailed": [("> max by", ">= max by")],
    "CloudNativePGBaseBackupTooOld": [("26 * 3600", "2 * 3600")],
}


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        raise RuntimeError("promtool is missing: make setup (Debian package prometheus)")
    return subprocess.run(
        [binary, *map(str, args)], capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )


def rule_groups(path: Path = RULE_FILE) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(path.read_text())["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def unit_test_files() -> list[Path]:
    return sorted(TESTS.glob("*.test.yaml"))


def copy_with_rules(tmp_path: Path, groups: list[dict[str, Any]]) -> Path:
    """The unit tests and the given rules in `tmp_path`, laid out as in the repository."""
    rules = tmp_path / RULE_FILE.relative_to(REPO)
    rules.parent.mkdir(parents=True)
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    tests = tmp_path / TESTS.relative_to(REPO)
    shutil.copytree(TESTS, tests)
    return tests


def alerts_tested_in(path: Path) -> set[str]:
    return {
        case["alertname"]
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }


def run_unit_tests(tests: Path, alert: str | None = None) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` over the unit tests in `tests` (only those of `alert` if given)."""
    files = [
        p.name
        for p in sorted(tests.glob("*.test.yaml"))
        if not alert or alert in alerts_tested_in(p)
    ]
    return promtool("test", "rules", *files, cwd=tests)


def with_alert_expr(name: str, edit: Any) -> list[dict[str, Any]]:
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                rule["expr"] = edit(rule["expr"])
    return groups


def test_rule_files_are_valid() -> None:
    result = promtool("check", "rules", *sorted(RULES.glob("*.rules.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_pass() -> None:
    assert unit_test_files(), f"no *.test.yaml under {TESTS}"
    result = run_unit_tests(TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_severity_summary_and_runbook() -> None:
    for alert in alerts():
        assert alert.get("labels", {}).get("severity") in SEVERITIES, alert["alert"]
        annotations = alert.get("annotations", {})
        for key in ("summary", "runbook"):
            text = annotations.get(key, "")
            assert text, f"{alert['alert']}: no {key}"
            assert "\n" not in text, f"{alert['alert']}: {key} must be one line"


def test_every_alert_is_unit_tested_and_has_a_loosening_mutation() -> None:
    tested = set().union(*map(alerts_tested_in, unit_test_files()))
    names = {alert["alert"] for alert in alerts()}
    assert names - tested == set(), "alerts without promtool tests"
    assert set(LOOSENED) == names


@pytest.mark.parametrize("name", sorted(LOOSENED))
def test_an_alert_that_never_fires_fails_the_unit_tests(name: str, tmp_path: Path) -> None:
    tests = copy_with_rules(tmp_path, with_alert_expr(name, lambda _: "vector(1) == 0"))
    result = run_unit_tests(tests, name)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"alertname: {name}," in output, output


@pytest.mark.parametrize("name", sorted(LOOSENED))
def test_a_loosened_alert_fires_where_it_must_not(name: str, tmp_path: Path) -> None:
    def loosen(expr: str) -> str:
        for old, new in LOOSENED[name]:
            assert old in expr, f"{name}: {old!r} not in its expression"
            expr = expr.replace(old, new)
        return expr

    tests = copy_with_rules(tmp_path, with_alert_expr(name, loosen))
    assert promtool("check", "rules", tmp_path / RULE_FILE.relative_to(REPO)).returncode == 0
    result = run_unit_tests(tests, name)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"alertname: {name}," in output, output


def test_a_syntax_error_in_a_rule_fails_the_check(tmp_path: Path) -> None:
    groups = with_alert_expr("BackupTooOld", lambda expr: expr.replace(")", "", 1))
    copy_with_rules(tmp_path, groups)
    result = promtool("check", "rules", tmp_path / RULE_FILE.relative_to(REPO))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
