"""The motion gate: which sampled video frames are unchanged since the last one that changed.

Heavy per-frame analyzers (objects, pose, faces, OCR, CLIP, captions) reuse
their previous result on such frames instead of running again. The gate only
compares pixels (sampled frames with each other, and the dense motion frames
between them), so it is cheap and the optical-flow statistics can run beside
the heavy analyzers instead of before them.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..domain import Frame, Media
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

# Grey-level difference that counts as a changed pixel: above sensor and codec noise on area-averaged small frames.
CHANGED_GREY_LEVELS = 12


def _small_gray(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    gray = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(cv2.absdiff(a, b) > CHANGED_GREY_LEVELS))


@register_analyzer
class GateAnalyzer(Analyzer):
    name = "gate"
    media_types = frozenset({"video"})
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        """Compare each sampled frame with the last changed one, and check the motion frames in between.

        Comparing with the last changed frame (not simply the previous one)
        stops a slow drift from slipping through one small step at a time; the
        motion frames in between catch something that moved and came back.
        """
        threshold = self.settings.analyzers.gate.threshold
        motion = media.motion
        if motion is not None and motion.gray.size:
            size = (motion.gray.shape[2], motion.gray.shape[1])
            steps = [(motion.times_s[i], _changed_fraction(motion.gray[i], motion.gray[i - 1]))
                     for i in range(1, len(motion.gray))]
        else:
            height, width = media.frames[0].rgb.shape[:2]
            small_width = min(width, self.settings.media.motion_width)
            size = (small_width, max(2, round(height * small_width / width)))
            steps = []
        step_times = np.array([t for t, _ in steps])
        step_changes = np.array([c for _, c in steps])
        reference = _small_gray(media.frames[0], size)
        reference_t = media.frames[0].t_s
        changes, still = [], []
        for position, frame in enumerate(media.frames[1:], start=1):
            small = _small_gray(frame, size)
            pixel_change = _changed_fraction(small, reference)
            between = (step_times > reference_t) & (step_times <= frame.t_s)
            motion_change = float(step_changes[between].max()) if between.any() else 0.0
            if pixel_change < threshold and motion_change < threshold:
                still.append(position)
            else:
                reference, reference_t = small, frame.t_s
            changes.append({"index": frame.index, "pixel_change": round(pixel_change, 5),
                            "motion_change": round(motion_change, 5)})
        return AnalyzerOutput(data={"still_frames": still, "frame_changes": changes})
