"""The media-storage HTTP API: upload, list, download (ETag, Range) and delete per user."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Iterator

from flask import Flask, Response, request, send_file
from servicekit.events import telemetry_if_wanted
from servicekit.health import liveness, run_checks_sync
from servicekit.jwt import JwtVerifier
from servicekit.metrics import HttpMetrics, came_through_a_proxy
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_options_header

from media_storage.blobs import is_disk_full
from media_storage.catalog import Catalog, FileRecord
from media_storage.config import Settings
from media_storage.storage import ObjectStore, make_store
from media_storage.upload import (
    MULTIPART_OVERHEAD_BYTES,
    ReceivedFile,
    UploadPolicy,
    UploadRejectedError,
    receive_upload,
)
from media_storage.web import ApiError, current_user, install, json_body

logger = logging.getLogger(__name__)
SERVICE = "media-storage"
# Types a browser may render inline; everything else downloads as an attachment.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class MediaService:
    """Objects + catalog with the locking rules that keep them consistent across replicas."""

    def __init__(self, settings: Settings) -> None:
        if not settings.database_url:
            raise ValueError("DATABASE_URL must be set (the media catalog's PostgreSQL database)")
        self.blobs: ObjectStore = make_store(settings)
        self.catalog = Catalog(settings.database_url)
        self.policy = UploadPolicy(settings.media_max_upload_bytes, settings.allowed_types)
        self.quota = settings.media_user_quota_bytes
        # Uploads in flight in this process: each holds up to max_bytes in the spool (and, on
        # S3, in memory during its PUT), so their number bounds the pod's /tmp and memory.
        self.upload_slots = threading.BoundedSemaphore(settings.media_max_concurrent_uploads)
        self.max_uploads = settings.media_max_concurrent_uploads

    def prepare(self) -> None:
        self.blobs.prepare()  # the catalog's schema is the migration Job's

    def store(self, user_id: str, received: ReceivedFile) -> FileRecord:
        # A quick refusal without any lock; the row-locked reserve() below is what decides.
        if self.catalog.stored_bytes(user_id) + received.size > self.quota:
            raise _over_quota(self.quota)
        record = FileRecord(
            id=str(uuid.uuid4()),
            user_id=user_id,
            name=received.name,
            size=received.size,
            content_type=received.content_type,
            sha256=received.sha256,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        )
        digest = received.sha256
        # Under the digest's lock, so a delete or the sweeper cannot remove the object between
        # its publication and the commit of the row that references it. The object goes first:
        # a row never exists without its object; an object whose row never commits (a killed
        # worker) is the orphan sweeper's.
        with self.catalog.transaction() as conn:
            self.catalog.lock_content(conn, digest)
            self.blobs.publish(received.pending, digest)
            if not self.catalog.reserve(conn, user_id, record.size, self.quota):
                if self.catalog.references(conn, digest) == 0:
                    self.blobs.remove(digest)
                raise _over_quota(self.quota)
            self.catalog.insert(conn, record)
        return record

    def delete(self, record: FileRecord) -> None:
        with self.catalog.transaction() as conn:
            self.catalog.lock_content(conn, record.sha256)
            if self.catalog.delete(conn, record) == 0:
                self.blobs.remove(record.sha256)

    def catalog_ready(self) -> None:
        if not self.catalog.ping():
            raise OSError("the catalog database is not reachable or not migrated")


def _over_quota(quota: int) -> ApiError:
    return ApiError(507, f"storage quota of {quota} bytes exceeded")


def create_app(settings: Settings | None = None, verifier: JwtVerifier | None = None) -> Flask:
    settings = settings or Settings()
    if verifier is None:
        if not settings.jwks_url:
            raise ValueError("JWKS_URL must be set (the auth service's /.well-known/jwks.json)")
        verifier = JwtVerifier(
            settings.jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
    media = MediaService(settings)
    media.prepare()
    metrics = HttpMetrics()

    app = Flask(SERVICE)
    if telemetry := telemetry_if_wanted():  # OTEL_EXPORTER_OTLP_ENDPOINT set: server spans
        telemetry.trace_wsgi(app, SERVICE)
        telemetry.trace_engine(media.catalog.engine)  # and the catalog's SQL client spans
    app.extensions["media"] = media
    install(app, metrics)
    auth = verifier

    @app.get("/health")
    def health() -> tuple[Response, int]:
        report = liveness()
        return json_body(report.body, report.status_code)

    @app.get("/ready")
    def ready() -> tuple[Response, int]:
        report = run_checks_sync(
            {"storage": media.blobs.check_writable, "catalog": media.catalog_ready}
        )
        return json_body(report.body, report.status_code)

    @app.get("/metrics")
    def prometheus() -> Response:
        if came_through_a_proxy(request.headers.get):
            raise ApiError(404, "not found")
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    @app.post("/files")
    def upload() -> tuple[Response, int]:
        user = current_user(auth)
        if not media.upload_slots.acquire(blocking=False):
            raise ApiError(
                503,
                f"{media.max_uploads} uploads are in progress here; try again shortly",
                {"Retry-After": "5"},
            )
        try:
            with disk_full_as_507():
                received = _receive(media)
                try:
                    record = media.store(user.sub, received)
                finally:
                    received.pending.discard()  # no-op once published
        finally:
            media.upload_slots.release()
        logger.info(
            "file stored",
            extra={"file_id": record.id, "size": record.size, "content_type": record.content_type},
        )
        return json_body(record.public(), 201)

    @app.get("/files")
    def list_files() -> tuple[Response, int]:
        user = current_user(auth)
        return json_body({"items": [r.public() for r in media.catalog.list(user.sub)]})

    @app.get("/files/<uuid:file_id>")
    def download(file_id: uuid.UUID) -> Response:
        record = _owned(media, current_user(auth).sub, file_id)
        try:
            body = media.blobs.open(record.sha256)
        except FileNotFoundError as exc:
            logger.error("blob missing for file", extra={"file_id": record.id})
            raise ApiError(404, "file content is missing") from exc
        response = send_file(
            body,
            mimetype=record.content_type,
            as_attachment=record.content_type not in INLINE_TYPES,
            download_name=record.name,
            conditional=False,
            etag=record.sha256,
            last_modified=dt.datetime.fromisoformat(record.created_at),
        )
        # Given a stream, send_file knows no length: the catalog does (Range needs it).
        response.content_length = record.size
        try:
            response.make_conditional(  # in place
                request.environ, accept_ranges=True, complete_length=record.size
            )
        except RequestedRangeNotSatisfiable:
            body.close()
            raise
        response.cache_control.private = True
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    @app.delete("/files/<uuid:file_id>")
    def delete(file_id: uuid.UUID) -> tuple[str, int]:
        record = _owned(media, current_user(auth).sub, file_id)
        media.delete(record)
        logger.info("file deleted", extra={"file_id": record.id})
        return "", 204

    return app


@contextlib.contextmanager
def disk_full_as_507() -> Iterator[None]:
    """A full volume is the client's 507 Insufficient Storage, not our 500; nothing is kept."""
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        logger.warning("storage volume is full; upload refused", extra={"error": str(exc)})
        raise ApiError(
            507,
            "the storage volume is full: the file was not stored; try again later",
            {"Retry-After": "60"},
        ) from exc


def _receive(media: MediaService) -> ReceivedFile:
    mimetype, options = parse_options_header(request.headers.get("Content-Type"))
    boundary = options.get("boundary")
    if mimetype != "multipart/form-data" or not boundary:
        raise ApiError(415, "send the file as multipart/form-data in the field 'file'")
    limit = media.policy.max_bytes
    if request.content_length is not None and request.content_length > (
        limit + MULTIPART_OVERHEAD_BYTES
    ):
        raise ApiError(413, f"file exceeds the upload limit of {limit} bytes")
    try:
        return receive_upload(request.stream, boundary, media.blobs, media.policy)
    except UploadRejectedError as exc:
        raise ApiError(exc.status, exc.detail) from exc


def _owned(media: MediaService, user_id: str, file_id: uuid.UUID) -> FileRecord:
    """The user's file; another user's file is indistinguishable from a missing one."""
    record = media.catalog.get(user_id, str(file_id))
    if record is None:
        raise ApiError(404, "file not found")
    return record
