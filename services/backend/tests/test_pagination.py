"""Cursor encoding on its own."""

from __future__ import annotations

import pytest
from backend.pagination import InvalidCursorError, decode_cursor, encode_cursor
from hypothesis import given
from hypothesis import strategies as st


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_cursor_round_trips(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


@pytest.mark.parametrize("cursor", ["", "!!!", "bnVsbA", "eyJhZnRlciI6LTF9", "eyJhZnRlciI6dHJ1ZX0"])
def test_foreign_cursors_are_rejected(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
