"""The Python services' Dockerfiles come from one template (ci.core.dockerfiles) and their
service.yaml; a Dockerfile edited by hand, or a service.yaml whose command changed, is stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dockerfile
import yaml
from ci.core import generated, toolversions
from ci.core.dockerfiles import dockerfiles

ROOT = Path(__file__).resolve().parents[2]


def catalog_copy(target: Path) -> Path:
    """services/*/service.yaml and the Dockerfiles, nothing else (the generator's inputs)."""
    for path in [*ROOT.glob("services/*/service.yaml"), *ROOT.glob("services/*/Dockerfile")]:
        relative = path.relative_to(ROOT)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
    (target / "services/servicekit").mkdir(exist_ok=True)  # a library the services use
    return target


def cmd_of(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "Dockerfile.parsed"
    path.write_text(text)
    return next(list(c.value) for c in dockerfile.parse_file(str(path)) if c.cmd == "CMD")


def test_every_python_service_has_a_generated_dockerfile_with_its_run_as_cmd(
    tmp_path: Path,
) -> None:
    files = dockerfiles(ROOT)
    python = sorted(
        p.parent.name
        for p in ROOT.glob("services/*/service.yaml")
        if yaml.safe_load(p.read_text())["kind"] == "python"
    )
    assert sorted(files) == [f"services/{name}/Dockerfile" for name in python]
    for path, text in files.items():
        run = yaml.safe_load((ROOT / path).with_name("service.yaml").read_text())["run"]
        assert cmd_of(text, tmp_path) == run, path
        assert f"ARG PYTHON_IMAGE={toolversions.PYTHON_RUNTIME_IMAGE}\n" in text


def test_a_changed_command_or_a_hand_edit_makes_the_dockerfile_stale(tmp_path: Path) -> None:
    repo = catalog_copy(tmp_path / "repo")
    assert generated.stale(repo, dockerfiles(repo)) == []
    service_yaml = repo / "services/media-storage/service.yaml"
    spec = yaml.safe_load(service_yaml.read_text())
    spec["run"] = ["gunicorn", "--config", "python:media_storage.other_conf", "x:app"]
    service_yaml.write_text(yaml.safe_dump(spec))
    edited = repo / "services/auth/Dockerfile"
    edited.write_text(edited.read_text().replace("USER 10001:10001", "USER root"))

    files = dockerfiles(repo)

    assert generated.stale(repo, files) == [
        "services/auth/Dockerfile",
        "services/media-storage/Dockerfile",
    ]
    generated.write(repo, files)
    assert cmd_of((repo / "services/media-storage/Dockerfile").read_text(), tmp_path) == spec["run"]
    assert "USER 10001:10001" in edited.read_text()


def test_the_description_label_survives_quotes(tmp_path: Path) -> None:
    repo = catalog_copy(tmp_path / "repo")
    service_yaml = repo / "services/ai/service.yaml"
    spec = yaml.safe_load(service_yaml.read_text())
    spec["description"] = 'Says "hello", then \\ goes'
    service_yaml.write_text(yaml.safe_dump(spec))
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfiles(repo)["services/ai/Dockerfile"])
    label = next(c for c in dockerfile.parse_file(str(path)) if c.cmd == "LABEL")
    pairs = dict(zip(label.value[::2], label.value[1::2], strict=True))
    assert json.loads(pairs["org.opencontainers.image.description"]) == spec["description"]
