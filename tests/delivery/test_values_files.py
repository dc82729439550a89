"""The bump edits the project's real values files in place: only image.tag and image.digest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ci.core.gitops import ImageRef, set_image
from delivery.helpers import digest_of

ROOT = Path(__file__).resolve().parents[2]
VALUES = sorted(ROOT.glob("charts/*/values-*.yaml"))


def with_image(path: Path) -> bool:
    return any(line.startswith("image:") for line in path.read_text().splitlines())


@pytest.mark.parametrize(
    "source", [p for p in VALUES if with_image(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_bump_changes_exactly_two_lines(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    before = copy.read_text().splitlines()
    new = ImageRef(tag="1.2.3", digest=digest_of(str(source)))

    change = set_image(copy, source.parent.name, "env", new)

    after = copy.read_text().splitlines()
    assert change is not None
    assert len(after) == len(before)
    differing = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert [a.split(":", 1)[0].strip() for _, a in differing] == ["tag", "digest"]
    assert "1.2.3" in differing[0][1]
    assert new.digest in differing[1][1]
