"""Optical-flow statistics of a video window, alone (``flow``) and with the people in view (``flow_people``).

The motion analyzer describes every flow field (``MotionOutput.pairs``:
camera-compensated speeds, moving fractions, direction entropies globally and
per part of the view, divergence and curl, accelerations, a speed histogram and
motion boundary histograms). A window pools its pairs: mean and maximum,
logarithms for speeds, normalised histograms.

On the development fight clips (grouped 5-fold CV, logistic regression),
direction entropy and motion boundaries carry most of the signal; the person
features (people from the object detector, and how fast the flow in and
around their boxes is, relative to their size) add about 0.02 ROC-AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ...analyzers.base import AnalyzerOutput
from ...analyzers.motion import (
    PAIR_FEATURES,
    PAIR_FEATURES_VERSION,
    PAIR_SPEED_BIN_EDGES,
    PAIR_SPEED_THRESHOLDS,
    FlowPairs,
    MotionOutput,
)
from ...domain import Media
from ...errors import AnalysisError
from ...geometry import xywh_iou
from ..features import FeatureExtractor, register_extractor
from .windows import pairs_in_window, required_output, samples_in_window

# Speeds below this (frame widths per second, or per second squared) are all "still" on the log scale.
LOG_FLOOR = 1e-4
LOGGED = (
    "camera_speed", "speed_mean", "speed_std", "speed_p50", "speed_p90", "speed_p99", "divergence", "curl",
    "accel_mean", "accel_p90", "speed_change",
    *(f"mbh_{axis}_{stat}" for axis in "xy" for stat in ("mean", "p90", "p99")),
)
FRACTIONS = tuple(n for n in PAIR_FEATURES if n.startswith(("moving_", "direction_entropy_"))) + (
    "local_direction_entropy", "circular_variance",
)
SPEED_HIST = tuple(f"speed_hist_{i}" for i in range(len(PAIR_SPEED_BIN_EDGES) + 1))
MBH_HISTS = tuple(tuple(n for n in PAIR_FEATURES if n.startswith(f"mbh_{axis}_hist_")) for axis in "xy")
_COLUMN = {name: i for i, name in enumerate(PAIR_FEATURES)}
FLOW_DIM = 2 * len(LOGGED) + 2 * len(FRACTIONS) + len(SPEED_HIST) + sum(len(h) + 1 for h in MBH_HISTS)

# A window where no frame pair has this fraction of its pixels moving (at the lowest speed threshold) is still.
QUIET_MOVING_FRACTION = 0.001
QUIET_COLUMN = f"moving_{PAIR_SPEED_THRESHOLDS[0]:g}"

# People: boxes grown by this fraction of their size on each side (arms, and whoever they reach, stick out).
BOX_GROWTH = 0.25
PEOPLE_DIM = 14


def _columns(rows: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    return rows[:, [_COLUMN[n] for n in names]]


def _still_row() -> np.ndarray:
    """The description of a view where nothing moves: what a window without any flow pair gets."""
    row = np.zeros(len(PAIR_FEATURES), np.float32)
    row[_COLUMN["speed_hist_0"]] = 1.0
    return row


def _nan_pool(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and maxima ignoring NaN (features needing a previous pair); 0 where a column has none."""
    seen = ~np.isnan(values)
    counts = seen.sum(axis=0)
    filled = np.where(seen, values, 0.0)
    mean = filled.sum(axis=0) / np.maximum(counts, 1)
    maximum = np.where(seen, values, -np.inf).max(axis=0)
    return mean, np.where(counts > 0, maximum, 0.0)


def _entropy(hist: np.ndarray) -> float:
    total = float(hist.sum())
    if total <= 0:
        return 0.0
    p = hist[hist > 0] / total
    return float(-(p * np.log(p)).sum() / np.log(len(hist)))


def pool_pairs(rows: np.ndarray) -> np.ndarray:
    """The ``flow`` vector of a window from its pairs' ``PAIR_FEATURES`` rows (FLOW_DIM values)."""
    if not len(rows):
        rows = _still_row()[None, :]
    rows = rows.astype(np.float64)
    mean, maximum = _nan_pool(_columns(rows, LOGGED))
    parts = [np.log(mean + LOG_FLOOR), np.log(maximum + LOG_FLOOR)]
    fractions = _columns(rows, FRACTIONS)
    parts += [fractions.mean(axis=0), fractions.max(axis=0)]
    parts.append(np.sqrt(_columns(rows, SPEED_HIST).mean(axis=0)))
    for names in MBH_HISTS:
        hists = _columns(rows, names)
        totals = hists.sum(axis=1, keepdims=True)
        shares = np.divide(hists, totals, out=np.zeros_like(hists), where=totals > 0)
        parts += [shares.mean(axis=0), [_entropy(hists.sum(axis=0))]]
    return np.concatenate(parts).astype(np.float32)


def motion_pairs(outputs: dict[str, AnalyzerOutput], extractor: str) -> FlowPairs:
    motion = required_output(outputs, "motion", extractor)
    if not isinstance(motion, MotionOutput):
        raise AnalysisError(f"extractor '{extractor}' needs the motion analyzer's flow pairs")
    return motion.pairs


@register_extractor
class FlowExtractor(FeatureExtractor):
    """Flow statistics of the window's frame pairs (76 values)."""

    def quiet_windows(self, media: Media, outputs: dict[str, AnalyzerOutput],
                      spans: Sequence[tuple[float, float]]) -> list[bool]:
        pairs = motion_pairs(outputs, self.name)
        moving = pairs.features[:, _COLUMN[QUIET_COLUMN]]
        return [not (moving[pairs_in_window(pairs.times_s, t0, t1)] >= QUIET_MOVING_FRACTION).any()
                for t0, t1 in spans]

    name = "flow"
    version = f"flow-1+pairs-{PAIR_FEATURES_VERSION}"
    media_types = frozenset({"video"})
    requires: ClassVar[tuple[str, ...]] = ("motion",)
    window_s = 2.0

    def extract(self, media: Media, outputs: dict[str, AnalyzerOutput], t_start_s: float, t_end_s: float) -> np.ndarray:
        pairs = motion_pairs(outputs, self.name)
        return pool_pairs(pairs.features[pairs_in_window(pairs.times_s, t_start_s, t_end_s)])


# -- people ------------------------------------------------------------------------------------
Box = tuple[float, float, float, float]  # x, y, w, h normalised, top-left origin


def person_frames(outputs: dict[str, AnalyzerOutput], extractor: str) -> tuple[np.ndarray, list[list[Box]]]:
    """Sampled-frame times and the person boxes in each, from the objects analyzer."""
    frames = required_output(outputs, "objects", extractor).data.get("frames", [])
    times = np.array([f["t_s"] for f in frames], np.float64)
    boxes = [[tuple(o["box_xywh_norm"]) for o in f["objects"] if o["label"] == "person"] for f in frames]
    return times, boxes


def _closest_gap(boxes: list[Box], aspect: float) -> float:
    """Smallest centre distance between two people, in the taller one's heights (inf for fewer than two)."""
    best = np.inf
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx = ((a[0] + a[2] / 2) - (b[0] + b[2] / 2)) * aspect
            dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
            best = min(best, float(np.hypot(dx, dy)) / max(a[3], b[3], 1e-6))
    return best


def _box_cells(box: Box, rows: int, cols: int) -> tuple[slice, slice]:
    x, y, w, h = box
    x0, x1 = x - BOX_GROWTH * w, x + (1 + BOX_GROWTH) * w
    y0, y1 = y - BOX_GROWTH * h, y + (1 + BOX_GROWTH) * h
    c0, c1 = max(0, int(x0 * cols)), min(cols, max(int(np.ceil(x1 * cols)), int(x0 * cols) + 1))
    r0, r1 = max(0, int(y0 * rows)), min(rows, max(int(np.ceil(y1 * rows)), int(y0 * rows) + 1))
    return slice(r0, r1), slice(c0, c1)


def _log(values: list[float], reduce) -> float:
    return float(np.log(reduce(values) + LOG_FLOOR)) if values else float(np.log(LOG_FLOOR))


def people_features(pairs: FlowPairs, frame_times: np.ndarray, frame_boxes: list[list[Box]], aspect: float,
                    t_start_s: float, t_end_s: float) -> np.ndarray:
    """How many people, how close, and how fast the flow on them is (PEOPLE_DIM values).

    Each flow pair uses the person boxes of the sampled frame nearest to it.
    Speeds in boxes are also divided by the box height (in frame widths), so a
    far-away struggle counts like a near one.
    """
    in_window = [frame_boxes[i] for i in samples_in_window(frame_times, t_start_s, t_end_s)] or [[]]
    counts = [len(b) for b in in_window]
    gaps = [_closest_gap(b, aspect) for b in in_window]
    overlaps = [max((xywh_iou(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), default=0.0)
                for boxes in in_window]
    areas = [sum(b[2] * b[3] for b in boxes) for boxes in in_window]
    closest = min(gaps)
    f = [np.log1p(np.mean(counts)), np.log1p(max(counts)), float(np.mean(np.isfinite(gaps))),
         float(np.exp(-closest)) if np.isfinite(closest) else 0.0, max(overlaps), float(np.sqrt(np.mean(areas)))]

    speed_in, relative, accel_in, ratios = [], [], [], []
    chosen = pairs_in_window(pairs.times_s, t_start_s, t_end_s)
    for k in chosen:
        if not frame_times.size:
            break
        boxes = frame_boxes[int(np.argmin(np.abs(frame_times - pairs.times_s[k])))]
        if not boxes:
            continue
        speed, accel = pairs.speed_grid[k], pairs.accel_grid[k]
        rows, cols = speed.shape
        mask = np.zeros(speed.shape, bool)
        fastest, fastest_relative = 0.0, 0.0
        for box in boxes:
            cells = _box_cells(box, rows, cols)
            mask[cells] = True
            top = float(speed[cells].max())
            fastest = max(fastest, top)
            fastest_relative = max(fastest_relative, top / max(box[3] / aspect, 0.02))
        speed_in.append(fastest)
        relative.append(fastest_relative)
        accel_in.append(float(accel[mask].mean()))
        outside = float(speed[~mask].mean()) if (~mask).any() else 0.0
        ratios.append(np.log(float(speed[mask].mean()) + LOG_FLOOR) - np.log(outside + LOG_FLOOR))
    for values in (speed_in, relative, accel_in):
        f += [_log(values, np.mean), _log(values, np.max)]
    f += [float(np.mean(ratios)) if ratios else 0.0, len(speed_in) / max(len(chosen), 1)]
    return np.asarray(f, np.float32)


@register_extractor
class FlowPeopleExtractor(FlowExtractor):
    """``flow`` followed by the person features (90 values): the assault head's extractor."""

    name = "flow_people"
    version = f"flow_people-1+pairs-{PAIR_FEATURES_VERSION}"
    media_types = frozenset({"video"})
    requires: ClassVar[tuple[str, ...]] = ("motion", "objects")
    window_s = 2.0

    def extract(self, media: Media, outputs: dict[str, AnalyzerOutput], t_start_s: float, t_end_s: float) -> np.ndarray:
        pairs = motion_pairs(outputs, self.name)
        frame_times, frame_boxes = person_frames(outputs, self.name)
        width, height = media.info.width or 1, media.info.height or 1
        flow = pool_pairs(pairs.features[pairs_in_window(pairs.times_s, t_start_s, t_end_s)])
        people = people_features(pairs, frame_times, frame_boxes, width / height, t_start_s, t_end_s)
        return np.concatenate([flow, people])
