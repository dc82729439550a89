"""Schema-based fuzzing of an ASGI service with schemathesis: every operation of its OpenAPI
document, valid and invalid input, a bounded number of examples each.

    assert_conforms(app, headers=token_issuer.bearer(...), max_examples=25)

Every response is checked by schemathesis' checks: no 5xx, only documented status codes,
content types and headers, bodies that match the documented schema, invalid input refused.
The first failure raises with the request that caused it (a curl command to replay it).
Not loaded by the plugin: `from harness.openapi import assert_conforms`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err
from starlette.types import ASGIApp


def assert_conforms(
    app: ASGIApp,
    *,
    headers: Mapping[str, str] | None = None,
    max_examples: int = 25,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    excluded_checks: Sequence[Any] = (),
) -> list[str]:
    """Fuzz every operation of `app`'s /openapi.json; returns the operations it exercised.

    `excluded_checks`: schemathesis checks that cannot hold for this API, each with its reason
    at the call site (e.g. opaque cursors: no schema says which strings the server issued).
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    exercised = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"/openapi.json has an invalid operation: {result.err()}")
        operation = result.ok()
        for mode in modes:
            try:
                strategy = operation.as_strategy(generation_mode=mode)
                _fuzz(strategy, dict(headers or {}), max_examples, list(excluded_checks))
            except Unsatisfiable:
                if mode is not GenerationMode.NEGATIVE:
                    raise
                # Nothing to make invalid: an operation without parameters or body (GET /health).
        exercised.append(operation.label)
    return exercised


def _fuzz(strategy: Any, headers: dict[str, str], max_examples: int, excluded: list[Any]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,  # no example database: the same bounded run every time
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def one_case(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(
            headers=_headers_for(case, headers), excluded_checks=excluded or None
        )

    one_case()


def _headers_for(case: schemathesis.Case[Any], headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers (a valid token), except those a case with invalid headers left out
    on purpose (e.g. no Authorization): adding them back would send a valid request that the
    negative-data check then expects to be refused."""
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if header is None or header.mode is not GenerationMode.NEGATIVE:
        return headers
    kept = {name.lower() for name in case.headers or {}}
    return {name: value for name, value in headers.items() if name.lower() in kept}
