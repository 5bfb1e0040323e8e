"""Picking the rows of an analyzer's per-frame or per-pair arrays that belong to one window."""

from __future__ import annotations

import numpy as np

from ...analyzers.base import AnalyzerOutput
from ...errors import AnalysisError


def required_output(outputs: dict[str, AnalyzerOutput], analyzer: str, extractor: str) -> AnalyzerOutput:
    output = outputs.get(analyzer)
    if output is None:
        raise AnalysisError(f"extractor '{extractor}' needs the output of the '{analyzer}' analyzer, "
                            "which did not run on this media (disabled, failed or not applicable)")
    return output


def samples_in_window(times_s: np.ndarray, t_start_s: float, t_end_s: float) -> np.ndarray:
    """Indices of samples (frames, audio windows) at [t_start_s, t_end_s); if none, the one nearest its middle.

    A window shorter than the sampling interval still gets the sample that
    best stands for it; only an empty series gives no index.
    """
    times_s = np.asarray(times_s, np.float64)
    inside = np.flatnonzero((times_s >= t_start_s) & (times_s < t_end_s))
    if inside.size or not times_s.size:
        return inside
    return np.array([int(np.argmin(np.abs(times_s - (t_start_s + t_end_s) / 2)))])


def pairs_in_window(end_times_s: np.ndarray, t_start_s: float, t_end_s: float) -> np.ndarray:
    """Indices of frame pairs lying inside the window: those whose later frame is at (t_start_s, t_end_s]."""
    end_times_s = np.asarray(end_times_s, np.float64)
    return np.flatnonzero((end_times_s > t_start_s) & (end_times_s <= t_end_s))
