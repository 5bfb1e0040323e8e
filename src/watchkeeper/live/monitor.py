"""A monitored camera: capture, tiered analysis of windows, the alert gate, and incident events to listeners.

Every ``analysis_interval_s`` of camera time the monitor analyses the window
of ``live.window_s`` seconds that ends then. Tier 1 (the motion gate,
objects, pose, fire, crowd, audio events and the learned heads) runs on
every window; tier 2 (every other enabled analyzer: speech to text, text
semantics, captions...) only on a candidate window, one where tier 1 found
an incident or came within ``CANDIDATE_FRACTION`` of a category's
threshold. When the analysis falls behind the camera, it moves on to the
newest window: skipped windows are counted, never queued.

    >>> from watchkeeper.live import Monitor
    >>> monitor = Monitor("rtsp://cam.local/stream", name="lobby")    # doctest: +SKIP
    >>> monitor.on_incident(lambda event: print(event.kind, event.category))  # doctest: +SKIP
    >>> monitor.start(); ...; monitor.stop()                           # doctest: +SKIP
    >>> monitor.statistics()["total_incidents"]                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..artefacts import ArtefactStore
from ..config import CameraSettings, Settings, load_settings
from ..domain import AnalysisResult, Incident
from ..pipeline import Pipeline
from ..reasoning.reports import ReportWriter
from .capture import CameraHealth, CaptureLoop, camera_from_source
from .evidence import Evidence, EvidenceRecorder
from .events import IncidentEvent
from .gate import AlertGate, GateEvent
from .recording import Retention, SegmentRecorder
from .overlay import OverlayView
from .reports import SessionReports
from .slots import AnalysisSlots

log = logging.getLogger(__name__)

# Analyzers of tier 1: every window of every camera. The weapon detector is among them, on the frames where
# someone is in view (it costs as much as the rest): a person holding a gun need not make any other sign that
# would send a window to tier 2.
TIER1_ANALYZERS = frozenset({"gate", "motion", "objects", "pose", "fire", "crowd", "audio_events", "heads",
                             "weapons"})
# A window whose best category score reaches this fraction of the category's threshold goes to tier 2.
CANDIDATE_FRACTION = 0.6


IncidentCallback = Callable[[IncidentEvent], None]
EvidenceCallback = Callable[[Evidence], None]


def tier_pipelines(settings: Settings, full: Pipeline | None = None) -> tuple[Pipeline, Pipeline]:
    """Tier 1 and tier 2 pipelines over the same loaded models; tier 2 is every enabled analyzer (``full``
    when given: a server's cameras share the models its API analyses with)."""
    full = full or Pipeline(settings)
    tier2_only = [name for name in full.enabled_analyzer_names() if name not in TIER1_ANALYZERS]
    if not tier2_only:
        return full, full
    tier1_settings = settings.model_copy(deep=True)
    for name in tier2_only:
        getattr(tier1_settings.analyzers, name).enabled = False
    tier1_settings.analyzers.weapons.only_with_people = True
    return Pipeline(tier1_settings, models=full.models), full


class Monitor:
    """Watches one camera until stopped (or until a file source ends).

    Evidence goes under ``evidence_dir`` (default ``<data_dir>/evidence``), or into ``artefacts`` when given
    (a server's cameras: every host serves it from there), seed 004's latest alerts
    and session report under ``reports_dir`` (default ``<data_dir>/reports/<camera>``), continuous
    recordings (when the camera records) under ``<data_dir>/recordings/<camera>``, kept within their
    limits by ``retention`` (a server shares one among its cameras; by default the monitor runs its own).
    ``on_state`` hears the camera's health when its connection state changes.
    """

    def __init__(self, source: str | Path | CameraSettings, *, name: str | None = None,
                 settings: Settings | None = None, pipelines: tuple[Pipeline, Pipeline] | None = None,
                 fps: float | None = None, evidence_dir: Path | None = None,
                 reports_dir: Path | None = None, retention: Retention | None = None,
                 slots: AnalysisSlots | None = None, artefacts: ArtefactStore | None = None,
                 on_state: Callable[[CameraHealth], None] | None = None) -> None:
        self.settings = settings or load_settings()
        camera = source if isinstance(source, CameraSettings) else camera_from_source(source, name)
        if fps is not None:
            camera = camera.model_copy(update={"analysis_interval_s": 1.0 / fps})
        self.camera = camera
        self.interval_s = camera.analysis_interval_s or self.settings.media.frame_interval_s
        self.tier1, self.tier2 = pipelines or tier_pipelines(self.settings)
        self.gate = AlertGate(camera.gate or self.settings.live.gate)
        self.slots = slots or AnalysisSlots(capacity=1)  # the cameras of a server share one
        self.capture = CaptureLoop(camera, self.settings.live, self.settings.media, on_state=on_state)
        recording = self.settings.live.recording
        evidence_root = evidence_dir or Path(self.settings.data_dir) / "evidence"
        self._own_retention = retention is None
        self.retention = retention or Retention(
            Path(self.settings.data_dir) / "recordings", recording,
            evidence=(evidence_root, self.settings.live.evidence))
        if (camera.record if camera.record is not None else recording.enabled) and not camera.privacy_mode:
            self.capture.recorder = SegmentRecorder(self.retention.root / camera.name, recording)
            self.retention.recorders.append(self.capture.recorder)
        self.microphone = (CaptureLoop(camera, self.settings.live, self.settings.media, microphone_of=self.capture)
                           if camera.microphone else None)
        self.recorder = EvidenceRecorder(evidence_root, self.capture, self.settings.live.evidence,
                                         on_written=self._evidence_written, artefacts=artefacts)
        self.reports = SessionReports(reports_dir or Path(self.settings.data_dir) / "reports" / camera.name,
                                      camera.location, ReportWriter(self.settings, self.tier1.fusion.rules.categories))
        self.report_path: Path | None = None  # the session report, once the monitor has stopped
        self._callbacks: list[IncidentCallback] = []
        self._evidence_callbacks: list[EvidenceCallback] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._analyse, name=f"analysis-{camera.name}", daemon=True)
        self._stats_lock = threading.Lock()
        self._opened: list[Incident] = []
        self._windows = Counter[str]()
        self._latencies: deque[float] = deque(maxlen=1000)  # the newest windows' analysis times
        self.started_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.last_result: AnalysisResult | None = None
        self.overlay = OverlayView(self)

    @property
    def name(self) -> str:
        return self.camera.name

    def on_incident(self, callback: IncidentCallback) -> IncidentCallback:
        """Call ``callback(event)`` for every incident event (usable as a decorator)."""
        self._callbacks.append(callback)
        return callback

    def on_evidence(self, callback: EvidenceCallback) -> EvidenceCallback:
        """Call ``callback(evidence)`` when an incident's clip and sound are written (usable as a decorator)."""
        self._evidence_callbacks.append(callback)
        return callback

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> Monitor:
        self.started_at = datetime.now(timezone.utc)
        self.recorder.start()
        if self._own_retention:
            self.retention.start()
        self.capture.start()
        if self.microphone is not None:
            self.microphone.start()
        self._thread.start()
        log.info("monitor started", extra={"camera": self.name, "source": self.camera.source})
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop capture and analysis; open incidents close and pending clips are written."""
        self._stop.set()
        self.capture.stop()
        if self.microphone is not None:
            self.microphone.stop()
        self._thread.join(timeout_s)
        self.recorder.close(timeout_s)
        if self._own_retention:
            self.retention.stop()
        elif self.capture.recorder in self.retention.recorders:
            self.retention.recorders.remove(self.capture.recorder)
        self.stopped_at = self.stopped_at or datetime.now(timezone.utc)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the monitor finishes by itself (a file source ended); True if it did."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def health(self) -> CameraHealth:
        return self.capture.health

    def statistics(self) -> dict[str, Any]:
        """Seed 004's session statistics: incidents in all, by category and by severity, and the analysis load."""
        with self._stats_lock:
            opened = list(self._opened)
            windows = dict(self._windows)
            latencies = sorted(self._latencies)
        return {
            "camera": self.name,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "total_incidents": len(opened),
            "by_category": dict(Counter(i.category for i in opened)),
            "by_severity": {str(k): v for k, v in sorted(Counter(i.severity for i in opened).items())},
            "windows_analysed": windows.get("analysed", 0),
            "windows_tier2": windows.get("tier2", 0),
            "windows_skipped": windows.get("skipped", 0),
            "windows_without_picture": windows.get("empty", 0),
            "analysis_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        }

    # -- the analysis thread ---------------------------------------------------------------------
    def _analyse(self) -> None:
        window_s = self.settings.live.window_s
        t_end = self.interval_s
        try:
            while not self._stop.is_set():
                if not self.capture.ring.wait_until(t_end, timeout_s=0.5):
                    if self.capture.finished:
                        break  # the source ended: the rest of the ring was analysed
                    continue
                newest = self.capture.ring.end_t
                if not self.capture.file or self.camera.realtime:
                    # Behind the camera: on to the newest whole interval, counting what is skipped.
                    behind = math.floor((newest - t_end) / self.interval_s)
                    if behind > 0:
                        self._count("skipped", behind)
                        t_end += behind * self.interval_s
                self._analyse_window(max(0.0, t_end - window_s), t_end)
                self.capture.release(t_end - window_s)
                if self.microphone is not None:
                    self.microphone.release(t_end - window_s)
                t_end += self.interval_s
        except Exception:
            log.exception("monitor analysis stopped", extra={"camera": self.name})
            raise
        finally:
            self._emit(self.gate.close_all(t_end))
            self.stopped_at = datetime.now(timezone.utc)
            self.report_path = self.reports.finish(self.statistics(), self.stopped_at)

    def _analyse_window(self, t_start: float, t_end: float) -> None:
        media = self.capture.ring.window(t_start, t_end)
        if media is None:
            self._count("empty")
            return
        started = time.perf_counter()
        now = datetime.now(timezone.utc)
        view = {"when": now, "camera": self.name, "zones": self.camera.zones,
                "thresholds": self.camera.thresholds or None}
        with self.slots.turn(self.name, self.camera.analysis_weight):
            result, outputs = self.tier1.analyze_media_outputs(media, **view, provider="local")
            with_provider = self.settings.default_provider != "local"
            if (self.tier2 is not self.tier1 or with_provider) and self._is_candidate(result):
                # Tier 2: the heavier analyzers, then the reasoning provider when one is configured.
                if self.tier2 is not self.tier1:
                    result = self.tier2.analyze_media(media, **view,
                                                      reuse=self.tier2.alike(media, outputs, self.tier1.settings))
                else:
                    result = self.tier2.reasoner.refine(result, pictures=lambda: [f.rgb for f in media.frames],
                                                        sound=lambda: media.audio)
                self._count("tier2")
        self.last_result = result
        with self._stats_lock:
            self._latencies.append(time.perf_counter() - started)
        self._count("analysed")
        self._emit(self.gate.observe(t_end, result.incidents), picture=media.frames[0].rgb, window=result)

    def _is_candidate(self, result: AnalysisResult) -> bool:
        if result.incidents:
            return True
        thresholds = {**self.tier1.fusion.rules.thresholds, **self.camera.thresholds}
        return any(score >= CANDIDATE_FRACTION * thresholds[c] for c, score in result.scores.items()
                   if c in thresholds)

    def _count(self, what: str, n: int = 1) -> None:
        with self._stats_lock:
            self._windows[what] += n

    def _emit(self, events: list[GateEvent], picture: np.ndarray | None = None,
              window: AnalysisResult | None = None) -> None:
        for gate_event in events:
            incident = gate_event.incident.model_copy(update={"camera": self.name})
            if gate_event.kind == "opened":
                evidence = self.recorder.opened(gate_event.incident_id, incident, picture, gate_event.t)
                with self._stats_lock:
                    self._opened.append(incident)
            else:
                evidence = self.recorder.evidence.get(gate_event.incident_id)
            event = IncidentEvent(gate_event.kind, gate_event.incident_id, self.name, gate_event.t,
                                  datetime.now(timezone.utc), incident, evidence, window)
            self.reports.add(event)
            log.info("incident %s", gate_event.kind, extra={"camera": self.name, "category": incident.category,
                                                            "incident_id": event.incident_id})
            self._tell(self._callbacks, event)

    def _evidence_written(self, evidence: Evidence) -> None:
        self._tell(self._evidence_callbacks, evidence)

    def _tell(self, listeners: list[Callable[[Any], None]], news: Any) -> None:
        for listener in listeners:
            try:
                listener(news)
            except Exception:  # one broken listener must not silence the others or stop the camera
                log.exception("listener failed", extra={"camera": self.name})
