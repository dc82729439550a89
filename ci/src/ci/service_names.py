# Generated from services/*/service.yaml by `make generate` (ci.core.checks): do not edit.
"""The catalog's services, for the Dagger module's per-service checks."""

SERVICE_NAMES: tuple[str, ...] = (
    "ai",
    "auth",
    "backend",
    "data-processor",
    "frontend",
    "media-storage",
)
