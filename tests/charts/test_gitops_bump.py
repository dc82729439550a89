"""The values-<env>.yaml files are machine-editable: the delivery core's bump edits exactly
image.tag and image.digest, and the chart then renders that digest."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import helm_python
import pytest
import yaml
from chartkit import APP_CHARTS, CHARTS, ENVIRONMENTS
from ci.core.gitops import ImageRef, set_image

DIGEST = "sha256:" + "e" * 64


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", APP_CHARTS)
def test_bump_changes_only_the_image_and_renders_the_digest(
    chart: str, environment: str, tmp_path: Path
) -> None:
    charts = tmp_path / "charts"
    shutil.copytree(CHARTS / "lib", charts / "lib")
    shutil.copytree(CHARTS / chart, charts / chart, symlinks=True)
    values_file = charts / chart / f"values-{environment}.yaml"
    before = values_file.read_text()

    change = set_image(values_file, chart, environment, ImageRef(tag="2.0.0", digest=DIGEST))
    assert change is not None
    after = values_file.read_text()
    changed = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert sorted(changed) == sorted(
        ['-  tag: "0.1.0"', '-  digest: ""', '+  tag: "2.0.0"', f'+  digest: "{DIGEST}"']
    )
    assert set_image(values_file, chart, environment, ImageRef("2.0.0", DIGEST)) is None

    with helm_python.Chart.load(charts / chart) as loaded:
        files = loaded.render(helm_python.values_from_yaml(after), name=chart, namespace="ns")
    images = {
        container["image"]
        for text in files.values()
        for obj in yaml.safe_load_all(text)
        if obj and obj["kind"] in {"Deployment", "Job"}
        for container in obj["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"ghcr.io/example-org/chat-platform/{chart}@{DIGEST}"}
