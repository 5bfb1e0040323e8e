"""Request and response models of the API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field, model_validator

from ..store.models import INCIDENT_STATES, ROLES, USER_STATES

T = TypeVar("T")

Role = Literal[ROLES]  # type: ignore[valid-type]
UserState = Literal[USER_STATES]  # type: ignore[valid-type]
IncidentState = Literal[INCIDENT_STATES]  # type: ignore[valid-type]
MediaTypeName = Literal["image", "audio", "video"]
# Row ids are 32-bit on PostgreSQL: larger numbers are refused at the door instead of failing in the database.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


class Strict(BaseModel):
    """Request bodies: unknown fields are an error, so a misspelt option is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# -- seed 000's paths ---------------------------------------------------------------------------------
class AnalyzeOptions(Strict):
    provider: str | None = Field(None, max_length=40, description="A name from GET /providers; default: the default.")
    run_async: bool = Field(False, alias="async", description="Queue a job and answer with its id at once.")
    callback_url: str | None = Field(
        None, max_length=2000, description="http(s) URL that receives the job's final body (async only)."
    )
    notify: bool = Field(False, description="E-mail the notification recipients when a crime is detected.")
    camera: str | None = Field(None, max_length=100, description="Camera name stored with the analysis.")


class ImagePathRequest(AnalyzeOptions):
    image_path: str = Field(min_length=1, max_length=1000, examples=["uploads/suspect_image.png"])


class ImageUrlRequest(AnalyzeOptions):
    image_url: str = Field(min_length=1, max_length=2000, examples=["https://example.com/activity.jpg"])


class AudioRequest(AnalyzeOptions):
    audio_path: str = Field(min_length=1, max_length=1000, examples=["uploads/suspicious_audio.mp3"])


class VideoRequest(AnalyzeOptions):
    video_path: str = Field(min_length=1, max_length=1000, examples=["uploads/security_footage.mp4"])
    frame_interval: float = Field(5.0, gt=0, le=3600, description="Seconds between analysed frames.")
    run_async: bool = Field(True, alias="async", description="Video is asynchronous by default.")


EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$", max_length=254)]


class NotifyRequest(Strict):
    detection_result: dict[str, Any] = Field(description="A detection result (seed 000's flat fields).")
    media_path: str | None = Field(None, max_length=1000, description="Media attached for context.")
    recipients: list[EmailAddress] | None = Field(
        None, min_length=1, max_length=50,
        description="Addresses; default: notification.default_recipients. Only admins may name others.",
    )


class Queued(BaseModel):
    status: Literal["queued"]
    job_id: str
    media_type: str = Field(description="image_file, image_url, audio_file or video_file.")
    timestamp: datetime


class LegacyAnalysis(BaseModel):
    """Seed 000's flat fields, the request's path field, and every field of the full analysis result."""

    model_config = ConfigDict(extra="allow")

    crime_detected: bool
    crime_type: str | None
    confidence: Literal["low", "medium", "high"]
    evidence_description: str
    timestamp: datetime
    source: str = "api"
    provider: str
    analysis_id: str


class LegacyJob(BaseModel):
    """``pending`` (queued or running), ``success`` with the full result, or ``error`` with a message."""

    model_config = ConfigDict(extra="allow")

    status: Literal["pending", "success", "error"]
    job_id: str


class Upload(BaseModel):
    status: Literal["success"]
    file_path: str
    filename: str
    media_type: MediaTypeName
    size_bytes: int
    sha256: str


class Health(BaseModel):
    status: Literal["healthy", "unhealthy"]
    timestamp: datetime
    version: str | None = Field(None, description="Shown to signed-in users only.")
    providers: list[str] | None = None
    notification_enabled: bool | None = None
    database: str | None = None
    jobs: dict[str, int] | None = None
    alert_channels: dict[str, dict[str, Any]] | None = Field(
        None, description="Per alert channel: failing (its last attempts all failed), waiting, last delivery, last error.")


class Providers(BaseModel):
    providers: list[str]
    default_provider: str


class NotifySent(BaseModel):
    status: Literal["sent", "queued"] = Field(description="queued: the first attempt failed or is slow; it is retried.")
    recipients: list[str]
    crime_type: str | None
    severity: str | None
    timestamp: datetime


# -- accounts -------------------------------------------------------------------------------------------
class UserOut(Out):
    id: int
    name: str
    role: Role
    state: UserState
    email: str | None
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=1024)
    role: Role = "viewer"
    email: str | None = Field(None, max_length=255)


class UserUpdate(Strict):
    role: Role


class Register(Strict):
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=1024)
    email: str | None = Field(None, max_length=255)


class Login(Strict):
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send it back as X-CSRF-Token on every POST, PATCH and DELETE.")
    expires_at: datetime


class Me(BaseModel):
    user: UserOut | None
    role: Role = Field(description="The role this request acts in (an API key's role may be below its user's).")
    via: str
    key_id: int | None
    session_id: int | None


class SessionOut(Out):
    id: int
    user_id: int
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    ip: str | None
    user_agent: str | None
    current: bool = False


class KeyCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    role: Role | None = Field(
        None, description="Default: the lower of the owner's and the caller's role; never above either."
    )
    user_id: RowId | None = Field(None, description="Owner (admins only); default: the caller.")


class KeyOut(Out):
    id: int
    user_id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, only its hash is kept.")


# -- media, analyses, incidents, jobs ---------------------------------------------------------------------
class MediaOut(Out):
    id: int
    filename: str
    original_name: str
    size_bytes: int
    sha256: str
    media_type: MediaTypeName
    content_type: str | None
    uploaded_by: int | None
    created_at: datetime

    @computed_field(description="The path analyse requests name it by.")  # type: ignore[prop-decorator]
    @property
    def file_path(self) -> str:
        return f"uploads/{self.filename}"


class SignedLink(BaseModel):
    url: str = Field(description="Path and query to append to the server's address.")
    expires_at: datetime


class AnalysisSubmit(Strict):
    source: str = Field(min_length=1, max_length=2000, description="A path inside a media root, or an http(s) URL.")
    media_type: MediaTypeName | None = Field(None, description="Default: detected from the content.")
    frame_interval_s: float | None = Field(None, gt=0, le=3600)
    provider: str | None = Field(None, max_length=40)
    camera: str | None = Field(None, max_length=100)
    callback_url: str | None = Field(None, max_length=2000)
    notify: bool = False


class AnalysisSummary(Out):
    id: str
    source: str
    media_type: str
    provider: str
    crime_detected: bool
    crime_type: str | None
    max_severity: int | None
    camera: str | None
    duration_s: float | None
    job_id: str | None
    created_by: int | None
    created_at: datetime


class AnalysisOut(AnalysisSummary):
    result: dict[str, Any]


class IncidentOut(Out):
    id: int
    analysis_id: str
    category: str
    category_name: str
    severity: int
    confidence: float
    status: IncidentState
    t_start_s: float
    t_end_s: float
    summary: str
    requires_immediate_action: bool
    camera: str | None
    zone: str | None
    modalities: list[str]
    status_note: str | None
    status_changed_by: int | None
    assigned_to: int | None = Field(description="The user who follows the incident up.")
    created_at: datetime
    updated_at: datetime


class IncidentDetail(IncidentOut):
    data: dict[str, Any] = Field(description="The whole incident: evidence per modality, boxes, report fields.")
    assigned_to_name: str | None = None
    evidence_files: list[Literal["snapshot", "weapon", "clip", "audio"]] = Field(
        default_factory=list, description="The live evidence kept for it (GET .../evidence/{kind}).")


class IncidentUpdate(Strict):
    status: IncidentState | None = None
    note: str | None = Field(None, max_length=4000, description="Kept with the status, and in the audit log.")
    assigned_to: RowId | None = Field(None, description="An active operator or admin; null unassigns.")

    @model_validator(mode="after")
    def _changes_something(self) -> IncidentUpdate:
        if self.status is None and "assigned_to" not in self.model_fields_set:
            raise ValueError("give a status, an assignee (assigned_to), or both")
        return self


class IncidentHistoryEntry(Out):
    """A change to an incident, from the audit log."""

    at: datetime
    actor_name: str
    action: str
    details: dict[str, Any]


class AssignableUser(Out):
    id: int
    name: str
    role: Role


class Stats(BaseModel):
    since: datetime | None
    until: datetime | None
    analyses: int
    crimes_detected: int
    incidents: int
    incidents_by_category: dict[str, int]
    incidents_by_status: dict[str, int]
    incidents_by_severity: dict[str, int]
    incidents_by_day: dict[str, int] = Field(description="UTC day (YYYY-MM-DD) -> incidents created.")
    incidents_by_camera: dict[str, int] = Field(
        description="Camera name -> incidents; those of uploaded files (no camera) under the empty string.")
    jobs_by_state: dict[str, int]


class AuditOut(Out):
    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    via: str
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None


class ProviderOut(BaseModel):
    name: str
    type: str = Field(description="local, gemini, openai, anthropic, groq, replicate, huggingface, ollama or "
                                  "openai_compatible.")
    vision: bool = Field(description="Whether it is sent pictures (the local pipeline sees them itself).")
    fast_model: str | None = None
    detailed_model: str | None = None


class ProviderList(BaseModel):
    providers: list[ProviderOut]
    default_provider: str
    order: list[str] = Field(description="The providers an analysis tries, in turn, when it names none.")
    verifier: str | None = Field(description="Who re-judges findings: a provider, local (the evidence) or null.")
    local_llm_size: str | None



class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class ModelOut(BaseModel):
    name: str
    description: str
    optional: bool = Field(description="Whether the pipeline runs without it (an extra the site may install).")
    installed: bool = Field(description="Whether its weights are in place (hashes checked); not loaded to find out.")
    source: str | None = Field(None, description="Where its weights come from; admins only (it may name a folder).")
    status: str | None = Field(None, description="'ok', or why it is not usable; admins only (it may name a folder).")


class ModelCardOut(BaseModel):
    model: str
    category: str
    trained_at: str | None = None
    data: str | None = None
    metrics: str | None = Field(None, description="Cross-validated figures from training.")
    threshold: str | None = None
    summary: str | None = None
    error: str | None = Field(None, description="Why the model could not be read; admins only.")


class ModelList(BaseModel):
    models: list[ModelOut]
    cards: list[ModelCardOut] = Field(default_factory=list, description="Model cards of the models trained here.")
