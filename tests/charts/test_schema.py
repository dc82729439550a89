"""values.schema.json: in every chart, closed at every object level, and enforced by Helm with a
message that names the offending field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import helm_python
import pytest
from chartkit import APP_CHARTS, CHARTS, DEPLOYABLE_CHARTS, LIBRARY_CHART, load_values, render

ALL_CHARTS = (*DEPLOYABLE_CHARTS, LIBRARY_CHART)
PREDICATES = {"if", "not"}


def load_schema(chart: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHARTS / chart / "values.schema.json").read_text())
    return schema


def open_objects(node: Any, where: str = "") -> Iterator[str]:
    """JSON pointers of object schemas that do not set additionalProperties: false.

    `if` and `not` hold predicates about a value, not declarations of one, so they are skipped.
    """
    if isinstance(node, dict):
        declares_object = (
            node.get("type") == "object" or "properties" in node or "patternProperties" in node
        )
        if declares_object and node.get("additionalProperties") is not False:
            yield where or "/"
        for key, child in node.items():
            if key not in PREDICATES:
                yield from open_objects(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from open_objects(child, f"{where}/{index}")


@pytest.mark.parametrize("chart", ALL_CHARTS)
def test_schema_is_closed_at_every_object_level(chart: str) -> None:
    schema = load_schema(chart)
    assert schema["type"] == "object"
    assert list(open_objects(schema)) == []


def test_open_object_detector_finds_an_open_object() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"a": {"type": "object", "properties": {}}},
    }
    assert list(open_objects(schema)) == ["/properties/a"]


def test_service_charts_share_one_schema() -> None:
    schemas = {chart: (CHARTS / chart / "values.schema.json").read_text() for chart in APP_CHARTS}
    assert len(set(schemas.values())) == 1, "service chart schemas drifted apart; keep them equal"


def rejection(chart: str, values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render(chart, values, "chat-staging")
    return str(caught.value)


def staging(chart: str, **changes: Any) -> dict[str, Any]:
    values = load_values(chart, "staging")
    values.update(changes)
    return values


@pytest.mark.parametrize("chart", DEPLOYABLE_CHARTS)
def test_unknown_top_level_key_is_rejected(chart: str) -> None:
    message = rejection(chart, staging(chart, replicaCount=3))
    assert "additional properties 'replicaCount' not allowed" in message


@pytest.mark.parametrize("chart", APP_CHARTS)
def test_wrong_type_is_rejected_naming_the_field(chart: str) -> None:
    message = rejection(chart, staging(chart, port="eighty"))
    assert "/port" in message
    assert "want integer" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"image": {"tagg": "1.0"}}, "additional properties 'tagg' not allowed"),
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"image": {"digest": "sha256:abc"}}, "/image/digest"),
        ({"resources": {"limits": {"memory": None}}}, "missing property 'memory'"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "/resources/requests/cpu"),
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
        ({"config": {"DB_PASSWORD": "hunter2"}}, "/config/DB_PASSWORD"),
        ({"config": {"lowercase": "x"}}, "/config"),
        ({"httpRoute": {"enabled": "yes"}}, "/httpRoute/enabled"),
        ({"httpRoute": {"maxBodySize": "12 MB"}}, "/httpRoute/maxBodySize"),
        ({"httpRoute": {"gateway": {"listener": "HTTPS"}}}, "/httpRoute/gateway/listener"),
        ({"networkPolicy": {"egressTo": [{"service": "ai", "port": 99999}]}}, "/networkPolicy"),
        ({"workers": [{"name": "consumer"}]}, "/workers/0"),
        ({"migration": {"enabled": True, "command": None}}, "/migration"),
        ({"route": "api/chat"}, "/route"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_bad_service_values_are_rejected(change: dict[str, Any], expected: str) -> None:
    message = rejection("backend", change)
    assert expected in message, message


@pytest.mark.parametrize(
    ("chart", "change", "expected"),
    [
        ("postgres", {"backup": {"retentionDays": "week"}}, "/backup/retentionDays"),
        ("postgres", {"databases": {"services": []}}, "/databases/services"),
        ("postgres", {"superuserSecret": {"password": "x"}}, "'password' not allowed"),
        ("redis", {"maxmemoryPolicy": "evict-everything"}, "/maxmemoryPolicy"),
        ("redis", {"maxmemory": 256}, "/maxmemory"),
        ("redis", {"sentinel": {"replicas": 2}}, "/sentinel/replicas"),
        ("redis", {"sentinel": {"masterName": "a b"}}, "/sentinel/masterName"),
        ("redis", {"podDisruptionBudget": {"maxUnavailable": 0}}, "/podDisruptionBudget"),
        ("platform", {"namespace": {"podSecurity": "none"}}, "/namespace/podSecurity"),
    ],
)
def test_bad_infrastructure_values_are_rejected(
    chart: str, change: dict[str, Any], expected: str
) -> None:
    message = rejection(chart, change)
    assert expected in message, message
