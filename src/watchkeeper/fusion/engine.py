"""Detections in time windows -> a score per category -> incidents."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time

from ..config import Settings, Zone
from ..domain import Detection, Evidence, Incident, Modality
from ..taxonomy import SEVERITY_LABELS, threat_severity_index
from .rules import FusionRules

# A contribution below this does not count as a modality agreeing.
MIN_SUPPORT = 0.15
MAX_EVIDENCE_PER_INCIDENT = 24
RESTRICTED_ZONE_LABEL = "zone:restricted"


@dataclass
class Support:
    """One label's strongest contribution to one category in one window."""

    label: str
    contribution: float
    weight: float
    detections: list[Detection]
    modalities: frozenset[Modality]


@dataclass
class WindowScore:
    t_start_s: float
    t_end_s: float
    score: float
    supports: list[Support] = field(default_factory=list)


@dataclass
class FusionOutput:
    scores: dict[str, float]
    incidents: list[Incident]
    windows: dict[str, list[WindowScore]]


def _point_in_polygon(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _zone_of(detection: Detection, zones: list[Zone]) -> Zone | None:
    if detection.box_xywh_norm is None:
        return None
    x, y, w, h = detection.box_xywh_norm
    # Where a person or object stands: the bottom centre of its box (just inside the picture when the box
    # is cut by its bottom edge, so a zone drawn to that edge holds it).
    foot = (x + w / 2, min(y + h, 0.999))
    return next((z for z in zones if _point_in_polygon(*foot, z.polygon)), None)


def _restricted_zone_evidence(detections: list[Detection], zones: list[Zone]) -> list[Detection]:
    """A ``zone:restricted`` detection for every person standing in a restricted zone."""
    restricted = [z for z in zones if z.restricted]
    if not restricted:
        return []
    found = []
    for det in detections:
        zone = _zone_of(det, restricted) if det.label == "person" else None
        if zone is not None:
            found.append(det.model_copy(update={"label": RESTRICTED_ZONE_LABEL, "analyzer": "zones",
                                                "attributes": {**det.attributes, "zone": zone.name}}))
    return found


def _in_time_range(now: time, start: str, end: str) -> bool:
    lo, hi = time.fromisoformat(start), time.fromisoformat(end)
    return lo <= now < hi if lo <= hi else now >= lo or now < hi


class FusionEngine:
    def __init__(self, settings: Settings, rules: FusionRules) -> None:
        self.settings = settings
        self.rules = rules

    # -- windows -------------------------------------------------------------------------------
    def _windows(self, detections: list[Detection], t_start_s: float,
                 t_end_s: float) -> list[tuple[float, float, list[Detection]]]:
        """Windows of ``window_s`` at half-window hops over ``[t_start_s, t_end_s)``, so evidence either side of
        a boundary still meets."""
        if t_end_s <= t_start_s:
            return [(t_start_s, t_start_s, list(detections))]
        width = self.settings.fusion.window_s
        hop = width / 2
        count = max(1, math.ceil(max(t_end_s - t_start_s - width, 0.0) / hop) + 1)
        buckets: list[list[Detection]] = [[] for _ in range(count)]
        for det in detections:
            # Window k covers [start + k*hop, start + k*hop + width); a point detection sits in the windows
            # around it.
            first = max(0, math.floor((det.t_start_s - t_start_s - width) / hop) + 1)
            last = min(count - 1, math.floor((det.t_end_s - t_start_s) / hop))
            for k in range(first, max(first, last) + 1):
                buckets[min(k, count - 1)].append(det)
        return [(t_start_s + k * hop, min(t_end_s, t_start_s + k * hop + width), b) for k, b in enumerate(buckets)]

    # -- scoring -------------------------------------------------------------------------------
    def _supports(self, detections: list[Detection], zones: list[Zone]) -> dict[str, list[Support]]:
        best: dict[tuple[str, str], Support] = {}
        for det in detections:
            zone = _zone_of(det, zones) if zones else None
            for category, weight in self.rules.weights_for(det.label).items():
                factor = zone.factor if zone and (not zone.categories or category in zone.categories) else 1.0
                contribution = min(1.0, weight * det.score * factor)
                key = (category, self.rules.evidence_key(det.label))
                current = best.get(key)
                if current is None or contribution > current.contribution:
                    best[key] = Support(det.label, contribution, weight, [det], frozenset({det.modality}))
                elif contribution == current.contribution:
                    current.detections.append(det)
        by_category: dict[str, list[Support]] = defaultdict(list)
        for (category, _), support in best.items():
            by_category[category].append(support)
        self._add_combinations(detections, by_category)
        return by_category

    def _add_combinations(self, detections: list[Detection], by_category: dict[str, list[Support]]) -> None:
        strongest: dict[str, Detection] = {}
        for det in detections:
            if det.label not in strongest or det.score > strongest[det.label].score:
                strongest[det.label] = det
        for combo in self.rules.combinations:
            members = []
            for group in combo.groups:
                present = [strongest[label] for label in group if label in strongest]
                if not present:
                    break
                members.append(max(present, key=lambda d: d.score))
            else:
                contribution = combo.weight * min(d.score for d in members)
                label = " + ".join(d.label for d in members)
                by_category[combo.category].append(
                    Support(label, contribution, combo.weight, members, frozenset(d.modality for d in members))
                )

    def _category_score(self, supports: list[Support]) -> float:
        miss = 1.0
        for support in supports:
            miss *= 1.0 - support.contribution
        score = 1.0 - miss
        agreeing = {m for s in supports if s.contribution >= MIN_SUPPORT for m in s.modalities}
        if len(agreeing) > 1:
            score += self.settings.fusion.agreement_bonus * (len(agreeing) - 1) * (1.0 - score)
        return min(1.0, score)

    def _time_factor(self, category: str, when: datetime | None) -> float:
        if when is None:
            return 1.0
        factor = 1.0
        for rule in self.settings.fusion.time_factors:
            if (not rule.categories or category in rule.categories) and _in_time_range(
                when.time(), rule.start, rule.end
            ):
                factor *= rule.factor
        return factor

    # -- incidents -----------------------------------------------------------------------------
    def fuse(
        self, detections: list[Detection], duration_s: float, *, when: datetime | None = None,
        camera: str | None = None, t_start_s: float = 0.0, zones: list[Zone] | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> FusionOutput:
        """Score every category in windows over ``[t_start_s, duration_s)`` (a live camera's window starts late
        in its stream) and turn runs of windows over threshold into incidents.

        ``zones`` and ``thresholds`` are a camera's own (default: the settings' zones and the rules'
        thresholds); a person standing in a restricted zone is evidence of intrusion.
        """
        zones = self.settings.fusion.zones if zones is None else zones
        detections = detections + _restricted_zone_evidence(detections, zones)
        windows: dict[str, list[WindowScore]] = {cid: [] for cid in self.rules.categories}
        for t0, t1, members in self._windows(detections, t_start_s, duration_s):
            supports = self._supports(members, zones)
            for category in self.rules.categories:
                found = supports.get(category, [])
                score = self._category_score(found) if found else 0.0
                score = min(1.0, score * self._time_factor(category, when)) if score else 0.0
                windows[category].append(WindowScore(t0, t1, score, found))

        scores = {cid: round(max((w.score for w in ws), default=0.0), 4) for cid, ws in windows.items()}
        incidents = []
        for category, ws in windows.items():
            threshold = (thresholds or {}).get(category, self.rules.thresholds[category])
            incidents.extend(self._incidents(category, ws, camera, threshold, zones))
        incidents.sort(key=lambda i: (-i.severity, -i.confidence, i.t_start_s))
        return FusionOutput(scores, incidents, windows)

    def _incidents(self, category: str, windows: list[WindowScore], camera: str | None, threshold: float,
                   zones: list[Zone]) -> list[Incident]:
        floor = max(threshold, self.settings.fusion.min_confidence)
        runs: list[list[WindowScore]] = []
        for window in windows:
            if window.score < floor or window.score == 0.0:
                continue
            if runs and window.t_start_s - runs[-1][-1].t_end_s <= self.settings.fusion.merge_gap_s:
                runs[-1].append(window)
            else:
                runs.append([window])
        return [self._incident(category, run, threshold, camera, zones) for run in runs]

    def _incident(self, category: str, run: list[WindowScore], threshold: float, camera: str | None,
                  zones: list[Zone]) -> Incident:
        cat = self.rules.categories[category]
        confidence = max(w.score for w in run)
        # The strongest support of each label over the run is its evidence.
        by_label: dict[str, Support] = {}
        for window in run:
            for support in window.supports:
                if support.label not in by_label or support.contribution > by_label[support.label].contribution:
                    by_label[support.label] = support
        supports = sorted(by_label.values(), key=lambda s: -s.contribution)
        evidence: list[Evidence] = []
        seen: set[int] = set()
        for support in supports:
            for det in support.detections:
                if id(det) not in seen and len(evidence) < MAX_EVIDENCE_PER_INCIDENT:
                    seen.add(id(det))
                    evidence.append(Evidence(detection=det, weight=support.weight, contribution=round(support.contribution, 4)))
        modalities = sorted({m for s in supports if s.contribution >= MIN_SUPPORT for m in s.modalities})
        severity = cat.default_severity
        if confidence >= self.rules.raise_at_confidence and len(modalities) >= self.rules.raise_at_agreement:
            severity = min(5, severity + 1)
        dets = [e.detection for e in evidence]
        # The incident spans every supporting detection in the run, not only the strongest.
        supporting = [d for w in run for s in w.supports if s.contribution >= MIN_SUPPORT / 2 for d in s.detections]
        t_start = min((d.t_start_s for d in supporting), default=run[0].t_start_s)
        t_end = max((d.t_end_s for d in supporting), default=run[-1].t_end_s)
        boxes = [
            {"label": d.label, "frame_index": d.frame_index, "t_s": d.t_start_s, "box_xywh_norm": d.box_xywh_norm}
            for d in dets
            if d.box_xywh_norm is not None
        ]
        zone_names = {z.name for d in dets if (z := _zone_of(d, zones))}
        return Incident(
            category=category,
            category_name=cat.name,
            severity=severity,
            severity_label=SEVERITY_LABELS[severity],
            confidence=round(confidence, 4),
            threshold=round(threshold, 4),
            t_start_s=round(t_start, 3),
            t_end_s=round(t_end, 3),
            modalities=modalities,
            modality_agreement=len(modalities),
            evidence=evidence,
            boxes=boxes,
            summary=self._summary(cat.name, supports),
            requires_immediate_action=severity >= self.settings.fusion.high_priority_severity,
            threat_severity_index=threat_severity_index(severity, confidence),
            camera=camera,
            zone=", ".join(sorted(zone_names)) or None,
        )

    def _summary(self, name: str, supports: list[Support]) -> str:
        parts = []
        for support in supports:
            if support.contribution < MIN_SUPPORT / 2:
                continue
            for label, det in {d.label: d for d in support.detections}.items():
                phrase = self.rules.phrase(label, det.attributes.get("text") or det.attributes.get("keyword"))
                if det.t_end_s - det.t_start_s > 0.5:
                    phrase += f" from {det.t_start_s:.1f} s to {det.t_end_s:.1f} s"
                elif det.t_end_s > 0 or det.t_start_s > 0:
                    phrase += f" at {det.t_start_s:.1f} s"
                parts.append(phrase)
        body = "; ".join(dict.fromkeys(parts)) or "combined weak evidence"
        return f"{name}: {body[0].upper()}{body[1:]}."
