"""Settings from the environment (MEDIA_ROOT, MEDIA_MAX_UPLOAD_BYTES, JWKS_URL, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from servicekit.settings import ServiceSettings

DEFAULT_ALLOWED_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)


class Settings(ServiceSettings):
    media_root: Path
    media_max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # What one user may store in all, so no user can fill the shared volume (507 beyond it).
    media_user_quota_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    # /ready fails while the volume has less free space than this (uploads would fail).
    media_min_free_bytes: int = Field(default=1024 * 1024, ge=0)
    # How often a worker looks for temporary files of dead workers to remove.
    media_temp_sweep_seconds: float = Field(default=30.0, gt=0)
    # Comma-separated in the environment: MEDIA_ALLOWED_TYPES=image/png,image/jpeg
    media_allowed_types: str = ",".join(DEFAULT_ALLOWED_TYPES)

    @field_validator("media_allowed_types")
    @classmethod
    def _non_empty_types(cls, value: str) -> str:
        if not [t for t in value.split(",") if t.strip()]:
            raise ValueError("MEDIA_ALLOWED_TYPES must name at least one MIME type")
        return value

    @property
    def allowed_types(self) -> frozenset[str]:
        names = self.media_allowed_types.split(",")
        return frozenset(t.strip().lower() for t in names if t.strip())
