"""The database schema (SQLAlchemy 2 declarative models).

Times are timezone-aware UTC. JSON columns hold what the API returns as is
(a whole ``AnalysisResult``, an incident's evidence); the columns beside them
are what queries filter and sort on. Every change here needs an Alembic
migration in ``store/migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, TypeDecorator,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("admin", "operator", "viewer")
USER_STATES = ("active", "pending", "disabled")
INCIDENT_STATES = ("open", "acknowledged", "confirmed", "false_alarm", "resolved")
JOB_STATES = ("pending", "running", "succeeded", "failed", "cancelled")
DELIVERY_STATES = ("pending", "delivered", "dead")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC; gives back aware datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    # Named constraints: the same names on SQLite and PostgreSQL, so later migrations can drop or alter them.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))  # one of ROLES
    state: Mapped[str] = mapped_column(String(20), default="active")  # one of USER_STATES
    email: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # The dashboard's settings for this user: theme, camera layout, saved filters.
    preferences: Mapped[dict[str, Any] | None] = mapped_column(default=dict)

    # Names are unique regardless of case ("Admin" cannot pose as "admin"), also between concurrent inserts.
    __table_args__ = (Index("uq_users_name_lower", func.lower(name), unique=True),)


class ApiKey(Base):
    """A key is shown once; only its SHA-256 is kept (keys are long random strings, so no slow hash is needed)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to recognise it in lists
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # never above its user's role
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class LoginSession(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))

    user: Mapped[User] = relationship()


class Upload(Base):
    """A media file received by ``POST /upload`` (the API's ``media`` resource), kept in the artefact store."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), unique=True)  # the safe stored name
    # Its address in the artefact store (artefacts.py); None only for an upload from before the store whose
    # file was gone when the server adopted the uploads folder's files.
    artefact: Mapped[str | None] = mapped_column(String(80), index=True)
    original_name: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    media_type: Mapped[str] = mapped_column(String(10))  # image, audio, video
    content_type: Mapped[str | None] = mapped_column(String(100))
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Job(Base):
    """A queued unit of work. ``lease_token`` changes at every claim, so only the current runner can finish it."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_available", "state", "available_at"),)

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # handler name, e.g. "analyze"
    media_type: Mapped[str | None] = mapped_column(String(20))  # seed 000's word: image_file, video_file...
    state: Mapped[str] = mapped_column(String(20), default="pending")  # one of JOB_STATES
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # percent
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    callback_url: Mapped[str | None] = mapped_column(Text)
    notify: Mapped[bool] = mapped_column(Boolean, default=False)
    analysis_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Analysis(Base):
    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4 hex with dashes
    source: Mapped[str] = mapped_column(Text)  # the path or URL as the client named it
    # Where the media was read on this machine (None for URLs): what feedback export cuts clips from.
    media_path: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(String(10))
    media_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(40), default="local")
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    duration_s: Mapped[float | None] = mapped_column(Float)
    crime_detected: Mapped[bool] = mapped_column(Boolean)
    crime_type: Mapped[str | None] = mapped_column(String(100))
    max_severity: Mapped[int | None] = mapped_column(Integer)
    camera: Mapped[str | None] = mapped_column(String(100), index=True)
    result: Mapped[dict[str, Any]]  # the whole AnalysisResult as JSON
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    incidents: Mapped[list[IncidentRecord]] = relationship(
        back_populates="analysis", cascade="all, delete-orphan", passive_deletes=True
    )


class IncidentRecord(Base):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(60), index=True)
    category_name: Mapped[str] = mapped_column(String(100))
    severity: Mapped[int] = mapped_column(Integer, index=True)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="open")  # one of INCIDENT_STATES
    t_start_s: Mapped[float] = mapped_column(Float)
    t_end_s: Mapped[float] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    requires_immediate_action: Mapped[bool] = mapped_column(Boolean)
    camera: Mapped[str | None] = mapped_column(String(100), index=True)
    zone: Mapped[str | None] = mapped_column(String(100))
    modalities: Mapped[list[Any]]
    data: Mapped[dict[str, Any]]  # the whole Incident as JSON
    status_note: Mapped[str | None] = mapped_column(Text)
    status_changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who follows the incident up. No ON DELETE action: SQLite reflects none on a column added later (0006),
    # and users are disabled, never deleted.
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    analysis: Mapped[Analysis] = relationship(back_populates="incidents")
    detections: Mapped[list[DetectionRecord]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", passive_deletes=True
    )


class EvidenceReference(Base):
    """An object in the artefact store that a live incident's evidence names (kind: snapshot, weapon, clip,
    audio), kept in step with the incident's JSON (``references.name_evidence``): whether any incident still
    names an address is then an index look-up, not a read of every incident's JSON."""

    __tablename__ = "evidence_references"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    address: Mapped[str] = mapped_column(String(80), index=True)


class DetectionRecord(Base):
    """A detection that supports an incident (its evidence), kept queryable beside the incident's JSON."""

    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    analyzer: Mapped[str] = mapped_column(String(40))
    modality: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(100), index=True)
    score: Mapped[float] = mapped_column(Float)
    contribution: Mapped[float] = mapped_column(Float)
    t_start_s: Mapped[float] = mapped_column(Float)
    t_end_s: Mapped[float] = mapped_column(Float)
    box_xywh_norm: Mapped[list[Any] | None]

    incident: Mapped[IncidentRecord] = relationship(back_populates="detections")


class Delivery(Base):
    """The outbox: one message to send (a job webhook, later alerts), retried with backoff until delivered.

    ``dedupe_key`` makes enqueueing idempotent: a job's webhook is enqueued
    in the same transaction that finishes the job, once.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(40))  # sender name, e.g. "webhook"
    target: Mapped[str] = mapped_column(Text)  # URL, address, topic...
    event: Mapped[str] = mapped_column(String(60))  # e.g. "job.finished"
    payload: Mapped[dict[str, Any]]
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # one of DELIVERY_STATES
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", cascade="all, delete-orphan", passive_deletes=True, order_by="DeliveryAttempt.id"
    )


class DeliveryAttempt(Base):
    """The delivery log: every try, its outcome and how long it took."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)

    delivery: Mapped[Delivery] = relationship(back_populates="log")


class AuditEntry(Base):
    """Who changed what, and when. Written in the same transaction as the change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(String(100))  # kept when the user is gone
    via: Mapped[str] = mapped_column(String(20))  # "api_key", "session", "cli", "system"
    action: Mapped[str] = mapped_column(String(60), index=True)  # e.g. "incident.status", "user.create"
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(80))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


class CameraRecord(Base):
    """A camera added through the API (those of the settings file live there); it survives restarts."""

    __tablename__ = "cameras"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict[str, Any]]  # the CameraSettings as JSON
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CameraWorker(Base):
    """A running ``watchkeeper camera-worker``; its heartbeat says it is alive (for the fair share of cameras)."""

    __tablename__ = "camera_workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # random per process: its leases' owner token
    host: Mapped[str] = mapped_column(String(255))  # host name and process id, for people
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class CameraLease(Base):
    """Which worker watches a camera (of the settings file or of the database) until when.

    No foreign keys: a worker that died keeps its rows until they expire and another takes them over.
    """

    __tablename__ = "camera_leases"

    camera: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))  # CameraWorker.id; None: free
    host: Mapped[str | None] = mapped_column(String(255))
    acquired_at: Mapped[datetime | None]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    health: Mapped[dict[str, Any] | None]  # the camera's health at the last renewal


class SigningSecret(Base):
    """A secret every process of a deployment must share (``links``: the key of signed links), kept here so that
    workers on other hosts sign what the API checks (``auth.links.shared_secret``)."""

    __tablename__ = "signing_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
