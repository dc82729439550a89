"""The registry of generated files (ci.core.generated) and `python -m ci.generate`.

Each test runs the real generators (the real `uv export` over the real uv.lock) in a copy of
the repository made of exactly the generators' declared inputs: what the engine's `generate`
function mounts, so an input missing from the list fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ci.core import generated
from ci.core.toolversions import UV_REQUIREMENTS

ROOT = Path(__file__).resolve().parents[2]


def inputs_copy(target: Path) -> Path:
    """The repository files the generators declare as inputs, and the outputs they own."""
    patterns = [p for g in generated.registry() for p in g.inputs]
    outputs = generated.render(ROOT, generated.registry())
    for path in {
        *(p for pattern in patterns for p in ROOT.glob(pattern)),
        *map(ROOT.joinpath, outputs),
    }:
        relative = path.relative_to(ROOT)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
    return target


def generate(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci.generate", "--repo", str(repo), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT / "ci" / "src")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_committed_generated_files_are_up_to_date() -> None:
    done = generate(ROOT, "--check")

    assert done.returncode == 0, done.stderr


def test_a_stale_file_fails_the_check_by_name_and_generate_rewrites_it(tmp_path: Path) -> None:
    repo = inputs_copy(tmp_path)
    edited = repo / "services/auth/requirements.txt"
    committed = edited.read_text()
    edited.write_text(committed.replace("==", "===", 1))
    (repo / "services/ai/requirements.txt").unlink()

    check = generate(repo, "--check")
    wrote = generate(repo)

    assert check.returncode == 1
    assert "services/ai/requirements.txt services/auth/requirements.txt" in check.stderr
    assert wrote.returncode == 0, wrote.stderr
    assert edited.read_text() == committed
    assert oct(edited.stat().st_mode & 0o777) == oct(0o644)
    assert generate(repo, "--check").returncode == 0


def test_every_python_service_gets_its_locked_hashed_requirements(tmp_path: Path) -> None:
    files = generated.render(inputs_copy(tmp_path), generated.select(["requirements"]))

    python_services = {"ai", "auth", "backend", "data-processor", "media-storage"}
    assert set(files) == {f"services/{name}/requirements.txt" for name in python_services}
    for text in files.values():
        assert text.startswith(generated.REQUIREMENTS_HEADER)
        assert "--hash=sha256:" in text
        # the workspace library is built from the context, never installed from an index
        assert not any(line.startswith(("servicekit", "-e")) for line in text.splitlines())


def test_an_unknown_generator_is_a_usage_error_naming_the_known_ones() -> None:
    done = generate(ROOT, "--check", "nonsense")

    assert done.returncode == 2
    assert "unknown generator nonsense (known: requirements" in done.stderr


def test_two_generators_claiming_one_path_is_an_error(tmp_path: Path) -> None:
    twice = [
        generated.Generator("a", "", (), lambda root: {"x.txt": "1"}),
        generated.Generator("b", "", (), lambda root: {"x.txt": "2"}),
    ]

    with pytest.raises(generated.GenerateError, match=r"x.txt: generated twice \(second by b\)"):
        generated.render(tmp_path, twice)


def test_out_writes_every_generated_file_elsewhere_and_leaves_the_repo_alone(
    tmp_path: Path,
) -> None:
    out = tmp_path / "generated"

    done = generate(ROOT, "--out", str(out))

    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(generated.render(ROOT, generated.registry()))
    assert generate(ROOT, "--check").returncode == 0


def test_uv_bootstrap_pins_every_wheel_uv_lock_records_and_pip_checks_them(
    tmp_path: Path,
) -> None:
    """The bootstrap of `make setup` and of the engine's toolchain (both pip, --require-hashes):
    this platform's real uv wheel from the index passes the hash check, and fails it when no
    hash matches. uv's own installer checks here (the engine's venv has no pip)."""
    text = generated.uv_requirements(ROOT)[UV_REQUIREMENTS]
    hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", text)
    lock = (ROOT / "uv.lock").read_text()
    assert len(hashes) > 4
    assert all(f'hash = "{h}"' in lock for h in hashes)
    tampered = tmp_path / "tampered.txt"
    tampered.write_text(re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text))

    def download(requirements: Path) -> subprocess.CompletedProcess[str]:
        args = ["pip", "install", "--no-deps", "--require-hashes", "--no-cache"]
        target = tmp_path / f"target-{requirements.stem}"  # empty: uv must fetch the wheel
        args += ["--target", str(target), "--python", sys.executable]
        return subprocess.run(
            [generated.uv_binary(), *args, "-r", str(requirements)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    accepted = download(ROOT / UV_REQUIREMENTS)
    assert accepted.returncode == 0, accepted.stderr
    refused = download(tampered)
    assert refused.returncode != 0
    assert "hash mismatch" in refused.stderr.lower(), refused.stderr


def test_uv_bootstrap_without_uv_in_the_lock_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text('version = 1\n[[package]]\nname = "other"\nversion = "1"\n')
    with pytest.raises(generated.GenerateError, match=r"ci/uv-requirements.txt: uv.lock holds 0"):
        generated.uv_requirements(tmp_path)
