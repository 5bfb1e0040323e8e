"""The cameras of a server: their monitors, their incidents in the database, and the live event feed.

``LiveService`` starts the enabled cameras of ``live.cameras`` and of the
database (cameras added through the API, kept across restarts with whether
they were started), runs every
camera's monitor on one shared pair of tier pipelines (the models load once),
stores each incident as it opens, grows and ends (``store.live``), and
publishes every event to subscribers (the WebSocket feed) without ever
blocking a camera: a subscriber that cannot keep up loses its oldest
messages, and is told how many. With ``events.backend`` other than local the
events of every replica reach every replica's subscribers (``live.bus``).
With ``live.leases`` it starts no camera by itself: ``watchkeeper
camera-worker`` processes (this same class without the HTTP server, in
``live.leases``) claim them, and a camera's status comes from its lease.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..artefacts import ArtefactStore, as_reference, open_artefact_store
from ..config import CameraSettings, Settings
from ..errors import ConflictError, NotFoundError
from ..pipeline import Pipeline
from ..store.db import Database
from ..store.live import add_live_evidence, open_live_incident, update_live_incident
from ..store.models import CameraLease, CameraRecord, utcnow
from ..store.references import EVIDENCE_KINDS
from .bus import open_event_bus
from .capture import CameraHealth
from .evidence import Evidence
from .events import IncidentEvent
from .monitor import Monitor, tier_pipelines
from .recording import Retention, StoredEvidence
from .slots import AnalysisSlots

if TYPE_CHECKING:
    from ..notify.service import AlertService

log = logging.getLogger(__name__)

OnCommit = Callable[[Session], None]
RECENT_EVENTS = 200
SUBSCRIBER_BACKLOG = 500
TRACKED_INCIDENTS = 1000
FINISHED_KINDS = ("clip", "audio")  # the evidence written once the clip's span has passed


def redact_url(source: str) -> str:
    """The source without the password a stream URL may carry (it is shown and stored)."""
    parts = urlsplit(source)
    if parts.password is None:
        return source
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Subscription:
    """One listener of the event feed, read from an asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.dropped = 0

    def _put(self, message: dict[str, Any], missed: int) -> None:  # on the subscriber's loop
        self.dropped += missed  # another replica's events this one never got
        if self.queue.qsize() >= SUBSCRIBER_BACKLOG:
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)

    async def next(self) -> dict[str, Any]:
        message = await self.queue.get()
        if self.dropped:
            message = {**message, "dropped_before": self.dropped}
            self.dropped = 0
        return message


class EventHub:
    """Fans events out from camera threads (and from the other replicas) to subscribers; keeps the most
    recent ones."""

    def __init__(self, settings: Settings) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self.bus = open_event_bus(settings, self._fan_out)

    def start(self) -> None:
        if self.bus is not None:
            self.bus.start()

    def stop(self) -> None:
        if self.bus is not None:
            self.bus.stop()

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscription:
        subscription = Subscription(loop)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def publish(self, message: dict[str, Any]) -> None:
        """This replica's event: to its own subscribers at once, through the bus to the other replicas'."""
        self._fan_out(message)
        if self.bus is not None:
            self.bus.publish(message)

    def _fan_out(self, message: dict[str, Any], missed: int = 0) -> None:
        with self._lock:
            self.recent.append(message)
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            try:
                subscription.loop.call_soon_threadsafe(subscription._put, message, missed)
            except RuntimeError:  # its loop has closed: the connection is gone
                self.unsubscribe(subscription)


@dataclass
class CameraStatus:
    """A camera as the API shows it (its stream password hidden)."""

    name: str
    source: str
    location: str
    enabled: bool
    running: bool
    privacy_mode: bool
    health: dict[str, Any] | None
    statistics: dict[str, Any] | None
    worker: dict[str, Any] | None = None  # with live.leases: the camera worker watching it (host, since)


def stop_side_by_side(cameras: Sequence[str], stop: Callable[[str], None]) -> None:
    """``stop`` each camera, all at once: each stop waits on its own threads (a window's analysis, the clips
    being cut). ``stop`` must not raise: one camera's failure must not cost the others their stop."""
    with ThreadPoolExecutor(max(1, len(cameras)), thread_name_prefix="camera-stop") as pool:
        list(pool.map(stop, cameras))


class LiveService:
    def __init__(self, settings: Settings, db: Database, *, evidence_dir: Path | None = None,
                 pipelines: Callable[[], tuple[Pipeline, Pipeline]] | None = None,
                 alerts: AlertService | None = None, artefacts: ArtefactStore | None = None) -> None:
        self.settings = settings
        self.db = db
        self.alerts = alerts  # routes the incidents to people, in the transaction that stores them
        # Where the cameras' evidence is kept, for every host to serve; evidence_dir only holds a clip while
        # it is cut (and what was kept there before the store).
        self.artefacts = artefacts or open_artefact_store(settings)
        self.evidence_dir = evidence_dir or Path(settings.data_dir) / "evidence"
        self.hub = EventHub(settings)
        self.slots = AnalysisSlots()  # the cameras share the analysis time by weight
        self.retention = Retention(Path(settings.data_dir) / "recordings", settings.live.recording,
                                   evidence=(self.evidence_dir, settings.live.evidence),
                                   stored_evidence=StoredEvidence(db, self.artefacts))
        self._make_pipelines = pipelines or (lambda: tier_pipelines(settings))
        self._pipelines: tuple[Pipeline, Pipeline] | None = None
        self._lock = threading.RLock()
        self.configured = {c.name for c in settings.live.cameras}  # from the settings file: not the API's to remove
        self.leased = settings.live.leases.enabled  # camera workers run the cameras, through start_camera
        self.cameras = self._stored_cameras(warn=True)
        self.monitors: dict[str, Monitor] = {}
        # Monitor incident id -> incident row id, until it has both closed and had its evidence written
        # (in either order), and which of the two has happened.
        self._rows: OrderedDict[str, int] = OrderedDict()
        self._done: dict[str, set[str]] = {}

    # -- cameras ---------------------------------------------------------------------------------
    def _stored_cameras(self, *, warn: bool = False) -> dict[str, CameraSettings]:
        """The cameras of the settings file, then those of the database (the settings win a name)."""
        cameras = {c.name: c for c in self.settings.live.cameras}
        with self.db.session(write=False) as session:
            for row in session.scalars(select(CameraRecord).order_by(CameraRecord.name)):
                if row.name not in cameras:
                    cameras[row.name] = CameraSettings.model_validate(row.config)
                elif warn:
                    log.warning("camera %s is in the settings and in the database; the settings win", row.name)
        return cameras

    def reload_cameras(self) -> list[str]:
        """Read the database's cameras again (a camera worker follows the API's changes); returns the enabled
        ones. A camera gone from there stays known while its monitor runs, so that it can be stopped."""
        cameras = self._stored_cameras()
        with self._lock:
            self.cameras = {**{name: self.cameras[name] for name in self.monitors}, **cameras}
        return sorted(name for name, camera in cameras.items() if camera.enabled)

    def start(self) -> None:
        """Start the event bus and every enabled camera of the settings (with live.leases: none, the camera
        workers claim them)."""
        self.hub.start()
        self.retention.start()
        for camera in list(self.cameras.values()):
            if camera.enabled and not self.leased:
                self.start_camera(camera.name)

    def stop(self) -> None:
        stop_side_by_side(list(self.monitors), self._stop_for_shutdown)
        self.retention.stop()
        self.hub.stop()  # after the cameras: their last events still leave

    def camera(self, name: str) -> CameraSettings:
        camera = self.cameras.get(name)
        if camera is None:
            raise NotFoundError(f"no camera '{name}'")
        return camera

    def add_camera(self, camera: CameraSettings, *, on_commit: OnCommit | None = None,
                   created_by: int | None = None) -> None:
        """Add and keep a camera (``on_commit`` runs in the transaction that stores it: its audit entry)."""
        with self._lock:
            if camera.name in self.cameras:
                raise ConflictError(f"a camera named '{camera.name}' exists")
            with self.db.session() as session:
                session.add(CameraRecord(name=camera.name, config=camera.model_dump(mode="json"),
                                         created_by=created_by))
                if on_commit is not None:
                    on_commit(session)
            self.cameras[camera.name] = camera
        if self.alerts is not None:
            self.alerts.announce_camera(camera.name, camera.location)
        if camera.enabled and not self.leased:
            self.start_camera(camera.name)

    def remove_camera(self, name: str, *, on_commit: OnCommit | None = None) -> None:
        self.camera(name)
        if name in self.configured:
            raise ConflictError(f"camera '{name}' is defined in the settings file; remove it there")
        self.stop_camera(name)
        with self._lock:
            with self.db.session() as session:
                session.execute(delete(CameraRecord).where(CameraRecord.name == name))
                if on_commit is not None:
                    on_commit(session)
            del self.cameras[name]
        if self.alerts is not None:
            self.alerts.forget_camera(name)

    def set_running(self, name: str, running: bool, *, on_commit: OnCommit | None = None) -> None:
        """Start or stop a camera; an API camera remembers it for the next start of the server (with
        live.leases, the camera workers follow the remembered state, so the settings file's cannot change)."""
        if not self.leased:
            (self.start_camera if running else self.stop_camera)(name)
        elif name in self.configured:
            raise ConflictError(f"camera '{name}' is defined in the settings file; with live.leases set "
                                "'enabled' there")
        with self._lock:
            camera = self.cameras[name] = self.camera(name).model_copy(update={"enabled": running})
            with self.db.session() as session:
                if name not in self.configured:
                    session.execute(update(CameraRecord).where(CameraRecord.name == name)
                                    .values(config=camera.model_dump(mode="json"), updated_at=utcnow()))
                if on_commit is not None:
                    on_commit(session)

    def start_camera(self, name: str) -> None:
        with self._lock:
            camera = self.camera(name)
            if name in self.monitors and self.monitors[name].running:
                return
            if self._pipelines is None:
                self._pipelines = self._make_pipelines()
            monitor = Monitor(camera, settings=self.settings, pipelines=self._pipelines,
                              evidence_dir=self.evidence_dir, retention=self.retention, slots=self.slots,
                              artefacts=self.artefacts, on_state=lambda health: self._camera_state(name, health))
            monitor.on_incident(self._incident)
            monitor.on_evidence(self._evidence)
            self.monitors[name] = monitor
            monitor.start()
        self.hub.publish({"type": "camera", "camera": name, "state": "started"})

    def stop_camera(self, name: str) -> None:
        with self._lock:
            self.camera(name)
            monitor = self.monitors.pop(name, None)
        if monitor is not None:
            monitor.stop()
            self.hub.publish({"type": "camera", "camera": name, "state": "stopped",
                              "statistics": monitor.statistics()})

    def _stop_for_shutdown(self, name: str) -> None:
        try:
            self.stop_camera(name)
        except Exception:  # the other cameras still stop, and their last events still leave
            log.exception("camera did not stop cleanly", extra={"camera": name})

    def _camera_state(self, name: str, health: CameraHealth) -> None:
        if self.alerts is not None:
            self.alerts.camera_state(name, health.state, asdict(health))

    def monitor(self, name: str) -> Monitor | None:
        self.camera(name)
        return self.monitors.get(name)

    def status(self, name: str) -> CameraStatus:
        camera = self.camera(name)
        monitor = self.monitors.get(name)
        if monitor is None and self.leased:
            return self._leased_status(camera)
        return CameraStatus(
            name=name, source=redact_url(camera.source), location=camera.location, enabled=camera.enabled,
            running=monitor is not None and monitor.running, privacy_mode=camera.privacy_mode,
            health=({**asdict(monitor.health),
                     "microphone": asdict(monitor.microphone.health) if monitor.microphone else None}
                    if monitor is not None else None),
            statistics=monitor.statistics() if monitor is not None else None,
        )

    def _leased_status(self, camera: CameraSettings) -> CameraStatus:
        """A camera another process watches, as its lease says: which host, since when, its health then."""
        with self.db.session(write=False) as session:
            lease = session.scalar(select(CameraLease).where(
                CameraLease.camera == camera.name, CameraLease.owner.is_not(None),
                CameraLease.expires_at > func.now()))
        return CameraStatus(
            name=camera.name, source=redact_url(camera.source), location=camera.location, enabled=camera.enabled,
            running=lease is not None, privacy_mode=camera.privacy_mode,
            health=lease.health if lease is not None else None, statistics=None,
            worker={"host": lease.host, "since": lease.acquired_at.isoformat()} if lease is not None else None)

    # -- incidents -------------------------------------------------------------------------------
    def _incident(self, event: IncidentEvent) -> None:
        camera = self.cameras.get(event.camera)
        live = {"incident_id": event.incident_id, "state": "ended" if event.kind == "closed" else "active",
                "camera_t": round(event.t, 3)}
        with self._lock:
            row_id = self._rows.get(event.incident_id)
        try:
            row_id = self._store(event, camera, live, row_id)
        except Exception:  # the database failing must not silence the alert: the feed still carries it
            log.exception("live incident not stored", extra={"camera": event.camera, "event": event.kind})
        if event.kind == "closed":
            # A camera in privacy mode writes no evidence: closing is the last news of its incidents.
            self._settle(event.incident_id, "closed", "evidence" if camera and camera.privacy_mode else None)
        described = {k: v for k, v in event.to_json().items() if k != "snapshot"}  # no server paths on the feed
        self.hub.publish({"type": "incident", "event": event.kind, "incident": row_id, **described,
                          "location": camera.location if camera else "",
                          "category_name": event.incident.category_name,
                          "severity_label": event.incident.severity_label,
                          "requires_immediate_action": event.incident.requires_immediate_action})

    def _store(self, event: IncidentEvent, camera: CameraSettings | None, live: dict[str, Any],
               row_id: int | None) -> int | None:
        """Write the event to the incident's row (a new one when it opens); returns the row's id."""
        opened = False
        with self.db.session() as session:
            if event.kind == "opened" and event.window is not None:
                source = redact_url(camera.source) if camera else event.camera
                row_id = open_live_incident(session, event.window, event.incident, camera=event.camera,
                                            source=source, live={**live, **_kept(event.evidence)},
                                            artefacts=self.artefacts)
                opened = True
            elif row_id is not None:
                update_live_incident(session, row_id, event.incident, **live)
            alerted = row_id is not None and self.alerts is not None and self.alerts.incident_stored(
                session, event.incident, incident_id=row_id, event=event.kind,
                location=camera.location if camera else None, window=event.window,
                evidence=_kept(event.evidence).get("evidence"))
        if opened:  # only once committed: a rolled-back row's id may be handed out again
            with self._lock:
                self._rows[event.incident_id] = row_id
                while len(self._rows) > TRACKED_INCIDENTS:
                    self._done.pop(self._rows.popitem(last=False)[0], None)
        if alerted:
            self.alerts.wake()
        return row_id

    def _settle(self, incident_id: str, *happened: str | None) -> None:
        with self._lock:
            done = self._done.setdefault(incident_id, set())
            done.update(h for h in happened if h)
            if {"closed", "evidence"} <= done:
                self._rows.pop(incident_id, None)
                self._done.pop(incident_id, None)

    def _evidence(self, evidence: Evidence) -> None:
        with self._lock:
            row_id = self._rows.get(evidence.incident_id)
        self._settle(evidence.incident_id, "evidence")
        if row_id is not None:
            with self.db.session() as session:
                add_live_evidence(session, row_id, **_kept(evidence, FINISHED_KINDS), artefacts=self.artefacts)
        self.hub.publish({"type": "evidence", "incident": row_id, "incident_id": evidence.incident_id,
                          "evidence": sorted(evidence.artefacts)})


def _kept(evidence: Evidence | None, kinds: Sequence[str] = EVIDENCE_KINDS) -> dict[str, Any]:
    """What an incident's row says of its evidence of ``kinds``: a reference to each piece in the artefact store,
    their size (which retention goes by), and what could not be written or stored."""
    if evidence is None:
        return {}
    references = {kind: as_reference(evidence.artefacts[kind]) if kind in evidence.artefacts else None
                  for kind in kinds}
    return {"evidence": references, "evidence_bytes": sum(evidence.sizes.get(kind, 0) for kind in kinds),
            "evidence_errors": evidence.errors}
