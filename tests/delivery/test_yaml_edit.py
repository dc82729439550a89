"""The bump's in-place scalar edit: every byte but the two values kept, ruamel.yaml as fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from ci.core.gitops import ImageRef, read_image, set_image
from ci.core.yamlfile import YamlFileError, splice_scalars

DIGEST = "sha256:" + "a" * 64
NEW = {"tag": "1.2", "digest": DIGEST}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            'image:\n  repository: r  # where\n  tag: "old"  # human\n  digest: ""\n',
            f'image:\n  repository: r  # where\n  tag: "1.2"  # human\n  digest: "{DIGEST}"\n',
        ),
        ("image:\n  tag: 'a'\n  digest: 'b'\n", f"image:\n  tag: '1.2'\n  digest: '{DIGEST}'\n"),
        # Plain stays plain unless the value would read back as something else (1.2 a float).
        ("image:\n  tag: a\n  digest: b\n", f'image:\n  tag: "1.2"\n  digest: {DIGEST}\n'),
        ("image:\n  tag:\n  digest:\nr: 1\n", f'image:\n  tag: "1.2"\n  digest: {DIGEST}\nr: 1\n'),
        ("image: {tag: a, digest: b}\n", f'image: {{tag: "1.2", digest: {DIGEST}}}\n'),
    ],
)
def test_splice_changes_only_the_two_scalars(before: str, after: str) -> None:
    assert splice_scalars(Path("v.yaml"), before, ["image"], NEW) == after


@pytest.mark.parametrize(
    "text",
    [
        "image:\n  tag: a\n",  # digest missing
        "image:\n  tag: |\n    a\n  digest: b\n",  # a block scalar
        "image:\n  tag: a\n  tag: b\n  digest: c\n",  # a duplicate key
        "image: [a, b]\n",
    ],
)
def test_splice_declines_what_it_cannot_do_exactly(text: str) -> None:
    assert splice_scalars(Path("v.yaml"), text, ["image"], NEW) is None


def test_splice_names_the_file_of_invalid_yaml() -> None:
    with pytest.raises(YamlFileError, match=r"v\.yaml: invalid YAML"):
        splice_scalars(Path("v.yaml"), "image: [\n", ["image"], NEW)


def test_set_image_adds_a_missing_key_with_ruamel(tmp_path: Path) -> None:
    path = tmp_path / "values-staging.yaml"
    path.write_text("# kept\nimage:\n  repository: r\n  tag: 'old'\nreplicas: 2\n")

    change = set_image(path, "svc", "staging", ImageRef("v1", DIGEST))

    assert change is not None
    assert change.old is None
    assert (
        path.read_text()
        == f"# kept\nimage:\n  repository: r\n  tag: 'v1'\n  digest: {DIGEST}\nreplicas: 2\n"
    )
    assert read_image(path) == ImageRef("v1", DIGEST)
