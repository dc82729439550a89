"""Text fields that the databases can store: no NUL character.

PostgreSQL's text cannot hold U+0000; a NUL that reaches a query fails it as a database error
(a 5xx). `Text` refuses it at the edge as a validation error naming the field (422), and says
so in the OpenAPI schema (a pattern), so schema-based clients and fuzzers know it too.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

NO_NUL_PATTERN = "^[^\\x00]*$"


def reject_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[
    str, AfterValidator(reject_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})
]
