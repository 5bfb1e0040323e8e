"""Facial expressions: MediaPipe faces, each classified by the FER model into seven emotions.

Off by default: expression from a CCTV-sized face is weak evidence. Fear,
anger, surprise and sadness (configurable) become ``emotion:<name>``
detections; every face's seven probabilities stay in the data.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..config import EmotionSettings
from ..domain import Detection, Media
from ..models.fer import EMOTIONS, EmotionClassifier, face_crop_gray
from ..models.mediapipe_models import DetectedFace, FaceDetector
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer, still_frame_positions

log = logging.getLogger(__name__)

FACE_MODEL = "mediapipe-face"
EMOTION_MODEL = "fer-emotion"


def _faces_to_classify(faces: list[DetectedFace], width: int, height: int,
                       settings: EmotionSettings) -> list[DetectedFace]:
    big_enough = [
        f for f in faces
        if f.score >= settings.min_face_score
        and min(f.box_xywh_norm[2] * width, f.box_xywh_norm[3] * height) >= settings.min_face_px
    ]
    big_enough.sort(key=lambda f: f.box_xywh_norm[2] * f.box_xywh_norm[3], reverse=True)
    return big_enough[: settings.max_faces]


@register_analyzer
class EmotionAnalyzer(Analyzer):
    name = "emotion"
    requires = ("gate",)
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        settings = self.settings.analyzers.emotion
        detector: FaceDetector = self.models.get(FACE_MODEL)
        classifier: EmotionClassifier = self.models.get(EMOTION_MODEL)
        model_id = f"{detector.model_id}+{classifier.model_id}"
        still = still_frame_positions(context)
        wanted = set(settings.labels)
        faces_data: list[dict[str, Any]] = []
        detections: list[Detection] = []
        latest: list[tuple[DetectedFace, np.ndarray]] = []
        runs = 0
        for position, frame in enumerate(media.frames):
            # An unchanged frame shows the same faces: reuse the previous frame's reading.
            reused = position > 0 and position in still
            if not reused:
                height, width = frame.rgb.shape[:2]
                faces = _faces_to_classify(detector.detect(frame.rgb), width, height, settings)
                probabilities = classifier.classify([face_crop_gray(frame.rgb, f.box_xywh_norm) for f in faces])
                latest = list(zip(faces, probabilities, strict=True))
                runs += 1
            for face, probs in latest:
                emotions = {name: round(float(p), 4) for name, p in zip(EMOTIONS, probs, strict=True)}
                box = tuple(round(float(v), 4) for v in face.box_xywh_norm)
                faces_data.append({
                    "frame_index": frame.index, "t_s": round(frame.t_s, 3), "reused": reused,
                    "box_xywh_norm": list(box), "face_score": round(face.score, 4), "emotions": emotions,
                    "top": max(emotions, key=emotions.get),
                })
                detections += [
                    Detection(
                        analyzer=self.name, modality="visual", label=f"emotion:{name}", score=score,
                        t_start_s=frame.t_s, t_end_s=frame.t_s, frame_index=frame.index, box_xywh_norm=box,
                        model_id=model_id,
                        attributes={"face_score": round(face.score, 4), **({"reused": True} if reused else {})},
                    )
                    for name, score in emotions.items() if name in wanted and score >= settings.min_score
                ]
        log.debug("emotion analysed", extra={"frames": len(media.frames), "model_runs": runs})
        return AnalyzerOutput(
            detections=detections,
            data={"model": model_id, "emotions": list(EMOTIONS), "frames_run": runs, "faces": faces_data},
        )
