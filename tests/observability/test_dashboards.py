"""The observability chart as Argo CD renders it: one PrometheusRule per rule file (the same
groups `promtool test rules` tests), a dashboard ConfigMap per service from one template plus the
overview, each with the Grafana sidecar's label; every PromQL expression of rules and dashboards
parsed by a real PromQL parser (promql-parser, the Rust implementation)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
import yaml
from chartkit import CHARTS, Manifest, kubernetes_version, problems_of, render

CHART = CHARTS / "observability"
SIDECAR_LABEL = ("grafana_dashboard", "1")


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
