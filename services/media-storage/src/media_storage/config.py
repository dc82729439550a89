"""Settings from the environment (DATABASE_URL, MEDIA_STORAGE, MEDIA_ROOT or MEDIA_S3_*,
MEDIA_MAX_UPLOAD_BYTES, JWKS_URL, ...)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
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
    # Where the bytes live: a volume (`make run`, one replica) or an S3-compatible bucket.
    media_storage: Literal["filesystem", "s3"] = "filesystem"
    media_root: Path | None = None  # filesystem: the volume
    # s3: uploads are spooled here (hashed as they arrive) before their one PUT
    media_spool_dir: Path = Path(tempfile.gettempdir()) / "media-spool"
    media_s3_endpoint: str | None = None  # https://s3.eu-west-1.amazonaws.com, http://weed:8333
    media_s3_bucket: str | None = None
    media_s3_region: str = "us-east-1"
    # From a Kubernetes Secret (secretEnv), never from values.
    media_s3_access_key: str | None = Field(default=None, repr=False)
    media_s3_secret_key: str | None = Field(default=None, repr=False)
    # Uploads one process receives at once (more get 503 + Retry-After): each may spool up to
    # MEDIA_MAX_UPLOAD_BYTES, so this bounds the spool's disk (the pod's /tmp) and the memory.
    media_max_concurrent_uploads: int = Field(default=16, gt=0)
    # The orphan sweeper removes objects no row references once they are older than this: an
    # upload in flight PUTs its object before its row commits.
    media_orphan_grace_seconds: float = Field(default=3600.0, gt=0)
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

    @model_validator(mode="after")
    def _backend_complete(self) -> Self:
        if self.media_storage == "filesystem" and self.media_root is None:
            raise ValueError("MEDIA_ROOT must be set when MEDIA_STORAGE=filesystem")
        if self.media_storage == "s3":
            missing = [
                name.upper()
                for name in (
                    "media_s3_endpoint",
                    "media_s3_bucket",
                    "media_s3_access_key",
                    "media_s3_secret_key",
                )
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"MEDIA_STORAGE=s3 needs {', '.join(missing)}")
        return self

    @property
    def allowed_types(self) -> frozenset[str]:
        names = self.media_allowed_types.split(",")
        return frozenset(t.strip().lower() for t in names if t.strip())
