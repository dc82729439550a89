from __future__ import annotations

import pytest
from media_storage.sniff import SNIFF_BYTES, sniff_content_type
from media_storage.upload import display_name


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 32, "image/gif"),
        (b"%PDF-1.7\n" + b"\x00" * 32, "application/pdf"),
        (b"plain words\nand lines\n", "text/plain"),
        ("h\u00e9llo w\u00f6rld".encode(), "text/plain"),
        (b"<html><script>alert(1)</script>", "text/html"),
        (b"\x00\x01\x02\x03\xfe\xff", None),
        (b"", None),
    ],
)
def test_sniffs_type_from_bytes(head: bytes, expected: str | None) -> None:
    assert sniff_content_type(head) == expected


def test_text_cut_inside_a_multibyte_character_is_still_text() -> None:
    head = ("\u00e9" * SNIFF_BYTES).encode()[: SNIFF_BYTES - 1] + b"\xc3"
    assert len(head) == SNIFF_BYTES
    assert sniff_content_type(head) == "text/plain"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("a\x00b\x1fc.txt", "abc.txt"),
        ("..", "file"),
        ("", "file"),
        ("x" * 300, "x" * 255),
    ],
)
def test_display_name_keeps_no_path(given: str, shown: str) -> None:
    assert display_name(given) == shown


def test_ascii_text_that_starts_with_digits_is_plain_text() -> None:
    """puremagic names text starting with "0123456789" `text/ascii` (a test signature)."""
    assert sniff_content_type(b"0123456789 are the digits.\nAnd more text.\n") == "text/plain"
    assert sniff_content_type(b"0123456789\x00\x01\x02binary") is None
