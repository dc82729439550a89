"""Pipeline of the chat platform: lint, test, build, scan and publish every service.

The catalog (services/*/service.yaml) decides what exists; the git diff and the `uses` graph
decide what is affected. Decisions live in `ci.core` (plain Python, tested on the host); the
Dagger functions in `ci.main` only compose containers around them.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Ci"]


def __getattr__(name: str) -> Any:
    # The Dagger runtime looks up `ci:Ci` (or the entry point `ci.main:Ci`); importing the
    # module lazily keeps `python -m ci.plan` and the pure core free of the dagger import.
    if name == "Ci":
        return importlib.import_module(".main", __name__).Ci
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
