"""The alert gate: turns a camera's stream of per-window incidents into incidents that open, update and close.

Seed 002's stability logic, per camera and category: a window supports a
category when it holds an incident of it at or above ``min_confidence``;
``consecutive`` supporting windows in a row open an incident; further support
updates it (at most once per ``update_every_s`` unless its severity rises);
``cooldown_s`` without support closes it, and only then can the next one
open, from a fresh run of supporting windows. One fight is one incident, not
one alert per analysed second.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..config import AlertGateSettings
from ..domain import Incident

GateEventKind = Literal["opened", "updated", "closed"]


@dataclass(frozen=True)
class GateEvent:
    kind: GateEventKind
    incident_id: str
    category: str
    t: float  # stream time of the window that caused the event
    incident: Incident  # the strongest supporting window's incident so far (its span covers the whole run)


@dataclass
class _Track:
    """One category's state on one camera."""

    run: int = 0  # supporting windows in a row
    open_id: str | None = None
    peak: Incident | None = None
    start_t: float = 0.0  # where the earliest supporting incident of the episode starts
    end_t: float = 0.0  # where the latest supporting window's incident ends
    last_support_t: float = 0.0
    last_update_t: float = 0.0


@dataclass
class AlertGate:
    """The gate of one camera. ``observe`` once per analysed window, in stream time order."""

    settings: AlertGateSettings = field(default_factory=AlertGateSettings)
    _tracks: dict[str, _Track] = field(default_factory=dict)

    def observe(self, t: float, incidents: Iterable[Incident]) -> list[GateEvent]:
        support: dict[str, Incident] = {}
        for incident in incidents:
            if incident.confidence < self.settings.min_confidence:
                continue
            best = support.get(incident.category)
            if best is None or incident.confidence > best.confidence:
                support[incident.category] = incident
        events: list[GateEvent] = []
        for category in sorted(support.keys() | self._tracks.keys()):
            track = self._tracks.setdefault(category, _Track())
            event = self._step(track, category, t, support.get(category))
            if event is not None:
                events.append(event)
        return events

    def close_all(self, t: float) -> list[GateEvent]:
        """Close every open incident (the monitor stops)."""
        events = [self._close(track, category, t) for category, track in sorted(self._tracks.items())
                  if track.open_id is not None]
        self._tracks.clear()
        return events

    @property
    def open_categories(self) -> list[str]:
        return sorted(c for c, track in self._tracks.items() if track.open_id is not None)

    def _step(self, track: _Track, category: str, t: float, incident: Incident | None) -> GateEvent | None:
        if incident is None:
            track.run = 0
            if track.open_id is not None and t - track.last_support_t >= self.settings.cooldown_s:
                return self._close(track, category, t)
            return None
        track.run += 1
        if track.open_id is None and track.run == 1:  # a new run of support: a new episode, perhaps
            track.start_t, track.peak = incident.t_start_s, None
        track.start_t = min(track.start_t, incident.t_start_s)
        track.end_t = max(t, incident.t_end_s)
        if track.open_id is None:
            track.peak = _stronger(track.peak, incident)
            if track.run < self.settings.consecutive:
                return None
            track.open_id, track.last_support_t, track.last_update_t = str(uuid.uuid4()), t, t
            return GateEvent("opened", track.open_id, category, t, self._spanned(track))
        previous = track.peak
        track.peak = _stronger(previous, incident)
        track.last_support_t = t
        severity_rose = previous is not None and incident.severity > previous.severity
        if severity_rose or t - track.last_update_t >= self.settings.update_every_s:
            track.last_update_t = t
            return GateEvent("updated", track.open_id, category, t, self._spanned(track))
        return None

    def _close(self, track: _Track, category: str, t: float) -> GateEvent:
        assert track.open_id is not None
        event = GateEvent("closed", track.open_id, category, t, self._spanned(track))
        self._tracks[category] = _Track()
        return event

    @staticmethod
    def _spanned(track: _Track) -> Incident:
        assert track.peak is not None
        peak = track.peak
        return peak.model_copy(update={"t_start_s": track.start_t, "t_end_s": max(track.end_t, peak.t_end_s)})


def _stronger(a: Incident | None, b: Incident) -> Incident:
    if a is None:
        return b
    return b if (b.severity, b.confidence) > (a.severity, a.confidence) else a
