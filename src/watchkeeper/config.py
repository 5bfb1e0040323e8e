"""Settings: one pydantic model, loaded from a file, a ``.env`` file and the environment.

Precedence, lowest first: defaults, the settings file (YAML, TOML or JSON,
seed 000's ``config.json`` included), ``.env``, then environment variables.
Environment variables are ``WATCHKEEPER_<KEY>`` with ``__`` between nested
sections (``WATCHKEEPER_MEDIA__FRAME_INTERVAL_S=2``); the seeds' own names
(``GEMINI_API_KEY``, ``VENUE_CAPACITY``...) are accepted where they mean the
same thing. Unknown keys and bad values raise ``ConfigError`` naming the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .logging_setup import LogFormat
from .taxonomy import BUILTIN_IDS

ENV_PREFIX = "WATCHKEEPER_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MediaSettings(Section):
    max_bytes: int = Field(2 * 1024**3, gt=0, description="Largest input file or download.")
    max_image_pixels: int = Field(60_000_000, gt=0, description="Decompression-bomb guard.")
    max_video_pixels: int = Field(8_294_400, gt=0, description="Largest video frame (4K by default).")
    max_duration_s: float = Field(4 * 3600.0, gt=0)
    frame_interval_s: float = Field(1.0, gt=0, description="Seconds between analysed video frames.")
    max_frames: int = Field(
        3600, gt=0,
        description="Upper bound on sampled frames per video, over all its chunks (it bounds analysis time; "
        "chunk_s bounds memory), so chunking never changes which frames are analysed.",
    )
    motion_fps: float = Field(8.0, gt=0, description="Rate of the small greyscale frames for optical flow.")
    motion_width: int = Field(160, ge=32)
    chunk_s: float = Field(
        60.0, gt=0,
        description="Videos longer than this are decoded and analysed in consecutive chunks of this length, "
        "bounding memory by the chunk, not the file; a remainder under a quarter chunk joins the last chunk.",
    )
    url_timeout_s: float = Field(20.0, gt=0)


class ModelSettings(Section):
    weights_dirs: dict[str, Path] = Field(
        default_factory=dict, description="Per-model folder that replaces the packaged weights."
    )
    verify_sha256: bool = True
    onnx_device: Literal["cpu", "cuda"] = Field(
        "cpu", description="Where the onnxruntime models (YOLOv3-tiny, YAMNet, MiniLM, RapidOCR) run. cuda: on the "
        "CUDA provider when the installed onnxruntime has it (onnxruntime-gpu, the GPU image), else on the CPU with a "
        "warning.")


class ObjectsSettings(Section):
    enabled: bool = True
    min_score: float = Field(0.25, ge=0, le=1)
    nms_iou: float = Field(0.45, ge=0, le=1)
    input_size: int = Field(416, ge=128, multiple_of=32)
    labels: list[str] = Field(
        default_factory=lambda: [
            "person", "knife", "scissors", "baseball_bat", "bottle", "backpack", "handbag", "suitcase",
            "umbrella", "cell_phone", "laptop", "car", "truck", "bus", "motorcycle", "bicycle", "train", "dog",
        ],
        description="COCO classes (underscores for spaces) reported; others are dropped.",
    )
    batch_size: int = Field(1, ge=1, description="Frames per network pass (batching measured slower on CPU).")
    zoom_out_images: bool = Field(
        True, description="Also run still images shrunk into a larger canvas: YOLOv3-tiny misses close-ups."
    )


class PoseSettings(Section):
    enabled: bool = True
    min_visibility: float = Field(0.5, ge=0, le=1)
    max_people: int = Field(6, ge=1, description="Person boxes per frame given to the pose model, largest first.")
    crop_margin: float = Field(
        0.1, ge=0, le=1, description="Margin around a person box (fraction of its longer side) in its square crop."
    )
    min_person_px: int = Field(32, ge=8, description="Person boxes shorter than this (pixels) are skipped.")
    # Seed 001's wrist/head/torso cues, in body heights per second relative to the body (wrist to
    # shoulder, nose to shoulders, shoulders to hips). At a 0.5 s frame interval seed 001's
    # 0.15/0.08/0.05 fired on a third to a half of the calm dev clips; these on 8-14% (0-1% at 1 s).
    wrist_speed_threshold: float = Field(0.5, gt=0)
    head_movement_threshold: float = Field(0.25, gt=0)
    torso_change_threshold: float = Field(0.4, gt=0)
    fall_drop_speed: float = Field(0.3, gt=0, description="Head or hip drop (body heights per second) of a fall.")
    max_pair_interval_s: float = Field(
        2.0, gt=0, description="Longest gap between two sampled frames compared for a fall or a sudden movement."
    )


class MotionSettings(Section):
    enabled: bool = True
    window_s: float = Field(1.0, gt=0, description="Length of the windows flow statistics are pooled over.")
    moving_speed: float = Field(
        0.03, gt=0, description="Flow speed (frame widths per second) above which a pixel counts as moving."
    )
    energy_scale: float = Field(
        0.04, gt=0, description="Mean flow speed (frame widths per second) at which motion:energy scores 0.63."
    )
    burst_scale: float = Field(
        0.04, gt=0,
        description="Mean per-pixel speed change (frame widths per second) at which motion:burst scores 0.63.",
    )
    min_score: float = Field(0.3, ge=0, le=1, description="Windows scoring below this emit no detection.")


class GateSettings(Section):
    """The motion gate: heavy per-frame analyzers skip video frames where nothing changed."""

    enabled: bool = True
    threshold: float = Field(
        0.005, ge=0, le=1, description="Fraction of changed pixels below which a sampled frame is still."
    )


class FireSettings(Section):
    enabled: bool = True
    min_score: float = Field(
        0.2, ge=0, le=1,
        description="Fire score from which a frame emits a fire detection (fusion applies the decision threshold).",
    )
    smoke_min_score: float = Field(
        0.5, ge=0, le=1, description="Smoke score from which a frame emits a smoke detection."
    )


class CrowdSettings(Section):
    enabled: bool = True
    area_m2_per_frame: float | None = Field(None, gt=0, description="Visible floor area, for density per m2.")
    capacity_per_view: int = Field(
        30, ge=1,
        description="People one camera view holds safely. event.venue_capacity is the whole venue's, so it is only "
        "reported against (attribute venue_fraction), never used per view.",
    )
    density_high_ratio: float = Field(
        0.8, gt=0, description="crowd:density_high from this fraction of capacity_per_view."
    )
    max_people_per_m2: float = Field(4.0, gt=0, description="With area_m2_per_frame: people per m2 counted as high.")
    dispersal_min_people: int = Field(3, ge=2, description="People in view before a sudden scatter is a dispersal.")
    dispersal_min_score: float = Field(0.4, ge=0, le=1)
    vehicle_near_gap: float = Field(
        0.5, ge=0, description="Largest gap between a vehicle and a person box, in person heights, counted as near."
    )


class AudioEventsSettings(Section):
    enabled: bool = True
    min_score: float = Field(
        0.3, ge=0, le=1, description="Calibrated group score (0.5 = operating point) that starts an event."
    )


class SpeechSettings(Section):
    enabled: bool = True
    model: Literal["tiny.en", "base"] = "tiny.en"
    language: str | None = Field(
        "en", description="Spoken language for the multilingual model; None detects it (unreliable on short clips)."
    )
    beam_size: int = Field(1, ge=1, le=10, description="1 decodes greedily, about twice as fast as 5.")
    max_compression_ratio: float = Field(2.4, gt=0)
    min_avg_logprob: float = -1.0
    max_no_speech_prob: float = Field(0.6, ge=0, le=1)
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Silero speech probability that counts as speech.")
    distress_keywords: list[str] = Field(
        default_factory=lambda: [
            "help", "help me", "call the police", "police", "stop", "let me go", "get off me",
            "fire", "gun", "he has a gun", "knife", "don't shoot", "ambulance", "call 911",
        ]
    )


class TextSettings(Section):
    enabled: bool = True
    min_similarity: float = Field(0.4, ge=-1, le=1, description="Cosine similarity that scores 0.")
    full_similarity: float = Field(0.7, ge=-1, le=1, description="Cosine similarity that scores 1.")

    @model_validator(mode="after")
    def _similarity_order(self) -> TextSettings:
        if self.full_similarity <= self.min_similarity:
            raise ValueError("full_similarity must be greater than min_similarity")
        return self


class OcrSettings(Section):
    enabled: bool = False
    frame_step: int = Field(5, ge=1, description="Read every Nth sampled video frame.")
    min_score: float = Field(0.6, ge=0, le=1)


class EmotionSettings(Section):
    enabled: bool = False
    min_face_score: float = Field(0.6, ge=0, le=1)
    min_face_px: int = Field(24, ge=8, description="Faces smaller than this (pixels) are not classified.")
    max_faces: int = Field(10, ge=1, description="Faces per frame, largest first.")
    min_score: float = Field(0.5, ge=0, le=1, description="Emotion probability that makes a detection.")
    labels: list[Literal["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]] = Field(
        default_factory=lambda: ["fear", "angry", "surprise", "sad"]
    )


# torch device names the optional transformers analyzers accept.
TORCH_DEVICE_PATTERN = r"^(cpu|cuda(:\d+)?|mps)$"


class SceneSettings(Section):
    """CLIP-style zero-shot scene scores (optional: ``pip install 'watchkeeper[zeroshot]'``)."""

    enabled: bool = False
    model: str = Field(
        "openai/clip-vit-base-patch32", min_length=1,
        description="A folder written by save_pretrained, or a hub name (needs the hub or its local cache).",
    )
    device: str = Field("cpu", pattern=TORCH_DEVICE_PATTERN)
    min_score: float = Field(0.2, ge=0, le=1, description="Smallest per-category probability reported.")
    normal_prompts: list[str] = Field(
        default_factory=lambda: [
            "A photo of an ordinary, calm scene where nothing unusual is happening.",
            "A photo of people walking, standing or talking calmly.",
            "A photo of an empty room, corridor, street or car park.",
            "A portrait photo of a person posing for the camera.",
        ],
        min_length=1,
        description="Sentences for a normal scene; their share of the probability is the 'nothing wrong' mass.",
    )


class CaptionSettings(Section):
    """BLIP-style frame captions (optional: ``pip install 'watchkeeper[zeroshot]'``)."""

    enabled: bool = False
    model: str = Field(
        "Salesforce/blip-image-captioning-base", min_length=1,
        description="A folder written by save_pretrained, or a hub name (needs the hub or its local cache).",
    )
    device: str = Field("cpu", pattern=TORCH_DEVICE_PATTERN)
    max_frames: int = Field(16, ge=1, description="Most frames captioned per video, spread evenly.")
    max_new_tokens: int = Field(30, ge=1, le=200)


class HeadCaptureSettings(Section):
    """Record one extractor's window features in the heads analyzer's output (``watchkeeper train`` sets this)."""

    extractor: str = Field(min_length=1)
    window_s: float | None = Field(None, gt=0, description="Window length; None: the extractor's default.")


class HeadsSettings(Section):
    """Learned heads: small classifiers on feature vectors, trained with ``watchkeeper train``.

    One head per category: a head in ``files`` replaces the shipped head of
    its category, and a camera's head replaces both for that camera.
    """

    enabled: bool = True
    builtin: bool = Field(True, description="Load the heads shipped in the package.")
    files: list[Path] = Field(default_factory=list, description="Head files (JSON) used for every input.")
    cameras: dict[str, list[Path]] = Field(
        default_factory=dict, description="Camera name -> head files used for that camera only."
    )
    extractor_modules: list[str] = Field(
        default_factory=list, description="Python modules to import that register extra feature extractors."
    )
    min_score: float = Field(0.05, ge=0, le=1, description="Window probabilities below this emit no detection.")
    capture: HeadCaptureSettings | None = None


class WeaponsSettings(Section):
    """Handguns, long guns and knives (``watchkeeper.weapons``): windows around people and over the frame."""

    enabled: bool = True
    model: Path | None = Field(
        None, description="Weapon detector file (JSON beside its .npz) from 'watchkeeper train --format yolo'; "
        "default: the one shipped in the package.")
    max_people: int = Field(3, ge=0, description="People searched around per frame, largest first; with more in view, "
                            "a video's frames take turns with the rest (the next ones by size on each frame).")
    min_probability: float = Field(
        0.2, ge=0, le=1, description="Windows below this weapon probability are not reported at all.")
    wrist_reach: float = Field(
        0.12, gt=0, description="A weapon this close to a wrist (person heights) is held by that person.")
    only_with_people: bool = Field(
        False, description="Search only the frames in which the objects analyzer saw someone. Live cameras' "
        "every-window tier does (a held weapon comes with a person, and frames with nobody then cost nothing); "
        "their candidate windows, like files, are searched whole.")


class AnalyzersSettings(Section):
    objects: ObjectsSettings = Field(default_factory=ObjectsSettings)
    weapons: WeaponsSettings = Field(default_factory=WeaponsSettings)
    pose: PoseSettings = Field(default_factory=PoseSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    fire: FireSettings = Field(default_factory=FireSettings)
    crowd: CrowdSettings = Field(default_factory=CrowdSettings)
    audio_events: AudioEventsSettings = Field(default_factory=AudioEventsSettings)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    text: TextSettings = Field(default_factory=TextSettings)
    ocr: OcrSettings = Field(default_factory=OcrSettings)
    emotion: EmotionSettings = Field(default_factory=EmotionSettings)
    scene: SceneSettings = Field(default_factory=SceneSettings)
    caption: CaptionSettings = Field(default_factory=CaptionSettings)
    heads: HeadsSettings = Field(default_factory=HeadsSettings)


class Zone(Section):
    """A polygon (normalised x, y) where some categories matter more (seed 003's zone factor)."""

    name: str
    polygon: list[tuple[float, float]] = Field(min_length=3)
    categories: list[str] = Field(default_factory=list)
    factor: float = Field(1.5, gt=0)
    restricted: bool = Field(False, description="A person standing here is evidence of intrusion.")


class TimeFactor(Section):
    """Scale categories between two local times, e.g. intrusion after hours."""

    start: str = Field(pattern=r"^\d{2}:\d{2}$")
    end: str = Field(pattern=r"^\d{2}:\d{2}$")
    categories: list[str] = Field(default_factory=list)
    factor: float = Field(1.3, gt=0)


class FusionSettings(Section):
    window_s: float = Field(2.0, gt=0)
    merge_gap_s: float = Field(1.0, ge=0)
    thresholds: dict[str, float] = Field(default_factory=dict, description="Per-category decision thresholds.")
    weights: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Evidence label -> {category: weight}, on top of the packaged rules."
    )
    agreement_bonus: float = Field(0.1, ge=0, le=1)
    min_confidence: float = Field(0.0, ge=0, le=1)
    high_priority_severity: int = Field(4, ge=1, le=5)
    zones: list[Zone] = Field(default_factory=list)
    time_factors: list[TimeFactor] = Field(default_factory=list)


class EventSettings(Section):
    """Seed 004's event settings."""

    type: str = "general"
    venue_capacity: int | None = Field(None, gt=0)
    security_level: Literal["low", "medium", "high", "maximum"] = "medium"


class CacheSettings(Section):
    enabled: bool = True
    max_entries: int = Field(10_000, gt=0)
    max_bytes: int = Field(512 * 1024**2, gt=0)


class ProviderSettings(Section):
    """A model provider. Its ``type`` defaults to its name in ``providers`` (gemini, openai, anthropic, groq,
    replicate, huggingface, ollama, openai_compatible)."""

    type: str | None = None
    api_key: str | None = None
    model: str | None = Field(None, description="Both tiers' model, unless fast_model or detailed_model say otherwise.")
    fast_model: str | None = Field(None, description="The quick model (seed 001's 8B): live windows, first looks.")
    detailed_model: str | None = Field(None, description="The careful model (seed 001's 70B): reports, severe cases.")
    base_url: str | None = Field(None, description="The endpoint, for on-premise servers and proxies.")
    vision: bool | None = Field(None, description="Whether the models take images; default: known per provider.")
    audio: bool | None = Field(None, description="Whether the models take sound; default: known per provider.")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10, description="Retries after a 429, a 5xx or a timeout, with backoff.")
    requests_per_minute: float | None = Field(None, gt=0, description="This provider's rate limit, if any.")
    max_concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    input_usd_per_mtok: float | None = Field(None, ge=0, description="Price per million input tokens, if known.")
    output_usd_per_mtok: float | None = Field(None, ge=0, description="Price per million output tokens, if known.")


class DecisionRules(Section):
    """What a second opinion does to a finding."""

    require_agreement_from_severity: int = Field(
        4, ge=1, le=6, description="Findings this severe need the verifier to agree (6: never required)."
    )
    on_disagreement: Literal["downgrade", "keep", "dismiss"] = Field(
        "downgrade", description="downgrade: severity one lower and marked disputed; dismiss: no incident."
    )


class ReasoningSettings(Section):
    """The optional model layer on top of the local pipeline, and the incident reports."""

    order: list[str] = Field(
        default_factory=list, description="Providers to try in turn when one fails; default: the default, then the rest."
    )
    verifier: str | None = Field(
        "local", description="Who re-judges a finding: a provider's name, 'local' (local evidence), or null (nobody)."
    )
    rules: DecisionRules = Field(default_factory=DecisionRules)
    local_llm_size: Literal["tiny", "medium", "large"] | None = Field(
        None, description="Seed 000: use the on-premise provider's model of this size (local_models)."
    )
    local_provider: str = Field("ollama", description="The provider that local_llm_size picks models from.")
    local_models: dict[Literal["tiny", "medium", "large"], str] = Field(
        default_factory=lambda: {"tiny": "llama3.2:1b", "medium": "llama3.1:8b", "large": "llama3.3:70b"}
    )
    operator_prompt: str = Field("", description="What counts as suspicious at this site; goes into every prompt.")
    max_frames: int = Field(4, ge=0, le=16, description="Pictures sent to a vision model per analysis.")
    detailed_from_severity: int = Field(4, ge=1, le=6, description="Use the detailed model from this severity on.")
    report_with_provider: bool = Field(True, description="Let the provider write the reports' sections.")


class NotificationSettings(Section):
    """Seed 000's ``notification`` block."""

    smtp_server: str | None = None
    port: int = Field(465, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    sender_email: str | None = None
    default_recipients: list[str] = Field(default_factory=list)
    notify_threshold: Literal["low", "medium", "high"] = "medium"


def _comma_list(value: Any) -> Any:
    """A list from the environment arrives as one string: ``a@x.org, b@x.org``."""
    return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


class SmtpSettings(Section):
    """Alert e-mail through an SMTP server (seed 003's ``MAIL_*`` names; seed 000's ``notification`` too)."""

    host: str | None = None
    port: int = Field(465, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    sender: str | None = Field(None, description="The From address (seed 003's ALERT_FROM_EMAIL).")
    security: Literal["auto", "ssl", "starttls", "none"] = Field(
        "auto", description="auto: TLS from the first byte on port 465, STARTTLS elsewhere when offered.")
    timeout_s: float = Field(20.0, gt=0)


class TwilioSettings(Section):
    account_sid: str | None = None
    auth_token: str | None = None
    from_number: str | None = Field(None, description="The sending number (seed 003's TWILIO_FROM).")
    api_base: str = "https://api.twilio.com"


class ResendSettings(Section):
    api_key: str | None = None
    sender: str | None = Field(None, description="The From address (seed 002's ALERT_EMAIL_FROM).")
    api_base: str = "https://api.resend.com"


class MqttSettings(Section):
    """An MQTT broker for events, camera state and Home Assistant discovery; set ``host`` to enable."""

    host: str | None = None
    port: int = Field(1883, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    tls: bool = False
    topic_prefix: str = Field("watchkeeper", pattern=r"^[^#+]+$")
    discovery: bool = Field(True, description="Publish Home Assistant MQTT discovery configs.")
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+]+$")
    client_id: str | None = None
    keepalive_s: int = Field(30, ge=5)


class RecipientGroup(Section):
    """Who hears an alert, on which channels. Lists also take a comma-separated string."""

    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list, description="SMS through Twilio, E.164 numbers.")
    resend: list[str] = Field(default_factory=list, description="E-mail addresses reached through Resend.")
    apprise: list[str] = Field(default_factory=list, description="Apprise URLs: slack://, discord://, ntfy://...")
    webhooks: list[str] = Field(default_factory=list, description="URLs that get the alert as signed JSON.")
    mqtt: bool = Field(False, description="Publish the alert to the MQTT broker.")
    hooks: list[str] = Field(default_factory=list, description="Python callables, 'module:function'.")

    _lists = field_validator("emails", "phones", "resend", "apprise", "webhooks", "hooks", mode="before")(
        _comma_list)


class AlertRoute(Section):
    """Which incidents go to which groups: all conditions must hold (an empty list matches anything)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    groups: list[str] = Field(min_length=1)
    min_severity: int = Field(1, ge=1, le=5)
    categories: list[str] = Field(default_factory=list)
    cameras: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    between: tuple[str, str] | None = Field(
        None, description="Local times [start, end) when the route applies, e.g. ['22:00', '06:00'].")

    @field_validator("between")
    @classmethod
    def _clock_times(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        for text in value or ():
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
                raise ValueError(f"'{text}' is not a time of day HH:MM")
        return value


class QuietHours(Section):
    """Between ``start`` and ``end`` (local time) only incidents of ``min_severity`` and above are sent."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    min_severity: int = Field(4, ge=1, le=5)


class EscalationSettings(Section):
    """Re-notify ``groups`` when an incident this severe is still unacknowledged after ``after_minutes``."""

    after_minutes: float = Field(10.0, gt=0)
    min_severity: int = Field(4, ge=1, le=5)
    groups: list[str] = Field(min_length=1)


class AlertSettings(Section):
    groups: dict[str, RecipientGroup] = Field(default_factory=dict)
    routes: list[AlertRoute] = Field(default_factory=list)
    quiet_hours: QuietHours | None = None
    escalation: EscalationSettings | None = None
    email: SmtpSettings | None = None
    twilio: TwilioSettings | None = None
    resend: ResendSettings | None = None
    hooks: list[str] = Field(default_factory=list, description="'module:function' callables for every alert.")
    ack_link_ttl_h: float = Field(72.0, gt=0, description="How long the acknowledge link in an alert works.")

    @model_validator(mode="after")
    def _group_references(self) -> AlertSettings:
        named = [(f"alerts.routes.{r.name}", g) for r in self.routes for g in r.groups]
        named += [("alerts.escalation", g) for g in (self.escalation.groups if self.escalation else [])]
        for key, group in named:
            if group not in self.groups:
                raise ValueError(f"{key}: unknown group '{group}'; defined: {sorted(self.groups)}")
        return self


class CategoryDef(Section):
    """A user-defined category (or an override of a built-in one's text)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    description: str = Field(min_length=10)
    default_severity: int = Field(3, ge=1, le=5)


class ServerSettings(Section):
    """``watchkeeper serve``: the REST API, its job workers, deliveries and accounts."""

    host: str = "127.0.0.1"
    port: int = Field(5000, gt=0, lt=65536)
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    media_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose files '*_path' request fields may name, besides the uploads folder.",
    )
    upload_max_bytes: int = Field(1024**3, gt=0, description="Largest accepted upload.")
    allowed_private_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs that URL fetches and webhooks may reach although private, loopback or link-local.",
    )
    job_workers: int = Field(1, ge=0, description="Analysis job threads in the server process (0: none).")
    job_lease_s: float = Field(
        60.0, gt=0, description="A running job's claim lapses this long after its worker's last heartbeat."
    )
    job_max_attempts: int = Field(3, ge=1, description="Runs of a job before it fails for good (crashes included).")
    job_retry_delay_s: float = Field(
        5.0, ge=0, description="Wait before a crashed job runs again; doubles with each further attempt."
    )
    job_shutdown_grace_s: float = Field(
        20.0, ge=0, description="On SIGTERM, running jobs get this long to finish; the rest go back to the queue "
        "at once, for another worker. Keep it below the orchestrator's stop timeout."
    )
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per minute per API key or session.")
    rate_limit_burst: int = Field(60, ge=1)
    login_attempts_per_minute: int = Field(
        10, ge=1, description="Failed logins per minute per address and name (ten times as many per address)."
    )
    self_registration: bool = Field(False, description="Let people register; they become viewers pending approval.")
    session_ttl_h: float = Field(12.0, gt=0)
    webhook_secret: str | None = Field(None, description="Key of the X-Watchkeeper-Signature HMAC-SHA256.")
    webhook_timeout_s: float = Field(10.0, gt=0)
    delivery_max_attempts: int = Field(8, ge=1)
    delivery_backoff_s: float = Field(2.0, gt=0, description="First retry delay; doubles per attempt.")
    delivery_backoff_max_s: float = Field(600.0, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    metrics_public: bool = Field(
        False, description="Serve GET /metrics without credentials (a scraper on a trusted network); "
        "otherwise it needs an API key (Authorization: Bearer KEY) or a signed-in user.")


class EventsSettings(Section):
    """The live event feed across ``watchkeeper serve`` replicas (several behind one load balancer)."""

    backend: Literal["local", "postgres", "redis"] = Field(
        "local", description="local: this process only; postgres: LISTEN/NOTIFY on the database (or url); "
        "redis: pub/sub on url. Every replica of a site needs the same backend, url and channel.")
    url: str | None = Field(None, description="The broker: redis://host:6379/0, or a PostgreSQL URL "
                            "(default: database_url).")
    channel: str = Field("watchkeeper_events", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest wait between attempts to reconnect.")


class CelerySettings(Section):
    """The job queue on Celery (``queue: celery``): the broker wakes ``watchkeeper worker`` processes."""

    broker_url: str | None = Field(
        None, description="redis://host:6379/0 or amqp://user:password@host:5672// (RabbitMQ).")


class LocalArtefactSettings(Section):
    path: Path | None = Field(
        None, description="The folder; a network folder that every host mounts when there are several. "
        "Default: <data_dir>/artefacts.")


class S3ArtefactSettings(Section):
    """A bucket of S3-compatible object storage (AWS S3, MinIO, Ceph, Garage, R2...)."""

    bucket: str | None = Field(None, description="The bucket; it must exist.")
    prefix: str = Field("watchkeeper/", description="Keys start with this (several sites may share a bucket).")
    endpoint_url: str | None = Field(None, description="The service's URL (MinIO: http://minio:9000); default AWS.")
    region: str | None = Field(None, description="The bucket's region; default from AWS_REGION or the AWS config.")
    access_key_id: str | None = Field(
        None, description="Default: AWS's own chain (AWS_ACCESS_KEY_ID..., ~/.aws, an instance or pod role).")
    secret_access_key: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="path: http://host/bucket/key, as most self-hosted services want.")


class ArtefactSettings(Section):
    """Where uploads and live incidents' evidence are kept, once each by content hash, for every host to reach."""

    backend: Literal["local", "s3"] = Field(
        "local", description="local: a folder (local.path); s3: S3-compatible object storage (s3.bucket).")
    local: LocalArtefactSettings = Field(default_factory=LocalArtefactSettings)
    s3: S3ArtefactSettings = Field(default_factory=S3ArtefactSettings)
    cache_dir: Path | None = Field(
        None, description="Where s3 artefacts are copied for tools that read files; default <data_dir>/artefact-cache.")
    cache_max_gb: float = Field(5.0, gt=0, description="The cache's size; the least recently used copies go first.")

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> ArtefactSettings:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError("artefacts.backend s3 needs artefacts.s3.bucket")
        return self


class LoggingSettings(Section):
    format: LogFormat = Field(
        "text", description="json: each log line one JSON object (time, level, logger, message, the extra fields).")


PROVIDER_NAMES = ("gemini", "openai", "anthropic", "groq", "replicate", "huggingface", "ollama")


class AlertGateSettings(Section):
    """Seed 002's stability logic for live cameras (``live.gate``): when per-window incidents become one alert."""

    min_confidence: float = Field(0.75, ge=0, le=1, description="Weaker incidents do not count as support.")
    consecutive: int = Field(2, ge=1, description="Supporting windows in a row that open an incident.")
    cooldown_s: float = Field(8.0, ge=0, description="Seconds without support that close an open incident.")
    update_every_s: float = Field(5.0, ge=0, description="Least time between two updates of an open incident.")


class CameraSettings(Section):
    """One live source: a file, a webcam, or an RTSP/RTMP/HTTP(S) stream."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Id in URLs, topics and files.")
    source: str = Field(min_length=1, description="File path, device index or path (0, /dev/video0), or URL.")
    location: str = Field("", description="Where it looks, in words (the alert's location).")
    enabled: bool = True
    loop: bool = Field(False, description="Files: start again at the end.")
    realtime: bool = Field(True, description="Files: play at their own pace, as a camera would.")
    analysis_interval_s: float | None = Field(
        None, gt=0, description="Seconds between analysed windows; default media.frame_interval_s."
    )
    analysis_weight: float = Field(
        1.0, gt=0, description="This camera's share of the analysis time when cameras compete (2 = twice the share)."
    )
    gate: AlertGateSettings | None = Field(None, description="This camera's alert gate; default live.gate.")
    privacy_mode: bool = Field(False, description="Store no pictures or sound: incidents and their metadata only.")
    record: bool | None = Field(None, description="Record continuously; default live.recording.enabled.")
    zones: list[Zone] | None = Field(None, description="This camera's zones (its own picture); default fusion.zones.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Per-category thresholds for this camera.")
    microphone: str | None = Field(
        None, description="A separate sound source: an ALSA device (hw:1,0), pulse:NAME, or a file or URL."
    )


class EvidenceSettings(Section):
    """What is kept of each live incident: a snapshot with its boxes, a clip and the sound around it."""

    pre_event_s: float = Field(5.0, ge=0, description="Seconds of clip and sound before the incident starts.")
    post_event_s: float = Field(10.0, ge=0, description="Seconds after it opens.")
    jpeg_quality: int = Field(85, ge=1, le=100, description="Snapshots and clip frames (seed 004's FRAME_QUALITY).")
    clip_fps: float = Field(8.0, gt=0, le=30)
    clip_width: int = Field(640, ge=64, description="Clips are scaled down to this width at most.")
    max_age_days: float = Field(90.0, gt=0, description="Evidence older than this is deleted.")
    max_total_gb: float = Field(10.0, gt=0, description="All incidents' evidence together; the oldest goes first.")


class RecordingSettings(Section):
    """Continuous recording of cameras in MP4 segments (the source's packets, not re-encoded), with retention."""

    enabled: bool = Field(False, description="Record every camera (a camera's own 'record' overrides this).")
    segment_s: float = Field(60.0, ge=1, description="A new file at the first keyframe after this long.")
    max_age_h: float = Field(72.0, gt=0, description="Segments older than this are deleted.")
    max_total_gb: float = Field(20.0, gt=0, description="All cameras' segments together; the oldest go first.")
    min_free_gb: float = Field(1.0, ge=0, description="Recording stops (with a health error) below this free space.")


class LeaseSettings(Section):
    """Cameras spread over ``watchkeeper camera-worker`` processes, each camera leased to one at a time in the
    (PostgreSQL) database; ``watchkeeper serve`` then starts no camera itself."""

    enabled: bool = False
    lease_s: float = Field(15.0, gt=0, description="A worker that stops renewing loses its cameras after this long.")
    renew_s: float = Field(5.0, gt=0, description="Seconds between renewals (and heartbeats, and claims).")
    max_cameras: int | None = Field(None, ge=1, description="Cameras one worker watches at most; default: no limit.")

    @model_validator(mode="after")
    def _renewals_fit_in_the_lease(self) -> LeaseSettings:
        # A worker stops watching 2/3 of a lease after its last renewal: a missed renewal gets one more try first.
        if self.renew_s * 3 > self.lease_s:
            raise ValueError("live.leases.renew_s must be at most a third of lease_s")
        return self


class LiveSettings(Section):
    leases: LeaseSettings = Field(default_factory=LeaseSettings)
    gate: AlertGateSettings = Field(default_factory=AlertGateSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    cameras: list[CameraSettings] = Field(default_factory=list)
    window_s: float = Field(2.0, gt=0, description="Media each analysis sees, ending at its moment.")
    buffer_s: float = Field(20.0, gt=0, description="Seconds of recent audio and motion frames kept per camera.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Opening a stream, and each read, give up after this.")
    reconnect_initial_s: float = Field(1.0, gt=0, description="First wait before reconnecting; doubles per failure.")
    reconnect_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _buffer_holds_the_pre_event(self) -> LiveSettings:
        # An incident opens about a window after it starts; its clip then runs post_event_s on.
        needed = self.evidence.pre_event_s + self.window_s + 1.0 + self.evidence.post_event_s
        if self.buffer_s < needed:
            raise ValueError(f"live.buffer_s must be at least {needed:g} s "
                             "(pre- and post-event seconds + window + 1)")
        return self

    @field_validator("cameras")
    @classmethod
    def _unique_names(cls, cameras: list[CameraSettings]) -> list[CameraSettings]:
        names = [c.name for c in cameras]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(repeated)}")
        return cameras


class Settings(Section):
    data_dir: Path = Path("data")
    database_url: str | None = None
    workers: int | None = Field(None, ge=1, description="Batch worker processes; default: one per core.")
    analysis_threads: int | None = Field(
        None, ge=1, description="Analyzers run at once on one input; default: one per core."
    )
    media: MediaSettings = Field(default_factory=MediaSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    analyzers: AnalyzersSettings = Field(default_factory=AnalyzersSettings)
    fusion: FusionSettings = Field(default_factory=FusionSettings)
    event: EventSettings = Field(default_factory=EventSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    default_provider: str = "local"
    reasoning: ReasoningSettings = Field(default_factory=ReasoningSettings)
    notification: NotificationSettings | None = None
    categories: list[CategoryDef] = Field(default_factory=list)
    server: ServerSettings = Field(default_factory=ServerSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    queue: Literal["local", "celery"] = Field(
        "local", description="local: the server's job threads; celery: 'watchkeeper worker' processes take jobs "
        "from celery.broker_url, on the shared database_url and artefacts.")
    celery: CelerySettings = Field(default_factory=CelerySettings)
    artefacts: ArtefactSettings = Field(default_factory=ArtefactSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    public_url: str | None = Field(
        None, description="This server's address as people reach it (seed 002's SERVER_NAME): links in alerts.")

    @model_validator(mode="before")
    @classmethod
    def _seed000_provider_keys(cls, data: Any) -> Any:
        """Seed 000's config.json puts API keys at the top level: ``"gemini": "KEY"``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        providers = dict(data.get("providers") or {})
        for name in PROVIDER_NAMES:
            if name in data:
                value = data.pop(name)
                entry = {"api_key": value} if isinstance(value, str) else dict(value)
                providers[name] = {**dict(providers.get(name) or {}), **entry}
        if providers:
            data["providers"] = providers
        return data

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
        if "local" in value:
            raise ValueError("'local' is the built-in pipeline, not a provider to configure")
        allowed = [*PROVIDER_NAMES, "openai_compatible"]
        unknown = sorted(f"{name} (type {entry.type or name})" for name, entry in value.items()
                         if (entry.type or name) not in allowed)
        if unknown:
            raise ValueError(f"unknown provider type(s): {', '.join(unknown)}; allowed: {allowed}")
        return value

    @model_validator(mode="after")
    def _provider_references(self) -> Settings:
        known = {"local", *self.providers}
        named = [("default_provider", self.default_provider), *(("reasoning.order", n) for n in self.reasoning.order)]
        if self.reasoning.verifier is not None:
            named.append(("reasoning.verifier", self.reasoning.verifier))
        if self.reasoning.local_llm_size is not None:
            named.append(("reasoning.local_provider", self.reasoning.local_provider))
        for key, name in named:
            if name not in known:
                raise ValueError(f"{key}: unknown provider '{name}'; configured: {sorted(known)}")
        return self

    @model_validator(mode="after")
    def _events_broker(self) -> Settings:
        """A broker URL of the backend's kind: postgres falls back on the database, redis has none."""
        backend = self.events.backend
        url = self.events.url or (self.database_url if backend == "postgres" else None) or ""
        schemes = {"postgres": ("postgres://", "postgresql://", "postgresql+psycopg://"),
                   "redis": ("redis://", "rediss://", "unix://")}.get(backend)
        if schemes and not url.startswith(schemes):
            raise ValueError(f"events.backend {backend} needs events.url (or, for postgres, a PostgreSQL "
                             f"database_url) starting with one of {', '.join(schemes)}")
        return self

    @model_validator(mode="after")
    def _celery_broker(self) -> Settings:
        if self.queue == "celery" and not self.celery.broker_url:
            raise ValueError("queue: celery needs celery.broker_url (redis://host:6379/0 or amqp://...)")
        return self

    @model_validator(mode="after")
    def _leases_on_postgres(self) -> Settings:
        """Camera workers on several hosts meet in one PostgreSQL database."""
        url = self.database_url or ""
        if self.live.leases.enabled and not url.startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("live.leases.enabled needs a PostgreSQL database_url")
        return self

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        """Seed 002's SERVER_NAME is a bare host[:port]: http is assumed, as Flask does."""
        if value is None:
            return None
        value = value.strip().rstrip("/")
        return value if re.match(r"^https?://", value) else f"http://{value}"

    @model_validator(mode="after")
    def _category_references(self) -> Settings:
        known = set(BUILTIN_IDS) | {c.id for c in self.categories}
        refs = [("fusion.thresholds", k) for k in self.fusion.thresholds]
        refs += [(f"fusion.weights.{label}", c) for label, cats in self.fusion.weights.items() for c in cats]
        refs += [(f"fusion.zones.{z.name}", c) for z in self.fusion.zones for c in z.categories]
        refs += [("fusion.time_factors", c) for t in self.fusion.time_factors for c in t.categories]
        refs += [(f"alerts.routes.{r.name}", c) for r in self.alerts.routes for c in r.categories]
        for key, cat in refs:
            if cat not in known:
                raise ValueError(f"{key}: unknown category '{cat}'; known: {sorted(known)}")
        return self

    def analysis_hash(self) -> str:
        """Hash of everything that changes an analysis result (cache key part)."""
        relevant = self.model_dump(
            mode="json", include={"media", "models", "analyzers", "fusion", "event", "categories"}
        )
        relevant["media"] = {k: v for k, v in relevant["media"].items() if k != "url_timeout_s"}
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# The seeds' variable names -> settings paths.
SEED_ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "GEMINI_API_KEY": ("providers", "gemini", "api_key"),
    "GEMINI_MODEL": ("providers", "gemini", "model"),
    "OPENAI_API_KEY": ("providers", "openai", "api_key"),
    "ANTHROPIC_API_KEY": ("providers", "anthropic", "api_key"),
    "GROQ_API_KEY": ("providers", "groq", "api_key"),
    "REPLICATE_API_TOKEN": ("providers", "replicate", "api_key"),
    "HF_TOKEN": ("providers", "huggingface", "api_key"),
    "DATABASE_URL": ("database_url",),
    "SQLALCHEMY_DATABASE_URI": ("database_url",),
    "ANALYSIS_INTERVAL": ("media", "frame_interval_s"),
    "FRAME_QUALITY": ("live", "evidence", "jpeg_quality"),
    "MAIL_SERVER": ("alerts", "email", "host"),
    "MAIL_PORT": ("alerts", "email", "port"),
    "MAIL_USERNAME": ("alerts", "email", "username"),
    "MAIL_PASSWORD": ("alerts", "email", "password"),
    "ALERT_FROM_EMAIL": ("alerts", "email", "sender"),
    "ALERT_TO_EMAIL": ("alerts", "groups", "default", "emails"),
    "TWILIO_ACCOUNT_SID": ("alerts", "twilio", "account_sid"),
    "TWILIO_AUTH_TOKEN": ("alerts", "twilio", "auth_token"),
    "TWILIO_FROM": ("alerts", "twilio", "from_number"),
    "ALERT_TO_PHONE": ("alerts", "groups", "default", "phones"),
    "RESEND_API_KEY": ("alerts", "resend", "api_key"),
    "ALERT_EMAIL_FROM": ("alerts", "resend", "sender"),
    "ALERT_EMAIL_TO": ("alerts", "groups", "default", "resend"),
    "SERVER_NAME": ("public_url",),
    "CONFIDENCE_THRESHOLD": ("fusion", "min_confidence"),
    "HIGH_PRIORITY_THRESHOLD": ("fusion", "high_priority_severity"),
    "EVENT_TYPE": ("event", "type"),
    "VENUE_CAPACITY": ("event", "venue_capacity"),
    "SECURITY_LEVEL": ("event", "security_level"),
}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text or "{}")
        else:
            raise ConfigError(f"settings file {path}: unknown format '{suffix}'; use .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"settings file {path} is not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path} must hold a mapping at the top level")
    return data


def _parse_env_value(raw: str) -> Any:
    stripped = raw.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _overrides_from_env(env: Mapping[str, str | None]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, path in SEED_ENV_ALIASES.items():
        if env.get(name):
            _set_path(overrides, path, _parse_env_value(env[name]))
    for name, raw in env.items():
        if name.startswith(ENV_PREFIX) and raw is not None and name != "WATCHKEEPER_CONFIG":
            path = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
            _set_path(overrides, path, _parse_env_value(raw))
    return overrides


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{key}: {err['msg']}")
    return f"invalid settings ({origin}):\n  " + "\n  ".join(lines)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    dotenv: str | os.PathLike[str] | None = ".env",
) -> Settings:
    """Build ``Settings`` from a file, a ``.env`` file and the environment.

    ``path`` defaults to ``$WATCHKEEPER_CONFIG``; without one only defaults,
    ``.env`` and the environment apply.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    origins = []
    path = path or env.get("WATCHKEEPER_CONFIG")
    if path:
        data = _read_file(Path(path))
        origins.append(str(path))
    if dotenv and Path(dotenv).is_file():
        values = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
        data = _deep_merge(data, _overrides_from_env(values))
        origins.append(str(dotenv))
    env_overrides = _overrides_from_env(env)
    if env_overrides:
        data = _deep_merge(data, env_overrides)
        origins.append("environment")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, ", ".join(origins) or "defaults")) from exc
