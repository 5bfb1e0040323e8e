"""Motion from dense optical flow on the small greyscale frames.

Farneback flow between consecutive motion frames, in frame widths per second
(so it does not depend on resolution or frame rate), is pooled into windows:
``motion:energy`` scores how much of the view moves how fast; ``motion:burst``
scores how suddenly speeds change from one flow field to the next, the
quantity behind Violent Flows' magnitude-change histograms. Each flow field
is also summarised in a fixed-length descriptor (``MotionOutput.pairs``)
that learned heads pool over their windows.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..config import MotionSettings
from ..domain import Detection, Media, MotionFrames
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

log = logging.getLogger(__name__)

DIRECTION_BINS = 8
GRID_COLUMNS = 16
# A moving pixel must also change a little: flow on flat areas and along straight edges is unconstrained
# (the aperture problem), and noise alone gives it speed there.
FLOW_SUPPORT_GREY_LEVELS = 4
MODEL_ID = "farneback-flow"

# Per-pair descriptors for learned heads. Bump PAIR_FEATURES_VERSION whenever what they hold changes:
# heads trained on the old ones must then be refused.
PAIR_FEATURES_VERSION = 1
PAIR_SPEED_THRESHOLDS = (0.03, 0.06, 0.12)  # frame widths per second
PAIR_SPEED_BIN_EDGES = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)
LOCAL_ENTROPY_CELLS = 4  # the view cut into 4 x 4 for direction entropy inside each part
MBH_BINS = 8
PAIR_FEATURES: tuple[str, ...] = (
    "camera_speed", "speed_mean", "speed_std", "speed_p50", "speed_p90", "speed_p99",
    *(f"moving_{t:g}" for t in PAIR_SPEED_THRESHOLDS),
    *(f"direction_entropy_{t:g}" for t in PAIR_SPEED_THRESHOLDS),
    "local_direction_entropy", "circular_variance", "divergence", "curl",
    "accel_mean", "accel_p90", "speed_change",
    *(f"speed_hist_{i}" for i in range(len(PAIR_SPEED_BIN_EDGES) + 1)),
    *(f"mbh_{axis}_hist_{i}" for axis in "xy" for i in range(MBH_BINS)),
    *(f"mbh_{axis}_{stat}" for axis in "xy" for stat in ("mean", "p90", "p99")),
)
# Features that need the previous flow field: NaN on the first pair.
PAIR_FEATURES_WITH_PREVIOUS = ("accel_mean", "accel_p90", "speed_change")


def _empty_grid() -> np.ndarray:
    return np.zeros((0, 1, GRID_COLUMNS, DIRECTION_BINS), np.float32)


@dataclass
class FlowPairs:
    """One row per pair of consecutive motion frames, at the pair's later frame time.

    Flow here is camera-compensated: the median flow vector (a pan or a shake
    moves every pixel alike) is subtracted first. ``features`` columns are
    ``PAIR_FEATURES``; ``speed_grid`` and ``accel_grid`` are the mean speed
    (frame widths per second) and mean flow change (frame widths per second
    squared) per cell of the ``direction_grid`` layout.
    """

    times_s: np.ndarray  # (P,)
    features: np.ndarray  # (P, len(PAIR_FEATURES)) float32
    speed_grid: np.ndarray  # (P, rows, GRID_COLUMNS) float32
    accel_grid: np.ndarray  # (P, rows, GRID_COLUMNS) float32

    @classmethod
    def empty(cls, rows: int = 1) -> FlowPairs:
        return cls(np.zeros(0), np.zeros((0, len(PAIR_FEATURES)), np.float32),
                   np.zeros((0, rows, GRID_COLUMNS), np.float32), np.zeros((0, rows, GRID_COLUMNS), np.float32))


@dataclass
class MotionOutput(AnalyzerOutput):
    """``direction_grid`` (not JSON): per window, cell and direction, the mean speed of moving pixels.

    Shape (windows, rows, GRID_COLUMNS, DIRECTION_BINS), rows following the
    frame's aspect ratio. Speeds are in frame widths per second, averaged over
    the cell's pixels (still ones count as zero). Bin ``b`` holds directions
    around ``b * 45`` degrees from +x towards +y (image y points down, so
    clockwise on screen). The crowd analyzer reads motion in person boxes from it.
    """

    direction_grid: np.ndarray = field(default_factory=_empty_grid)
    pairs: FlowPairs = field(default_factory=FlowPairs.empty)


@dataclass
class _PairStats:
    t_s: float
    speed_mean: float
    speed_std: float
    speed_p90: float
    moving_fraction: float
    direction_hist: np.ndarray  # (DIRECTION_BINS,) speed-weighted, moving pixels only
    speed_change: float | None  # mean |speed - previous field's speed| per pixel
    grid: np.ndarray  # (rows, cols, DIRECTION_BINS)
    descriptor: _PairDescriptor


def optical_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Dense Farneback flow (H, W, 2) in pixels per frame, tuned for ~160 px wide frames."""
    return cv2.calcOpticalFlowFarneback(prev, nxt, None, pyr_scale=0.5, levels=3, winsize=9,
                                        iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


@dataclass(frozen=True)
class _PairResult:
    """One frame pair's statistics, with the fields the next pair's statistics are measured against."""

    stats: _PairStats
    velocity: np.ndarray | None  # camera-compensated flow (None while nothing has moved)
    speed: np.ndarray


class PairCache:
    """Recent frame pairs' results, by the content of their frames and of the frame before them.

    A live camera's windows overlap (2 s windows every second), so half of
    each window's frame pairs were in the window before; their optical flow
    and statistics, the motion analyzer's main cost, are looked up instead
    of computed again. A pair's statistics also depend on the pair before it
    (acceleration), so that pair's frames are part of the key. Keyed by
    content: cameras sharing the analyzer never see each other's pairs.
    """

    def __init__(self, max_pairs: int = 192) -> None:
        self.max_pairs = max_pairs
        self._pairs: OrderedDict[tuple[bytes | None, bytes, bytes, float], _PairResult] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def frame_key(gray: np.ndarray) -> bytes:
        return hashlib.blake2b(gray.tobytes(), digest_size=16).digest()

    def get(self, key: tuple[bytes | None, bytes, bytes, float]) -> _PairResult | None:
        with self._lock:
            found = self._pairs.get(key)
            if found is not None:
                self._pairs.move_to_end(key)
            return found

    def put(self, key: tuple[bytes | None, bytes, bytes, float], result: _PairResult) -> None:
        with self._lock:
            self._pairs[key] = result
            while len(self._pairs) > self.max_pairs:
                self._pairs.popitem(last=False)


PAIR_CACHE = PairCache()


def direction_entropy(hist: np.ndarray) -> float:
    """Entropy of a direction histogram, 0 (one direction or none) to 1 (uniform)."""
    total = float(hist.sum())
    if total <= 0:
        return 0.0
    p = hist[hist > 0] / total
    return float(-(p * np.log(p)).sum() / np.log(len(hist)))


def grid_shape(height: int, width: int) -> tuple[int, int]:
    return max(1, round(GRID_COLUMNS * height / width)), GRID_COLUMNS


def _cell_index(height: int, width: int) -> np.ndarray:
    rows, cols = grid_shape(height, width)
    r = np.minimum(np.arange(height) * rows // height, rows - 1)
    c = np.minimum(np.arange(width) * cols // width, cols - 1)
    return (r[:, None] * cols + c[None, :]).ravel()


@dataclass
class _PairDescriptor:
    features: np.ndarray
    speed_cells: np.ndarray
    accel_cells: np.ndarray


def _direction_bins(angle: np.ndarray, bins: int) -> np.ndarray:
    return np.floor(angle / (2 * np.pi) * bins + 0.5).astype(np.int64) % bins


def _speed_weighted_entropy(bins: np.ndarray, speed: np.ndarray, mask: np.ndarray) -> float:
    return direction_entropy(np.bincount(bins[mask], weights=speed[mask], minlength=DIRECTION_BINS))


def _local_direction_entropy(bins: np.ndarray, speed: np.ndarray, moving: np.ndarray) -> float:
    """Direction entropy inside each part of the view, weighted by how much moves there.

    People walking by each move one way; a struggle moves every way in one place.
    """
    height, width = speed.shape
    entropies, weights = [], []
    for r in range(LOCAL_ENTROPY_CELLS):
        for c in range(LOCAL_ENTROPY_CELLS):
            part = (slice(r * height // LOCAL_ENTROPY_CELLS, (r + 1) * height // LOCAL_ENTROPY_CELLS),
                    slice(c * width // LOCAL_ENTROPY_CELLS, (c + 1) * width // LOCAL_ENTROPY_CELLS))
            mask = moving[part]
            if mask.any():
                entropies.append(_speed_weighted_entropy(bins[part], speed[part], mask))
                weights.append(float(speed[part][mask].sum()))
    return float(np.average(entropies, weights=weights)) if entropies and sum(weights) > 0 else 0.0


def _motion_boundaries(velocity: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Motion boundary histograms (Dalal et al.): gradient orientations of each flow component, magnitude-weighted.

    Returns (2, MBH_BINS) mean gradient magnitude per pixel and orientation, and
    (2, 3) magnitude mean, p90 and p99, per frame width.
    """
    hists, stats = [], []
    for axis in range(2):
        gx = cv2.Sobel(velocity[..., axis], cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(velocity[..., axis], cv2.CV_32F, 0, 1, ksize=3)
        magnitude, angle = cv2.cartToPolar(gx, gy)
        magnitude *= width
        bins = _direction_bins(angle, MBH_BINS).ravel()
        hists.append(np.bincount(bins, weights=magnitude.ravel(), minlength=MBH_BINS) / magnitude.size)
        stats.append([float(magnitude.mean()), *np.percentile(magnitude, (90, 99))])
    return np.asarray(hists), np.asarray(stats)


def _describe_pair(velocity: np.ndarray, support: np.ndarray, previous: np.ndarray | None, dt: float,
                   cells: np.ndarray, cell_pixels: np.ndarray, grid: tuple[int, int]) -> tuple[_PairDescriptor, np.ndarray]:
    """The ``PAIR_FEATURES`` of one flow field (frame widths per second), camera motion removed.

    ``previous`` is the previous pair's compensated field (None for the first pair); this pair's
    compensated field comes back beside the descriptor, to be the next pair's ``previous``.
    """
    width = support.shape[1]
    camera = np.median(velocity.reshape(-1, 2), axis=0)
    velocity = velocity - camera
    speed, angle = cv2.cartToPolar(velocity[..., 0], velocity[..., 1])
    bins = _direction_bins(angle, DIRECTION_BINS)
    f: dict[str, float] = {"camera_speed": float(np.hypot(*camera)),
                           "speed_mean": float(speed.mean()), "speed_std": float(speed.std())}
    f["speed_p50"], f["speed_p90"], f["speed_p99"] = np.percentile(speed, (50, 90, 99))
    for threshold in PAIR_SPEED_THRESHOLDS:
        moving = (speed > threshold) & support
        f[f"moving_{threshold:g}"] = float(moving.mean())
        f[f"direction_entropy_{threshold:g}"] = _speed_weighted_entropy(bins, speed, moving)
    moving = (speed > PAIR_SPEED_THRESHOLDS[0]) & support
    f["local_direction_entropy"] = _local_direction_entropy(bins, speed, moving)
    if moving.any():
        units = velocity[moving] / speed[moving][:, None]
        f["circular_variance"] = float(1.0 - np.hypot(*units.mean(axis=0)))
    else:
        f["circular_variance"] = 0.0
    dvx_dy, dvx_dx = np.gradient(velocity[..., 0])
    dvy_dy, dvy_dx = np.gradient(velocity[..., 1])
    f["divergence"] = float(np.abs(dvx_dx + dvy_dy).mean() * width)
    f["curl"] = float(np.abs(dvy_dx - dvx_dy).mean() * width)
    if previous is not None:
        accel = np.linalg.norm(velocity - previous, axis=-1) / dt
        f["accel_mean"], f["accel_p90"] = float(accel.mean()), float(np.percentile(accel, 90))
        f["speed_change"] = float(np.abs(speed - np.linalg.norm(previous, axis=-1)).mean() / dt)
    else:
        accel = np.zeros_like(speed)
        f.update(dict.fromkeys(PAIR_FEATURES_WITH_PREVIOUS, np.nan))
    hist = np.bincount(np.searchsorted(PAIR_SPEED_BIN_EDGES, speed.ravel()), minlength=len(PAIR_SPEED_BIN_EDGES) + 1)
    f.update(zip((f"speed_hist_{i}" for i in range(len(hist))), hist / speed.size))
    mbh_hists, mbh_stats = _motion_boundaries(velocity, width)
    for axis, axis_hist, axis_stats in zip("xy", mbh_hists, mbh_stats):
        f.update(zip((f"mbh_{axis}_hist_{i}" for i in range(MBH_BINS)), axis_hist))
        f.update(zip((f"mbh_{axis}_{stat}" for stat in ("mean", "p90", "p99")), axis_stats))
    per_cell = np.stack([np.bincount(cells, weights=v.ravel(), minlength=len(cell_pixels)) for v in (speed, accel)])
    per_cell = (per_cell / cell_pixels).reshape(2, *grid).astype(np.float32)
    features = np.array([f[name] for name in PAIR_FEATURES], np.float32)
    return _PairDescriptor(features, per_cell[0], per_cell[1]), velocity


def _pair_stats(motion: MotionFrames, settings: MotionSettings) -> list[_PairStats]:
    gray = motion.gray
    n, height, width = gray.shape
    rows, cols = grid_shape(height, width)
    cells = _cell_index(height, width)
    cell_pixels = np.bincount(cells, minlength=rows * cols).astype(np.float64)
    keys = [PAIR_CACHE.frame_key(frame) for frame in gray]
    stats: list[_PairStats] = []
    previous: _PairResult | None = None
    still_descriptor: _PairDescriptor | None = None
    for i in range(1, n):
        dt = float(motion.times_s[i] - motion.times_s[i - 1])
        if dt <= 0:
            dt = 1.0 / motion.fps
        key = (keys[i - 2] if i >= 2 else None, keys[i - 1], keys[i], round(dt, 4))
        result = PAIR_CACHE.get(key)
        if result is None:
            result, still_descriptor = _one_pair(gray[i - 1], gray[i], dt, previous, still_descriptor, settings,
                                                 cells, cell_pixels, (rows, cols))
            PAIR_CACHE.put(key, result)
        stats.append(replace(result.stats, t_s=float(motion.times_s[i])))
        previous = result
    return stats


def _one_pair(prev: np.ndarray, nxt: np.ndarray, dt: float, previous: _PairResult | None,
              still_descriptor: _PairDescriptor | None, settings: MotionSettings, cells: np.ndarray,
              cell_pixels: np.ndarray, grid_size: tuple[int, int]) -> tuple[_PairResult, _PairDescriptor | None]:
    """The statistics of one frame pair; ``previous`` is the pair before it in the window (None for the first)."""
    height, width = prev.shape
    rows, cols = grid_size
    previous_velocity = previous.velocity if previous is not None else None
    support = cv2.absdiff(nxt, prev) > FLOW_SUPPORT_GREY_LEVELS
    if support.any():
        velocity = optical_flow(prev, nxt) / (width * dt)
        speed, angle = cv2.cartToPolar(velocity[..., 0], velocity[..., 1])
    else:  # nothing changed, so nothing moved: a still camera's usual case, and flow is the main cost
        velocity = np.zeros((height, width, 2), np.float32)
        speed = angle = np.zeros((height, width), np.float32)
    if not support.any() and previous_velocity is not None and not previous_velocity.any():
        # Still after still: the same all-zero description every time, so describe it once.
        if still_descriptor is None:
            still_descriptor, _ = _describe_pair(velocity, support, previous_velocity, dt, cells, cell_pixels,
                                                 grid_size)
        descriptor = still_descriptor
    else:
        descriptor, previous_velocity = _describe_pair(velocity, support, previous_velocity, dt, cells,
                                                       cell_pixels, grid_size)
    moving = (speed > settings.moving_speed) & support
    bins = (np.floor(angle / (2 * np.pi) * DIRECTION_BINS + 0.5).astype(np.int64) % DIRECTION_BINS).ravel()
    weights = np.where(moving, speed, 0.0).ravel()
    hist = np.bincount(bins, weights=weights, minlength=DIRECTION_BINS)
    grid = np.bincount(cells * DIRECTION_BINS + bins, weights=weights, minlength=rows * cols * DIRECTION_BINS)
    grid = (grid.reshape(rows * cols, DIRECTION_BINS) / cell_pixels[:, None]).reshape(rows, cols, DIRECTION_BINS)
    change = float(np.abs(speed - previous.speed).mean()) if previous is not None else None
    stats = _PairStats(
        t_s=0.0, speed_mean=float(speed.mean()), speed_std=float(speed.std()),
        speed_p90=float(np.percentile(speed, 90)), moving_fraction=float(moving.mean()),
        direction_hist=hist, speed_change=change, grid=grid.astype(np.float32), descriptor=descriptor,
    )
    return _PairResult(stats, previous_velocity, speed), still_descriptor


def _squash(value: float, scale: float) -> float:
    """0 at 0, 0.63 at ``scale``, towards 1 beyond."""
    return float(1.0 - np.exp(-max(value, 0.0) / scale))


def _windows(pairs: list[_PairStats], settings: MotionSettings, duration_s: float) -> tuple[list[dict], np.ndarray]:
    by_window: dict[int, list[_PairStats]] = {}
    for pair in pairs:
        # A pair ending exactly on a boundary belongs to the window it ends.
        key = max(0, int(np.ceil(pair.t_s / settings.window_s)) - 1)
        by_window.setdefault(key, []).append(pair)
    windows, grids = [], []
    previous_speed = None
    for key in sorted(by_window):
        group = by_window[key]
        speed_mean = float(np.mean([p.speed_mean for p in group]))
        changes = [p.speed_change for p in group if p.speed_change is not None]
        speed_change = float(np.mean(changes)) if changes else 0.0
        hist = np.sum([p.direction_hist for p in group], axis=0)
        t_start = key * settings.window_s
        windows.append({
            "t_start_s": round(t_start, 3),
            "t_end_s": round(min(t_start + settings.window_s, max(duration_s, group[-1].t_s)), 3),
            "speed_mean": round(speed_mean, 5),
            "speed_std": round(float(np.mean([p.speed_std for p in group])), 5),
            "speed_p90": round(float(max(p.speed_p90 for p in group)), 5),
            "moving_fraction": round(float(np.mean([p.moving_fraction for p in group])), 4),
            "direction_entropy": round(direction_entropy(hist), 4),
            "speed_change": round(speed_change, 5),
            "energy_jump": round(speed_mean - previous_speed, 5) if previous_speed is not None else 0.0,
            "energy": round(_squash(speed_mean, settings.energy_scale), 4),
            "burst": round(_squash(speed_change, settings.burst_scale), 4),
        })
        grids.append(np.mean([p.grid for p in group], axis=0))
        previous_speed = speed_mean
    return windows, (np.stack(grids).astype(np.float32) if grids else _empty_grid())


def _flow_pairs(pairs: list[_PairStats]) -> FlowPairs:
    if not pairs:
        return FlowPairs.empty()
    return FlowPairs(
        times_s=np.array([p.t_s for p in pairs]),
        features=np.stack([p.descriptor.features for p in pairs]),
        speed_grid=np.stack([p.descriptor.speed_cells for p in pairs]),
        accel_grid=np.stack([p.descriptor.accel_cells for p in pairs]),
    )


@register_analyzer
class MotionAnalyzer(Analyzer):
    name = "motion"
    media_types = frozenset({"video"})

    def analyze(self, media: Media, context: AnalysisContext) -> MotionOutput:
        settings = self.settings.analyzers.motion
        motion = media.motion
        pairs = _pair_stats(motion, settings) if motion is not None and len(motion.gray) >= 2 else []
        windows, grid = _windows(pairs, settings, media.duration_s)
        detections = []
        for window in windows:
            common = {"analyzer": self.name, "modality": "visual", "t_start_s": window["t_start_s"],
                      "t_end_s": window["t_end_s"], "model_id": MODEL_ID}
            if window["energy"] >= settings.min_score:
                detections.append(Detection(label="motion:energy", score=window["energy"], **common, attributes={
                    k: window[k] for k in ("speed_mean", "speed_p90", "moving_fraction", "direction_entropy")}))
            if window["burst"] >= settings.min_score:
                detections.append(Detection(label="motion:burst", score=window["burst"], **common, attributes={
                    k: window[k] for k in ("speed_change", "energy_jump", "speed_mean")}))
        log.debug("motion analysed", extra={"pairs": len(pairs), "windows": len(windows)})
        data = {
            "fps": motion.fps if motion is not None else None,
            "window_s": settings.window_s,
            "windows": windows,
        }
        return MotionOutput(detections=detections, data=data, direction_grid=grid, pairs=_flow_pairs(pairs))
