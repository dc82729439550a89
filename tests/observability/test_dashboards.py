"""The observability chart as Argo CD renders it: one PrometheusRule per rule file (the same
groups `promtool test rules` tests), a dashboard ConfigMap per service from one template plus the
overview, each with the Grafana sidecar's label; every PromQL expression of rules and dashboards
parsed by a real PromQL parser (promql-parser, the Rust implementation)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from chartkit import CHARTS, Manifest, kubernetes_version, problems_of, render
from observability.test_rules import promtool

CHART = CHARTS / "observability"
SIDECAR_LABEL = ("grafana_dashboard", "1")

# PostgreSQL's series per engine of charts/postgres (`engine`), by name, as the exporters' own
# sources at the pinned versions define them. A dashboard or a rule may only read database
# series (DATABASE_PREFIXES) listed here: a typo or the other engine's name would plot nothing.
POSTGRES_SERIES: dict[str, frozenset[str]] = {
    # postgres_exporter v0.17.1, the sidecar (charts/postgres metrics.exporter.image):
    # cmd/postgres_exporter/postgres_exporter.go, namespace "pg" + "up".
    "statefulset": frozenset({"pg_up"}),
    # CloudNativePG 1.30.0, each instance's manager: its collector, cnpg_collector_*
    # (pkg/management/postgres/webserver/metricserver/pg_collector.go, docs/src/monitoring.md),
    # and its default queries, cnpg_<query>_<column> (config/manager/default-monitoring.yaml);
    # plus the Barman Cloud plugin v0.14.0's series on the same endpoint
    # (internal/cnpgi/instance/metrics.go: the plugin name with "." and "-" as "_").
    "cloudnativepg": frozenset(
        {
            "cnpg_collector_up",
            "cnpg_collector_pg_wal",
            "cnpg_collector_pg_wal_archive_status",
            "cnpg_collector_nodes_used",
            "cnpg_backends_total",
            "cnpg_backends_max_tx_duration_seconds",
            "cnpg_pg_replication_lag",
            "cnpg_pg_replication_in_recovery",
            "cnpg_pg_replication_is_wal_receiver_up",
            "cnpg_pg_replication_streaming_replicas",
            "cnpg_pg_stat_archiver_archived_count",
            "cnpg_pg_stat_archiver_failed_count",
            "cnpg_pg_stat_archiver_seconds_since_last_archival",
            "cnpg_pg_stat_archiver_last_archived_time",
            "cnpg_pg_stat_archiver_last_failed_time",
            "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",
            "barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp",
            "barman_cloud_cloudnative_pg_io_first_recoverability_point",
        }
    ),
}
DATABASE_PREFIXES = ("pg_", "cnpg_", "barman_cloud_")


def rendered(values: dict[str, Any] | None = None) -> list[Manifest]:
    return render("observability", values, "monitoring")


def dashboards(objects: list[Manifest]) -> dict[str, dict[str, Any]]:
    """ConfigMap name -> the dashboard it carries."""
    found = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("dashboard-"):
            ((_, text),) = obj["data"].items()
            found[obj["metadata"]["name"]] = json.loads(text)
    return found


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def rule_expressions() -> Iterator[tuple[str, str]]:
    for path in sorted((CHART / "rules").glob("*.rules.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield rule.get("alert") or rule["record"], rule["expr"]


def series_names(expr: str) -> set[str]:
    """The metric names an expression selects, from promql-parser's syntax tree."""
    names: set[str] = set()

    def walk(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            by_matcher = [m.value for m in node.matchers.matchers if m.name == "__name__"]
            names.update([node.name] if node.name else by_matcher)
            return
        children = [
            getattr(node, a, None) for a in ("lhs", "rhs", "expr", "param", "vector_selector")
        ]
        children += getattr(node, "args", None) or []
        for child in children:
            if isinstance(child, promql_parser.Expr):
                walk(child)

    walk(promql_parser.parse(expr))
    return names


def unknown_database_series(expr: str) -> set[str]:
    known = frozenset().union(*POSTGRES_SERIES.values())
    return {n for n in series_names(expr) if n.startswith(DATABASE_PREFIXES) and n not in known}


def test_the_chart_renders_valid_objects() -> None:
    objects = rendered()
    assert problems_of(objects, kubernetes_version()) == []


def test_each_rule_file_becomes_one_prometheus_rule_with_the_same_groups() -> None:
    rules = {o["metadata"]["name"]: o for o in rendered() if o["kind"] == "PrometheusRule"}
    files = {p.name.removesuffix(".rules.yaml"): p for p in (CHART / "rules").glob("*.rules.yaml")}
    assert set(rules) == set(files)
    for name, path in files.items():
        assert rules[name]["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]


def test_one_dashboard_per_service_from_one_template_plus_the_overview() -> None:
    services = yaml.safe_load((CHART / "values.yaml").read_text())["dashboards"]["services"]
    found = dashboards(rendered())
    assert set(found) == {f"dashboard-{s}" for s in services} | {"dashboard-overview"}
    for service in services:
        dashboard = found[f"dashboard-{service}"]
        assert dashboard["uid"] == f"chat-{service}"
        text = json.dumps(dashboard)
        assert "__SERVICE__" not in text
        assert f'job=\\"{service}\\"' in text
    uids = [d["uid"] for d in found.values()]
    assert len(uids) == len(set(uids))


def test_the_sidecar_finds_every_dashboard() -> None:
    found = dashboards(rendered())
    assert found
    for obj in rendered():
        if obj["metadata"]["name"] in found:
            assert obj["metadata"]["labels"].get(SIDECAR_LABEL[0]) == SIDECAR_LABEL[1]


def test_every_service_dashboard_covers_traffic_errors_latency_saturation_dependencies() -> None:
    titles = [p["title"] for p in dashboards(rendered())["dashboard-backend"]["panels"]]
    for topic in ("Requests", "Errors", "Latency percentiles", "Saturation", "Dependencies"):
        assert any(t.startswith(topic) for t in titles), topic


def test_every_promql_expression_parses() -> None:
    found = [
        (f"{name}: {title}", expr)
        for name, dashboard in dashboards(rendered()).items()
        for title, expr in expressions(dashboard)
    ]
    found += list(rule_expressions())
    assert len(found) > 40
    failures = []
    for where, expr in found:
        try:
            promql_parser.parse(expr)
        except ValueError as error:
            failures.append(f"{where}: {error}")
    assert failures == []


def test_dashboards_and_rules_read_only_series_a_postgres_engine_exports() -> None:
    found = [
        (f"{name}: {title}", expr)
        for name, dashboard in dashboards(rendered()).items()
        for title, expr in expressions(dashboard)
    ]
    found += list(rule_expressions())
    unknown = [(where, unknown_database_series(expr)) for where, expr in found]
    assert [(where, names) for where, names in unknown if names] == []


def postgres_answers() -> str:
    dashboard = dashboards(rendered())["dashboard-backend"]
    (expr,) = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
        if target.get("legendFormat", "").startswith("postgres answers")
    ]
    return str(expr)


def test_postgres_answers_under_either_engine() -> None:
    expr = postgres_answers()
    for engine, series in POSTGRES_SERIES.items():
        assert series_names(expr) & series, f"{engine}: {expr}"


def test_postgres_answers_with_the_same_labels_under_either_engine(tmp_path: Path) -> None:
    """Prometheus's own evaluation (promtool) of the panel on series as each engine's scrape
    labels them: the ServiceMonitor's exporter sidecar in one namespace, CloudNativePG's
    PodMonitor in another (its `cluster` label dropped), one line per instance pod."""
    expr = postgres_answers()
    series = {
        'pg_up{namespace="chat-staging",job="postgres",pod="postgres-0",service="postgres",'
        'endpoint="metrics",instance="10.42.0.5:9187"}': "1x5",
        'cnpg_collector_up{namespace="chat-production",job="postgres",pod="postgres-1",'
        'cluster="postgres",instance="10.42.0.6:9187"}': "1x5",
        'cnpg_collector_up{namespace="chat-production",job="postgres",pod="postgres-2",'
        'cluster="postgres",instance="10.42.0.7:9187"}': "0x5",
        'pg_up{namespace="chat-production",job="redis",pod="redis-0"}': "1x5",
    }
    expected = {
        "chat-staging": [("postgres-0", 1)],
        "chat-production": [("postgres-1", 1), ("postgres-2", 0)],
    }
    case = {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "promql_expr_test": [
            {
                "expr": expr.replace("$namespace", namespace),
                "eval_time": "5m",
                "exp_samples": [
                    {"labels": f'{{namespace="{namespace}",pod="{pod}"}}', "value": value}
                    for pod, value in samples
                ],
            }
            for namespace, samples in expected.items()
        ],
    }
    test_file = tmp_path / "postgres-answers.test.yaml"
    test_file.write_text(yaml.safe_dump({"rule_files": [], "tests": [case]}))
    result = promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("expr", "unknown"),
    [
        ("pg_up or cnpg_collector_up", set()),
        ('rate(cnpg_pg_stat_archiver_failed_count{job="postgres"}[5m]) > 0', set()),
        ("cnpg_collector_upp == 0", {"cnpg_collector_upp"}),
        ("max by (pod) (pg_replication_lag_seconds)", {"pg_replication_lag_seconds"}),
        (
            'absent({__name__="cnpg_pg_replication_lag_seconds"})',
            {"cnpg_pg_replication_lag_seconds"},
        ),
        ("sum(rate(http_requests_total[5m])) / on () group_left up", set()),
    ],
)
def test_a_series_no_postgres_engine_exports_is_reported(expr: str, unknown: set[str]) -> None:
    assert unknown_database_series(expr) == unknown


@pytest.mark.parametrize(
    "broken",
    ["sum(rate(http_requests_total[5m])", "rate(http_requests_total[5x])", 'up{job="a"'],
)
def test_the_parser_rejects_a_broken_expression(broken: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the parser raises a bare ValueError
        promql_parser.parse(broken)


def test_dashboards_and_rules_can_be_turned_off() -> None:
    off = {"enabled": False}
    assert rendered({"rules": off, "dashboards": off, "traceStore": off}) == []
