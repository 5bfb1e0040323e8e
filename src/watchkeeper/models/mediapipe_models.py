"""MediaPipe's legacy solutions: one-person body pose (33 landmarks) and face detection.

The TFLite weights ship inside the ``mediapipe`` package (0.10.21, the last
release with bundled models). The solution graphs load them from the package's
own resource folder, so these backends cannot take weights from another folder.
A solution object is not safe to call from two threads at once: each wrapper
serialises its calls with a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelUnavailableError
from ..geometry import xywh_iou
from .registry import ModelBackend, package_dir, register_backend

INSTALL_HINT = "pip install --no-deps mediapipe==0.10.21 (with absl-py, attrs, flatbuffers, protobuf, matplotlib)"


class _MediapipeBackend(ModelBackend):
    package = "mediapipe"
    install_hint = INSTALL_HINT
    requires_modules = ("mediapipe",)

    def default_dir(self) -> Path:
        return package_dir("mediapipe")

    def _check_packaged(self, paths: dict[str, Path]) -> None:
        packaged = self.default_dir()
        for key, path in paths.items():
            if path.resolve() != (packaged / self.files[key]).resolve():
                raise ModelUnavailableError(
                    f"model '{self.name}': MediaPipe's solutions read their weights from the installed "
                    f"mediapipe package only; remove models.weights_dirs['{self.name}']"
                )


class PoseEstimator:
    """MediaPipe Pose (full landmark model) on still images."""

    model_id = "mediapipe-pose-full"

    def __init__(self) -> None:
        import mediapipe as mp

        # static_image_mode: every call detects afresh; crops of different people are not a video stream.
        # A detection floor under the default 0.5 finds about a fifth more people in CCTV footage;
        # the landmarks of poor detections come with low visibilities, which the analyzer filters.
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=True, model_complexity=1, enable_segmentation=False, min_detection_confidence=0.3
        )
        self._lock = threading.Lock()

    def estimate(self, rgb: np.ndarray) -> np.ndarray | None:
        """(33, 3) landmarks ``[x, y, visibility]``, x and y as fractions of the image, or None.

        Landmarks the model extrapolates outside the image keep coordinates
        outside 0..1 (with a low visibility).
        """
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        with self._lock:
            result = self._pose.process(image)
        if result.pose_landmarks is None:
            return None
        return np.array([[lm.x, lm.y, lm.visibility] for lm in result.pose_landmarks.landmark], np.float32)


@register_backend
class MediapipePoseBackend(_MediapipeBackend):
    name = "mediapipe-pose"
    description = "MediaPipe Pose: person detector + 33-landmark full model, one person per image"
    files = {
        "detector": "modules/pose_detection/pose_detection.tflite",
        "landmarks": "modules/pose_landmark/pose_landmark_full.tflite",
    }
    sha256 = {
        "detector": "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "landmarks": "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    }

    def load(self, paths: dict[str, Path]) -> PoseEstimator:
        self._check_packaged(paths)
        return PoseEstimator()


@dataclass(frozen=True)
class DetectedFace:
    box_xywh_norm: tuple[float, float, float, float]
    score: float


def _square_tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """(x0, y0, side) squares of the short side covering the frame, overlapping by half a tile or more."""
    side = min(width, height)
    long_side = max(width, height)
    count = 1 if long_side == side else int(np.ceil((long_side - side) / (side / 2))) + 1
    starts = np.linspace(0, long_side - side, count).round().astype(int)
    return [(int(s), 0, side) if width >= height else (0, int(s), side) for s in starts]


class FaceDetector:
    """MediaPipe face detection, full-range model (faces up to about 5 m from the camera).

    The model sees a 192x192 square: a wide frame squeezed into it loses its
    small faces (a 76 px face in a 1280x720 frame is missed), so frames are
    cut into overlapping squares of their short side and the results merged.
    """

    model_id = "mediapipe-face-full-range"

    def __init__(self, min_score: float = 0.5) -> None:
        import mediapipe as mp

        self._detector: Any = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_score
        )
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        height, width = rgb.shape[:2]
        found: list[DetectedFace] = []
        for x0, y0, side in _square_tiles(width, height):
            tile = np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side], dtype=np.uint8)
            with self._lock:
                result = self._detector.process(tile)
            for detection in result.detections or ():
                box = detection.location_data.relative_bounding_box
                left, top = max(0.0, x0 + box.xmin * side), max(0.0, y0 + box.ymin * side)
                right = min(float(width), x0 + (box.xmin + box.width) * side)
                bottom = min(float(height), y0 + (box.ymin + box.height) * side)
                if right > left and bottom > top:
                    frame_box = (left / width, top / height, (right - left) / width, (bottom - top) / height)
                    found.append(DetectedFace(frame_box, float(detection.score[0])))
        # The same face seen in two overlapping tiles: keep the surer one.
        kept: list[DetectedFace] = []
        for face in sorted(found, key=lambda f: f.score, reverse=True):
            if all(xywh_iou(face.box_xywh_norm, k.box_xywh_norm) < 0.3 for k in kept):
                kept.append(face)
        return kept


@register_backend
class MediapipeFaceBackend(_MediapipeBackend):
    name = "mediapipe-face"
    description = "MediaPipe face detection (full-range sparse model)"
    files = {"detector": "modules/face_detection/face_detection_full_range_sparse.tflite"}
    sha256 = {"detector": "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"}

    def load(self, paths: dict[str, Path]) -> FaceDetector:
        self._check_packaged(paths)
        # A low floor here; the emotion analyzer applies its own face-score threshold.
        return FaceDetector(min_score=0.3)
