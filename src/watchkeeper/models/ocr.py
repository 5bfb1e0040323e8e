"""Scene text (signs, plates, captions): RapidOCR's PP-OCRv4 detector and recogniser on onnxruntime.

The three ONNX models ship inside ``rapidocr-onnxruntime``; the recogniser
carries its character list in its own metadata (Chinese and Latin script).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .registry import CUDA_PROVIDER, ModelBackend, package_dir, register_backend


@dataclass(frozen=True)
class ReadText:
    text: str
    score: float
    box_xywh_norm: tuple[float, float, float, float]


class TextReader:
    model_id = "rapidocr-ppocrv4"

    def __init__(self, paths: dict[str, Path], *, cuda: bool = False) -> None:
        from rapidocr_onnxruntime import RapidOCR

        # RapidOCR builds its own sessions: it takes a CUDA flag per model, not a provider list.
        self._ocr = RapidOCR(
            det_model_path=str(paths["detector"]),
            cls_model_path=str(paths["orientation"]),
            rec_model_path=str(paths["recogniser"]),
            det_use_cuda=cuda, cls_use_cuda=cuda, rec_use_cuda=cuda,
        )
        # RapidOCR keeps per-call thresholds on the object.
        self._lock = threading.Lock()

    def read(self, rgb: np.ndarray, *, min_score: float = 0.5) -> list[ReadText]:
        """Text lines in an RGB frame, each with its recognition score and axis-aligned box."""
        height, width = rgb.shape[:2]
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        with self._lock:
            lines, _elapsed = self._ocr(bgr, text_score=min_score)
        found = []
        for quad, text, score in lines or ():
            points = np.asarray(quad, np.float32)
            x0, y0 = np.clip(points.min(axis=0), 0, (width, height))
            x1, y1 = np.clip(points.max(axis=0), 0, (width, height))
            if text.strip() and x1 > x0 and y1 > y0:
                box = (float(x0 / width), float(y0 / height), float((x1 - x0) / width), float((y1 - y0) / height))
                found.append(ReadText(text.strip(), float(score), box))
        return found


@register_backend
class RapidOcrBackend(ModelBackend):
    name = "rapidocr"
    description = "RapidOCR: PP-OCRv4 text detector + recogniser, PP-OCR v2 orientation classifier (ONNX)"
    package = "rapidocr-onnxruntime"
    install_hint = "pip install rapidocr-onnxruntime==1.4.4 (with numpy<2 and opencv 4.11.0.86)"
    files = {
        "detector": "models/ch_PP-OCRv4_det_infer.onnx",
        "recogniser": "models/ch_PP-OCRv4_rec_infer.onnx",
        "orientation": "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    }
    sha256 = {
        "detector": "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        "recogniser": "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        "orientation": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    }
    requires_modules = ("rapidocr_onnxruntime", "onnxruntime")

    def default_dir(self) -> Path:
        return package_dir("rapidocr_onnxruntime")

    def load(self, paths: dict[str, Path]) -> TextReader:
        return TextReader(paths, cuda=self.onnx_providers()[0] == CUDA_PROVIDER)
