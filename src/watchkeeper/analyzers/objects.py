"""COCO objects per frame (people, weapons, bags, vehicles...) from YOLOv3-tiny.

Frames the motion analyzer found unchanged reuse the previous frame's objects
instead of running the network again (the motion gate). The network's image
embedding per frame rides along on ``ObjectsOutput.embeddings`` for learned
heads; it stays out of the JSON result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..config import Settings
from ..domain import Detection, Media
from ..errors import ConfigError
from ..models.registry import ModelRegistry
from ..models.yolo import COCO_LABELS, EMBEDDING_DIM, FrameObjects, YoloV3Tiny
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer, still_frame_positions

log = logging.getLogger(__name__)

MODEL_NAME = "yolov3-tiny"


@dataclass
class ObjectsOutput(AnalyzerOutput):
    """``embeddings`` (not JSON): one YOLOv3-tiny layer-12 average-pooled vector per frame, in frame order."""

    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBEDDING_DIM), np.float32))


@register_analyzer
class ObjectsAnalyzer(Analyzer):
    name = "objects"
    requires = ("gate",)
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def __init__(self, settings: Settings, models: ModelRegistry) -> None:
        super().__init__(settings, models)
        unknown = sorted(set(settings.analyzers.objects.labels) - set(COCO_LABELS))
        if unknown:
            raise ConfigError(
                f"analyzers.objects.labels: unknown COCO class(es) {unknown}; allowed: {list(COCO_LABELS)}"
            )

    def analyze(self, media: Media, context: AnalysisContext) -> ObjectsOutput:
        settings = self.settings.analyzers.objects
        model: YoloV3Tiny = self.models.get(MODEL_NAME)
        if not media.frames:
            return ObjectsOutput(data={"model": model.model_id, "frames_run": 0, "frames": []})
        still = still_frame_positions(context)
        # The first frame has nothing to reuse, whatever the gate says.
        to_run = [pos for pos in range(len(media.frames)) if pos == 0 or pos not in still]
        found = model.detect(
            [media.frames[pos].rgb for pos in to_run],
            input_size=settings.input_size,
            min_score=settings.min_score,
            nms_iou=settings.nms_iou,
            batch_size=settings.batch_size,
            zoom_out=settings.zoom_out_images and media.info.media_type == "image",
        )
        by_position: dict[int, FrameObjects] = dict(zip(to_run, found))
        wanted = set(settings.labels)
        frames_data, detections, embeddings = [], [], []
        latest = by_position[0]
        for pos, frame in enumerate(media.frames):
            reused = pos not in by_position
            latest = latest if reused else by_position[pos]
            objects = [o for o in latest.objects if o.label in wanted]
            embeddings.append(latest.embedding)
            frames_data.append({
                "index": frame.index,
                "t_s": round(frame.t_s, 3),
                "reused": reused,
                "objects": [{"label": o.label, "score": o.score, "box_xywh_norm": list(o.box_xywh_norm)}
                            for o in objects],
            })
            detections += [
                Detection(analyzer=self.name, modality="visual", label=o.label, score=o.score,
                          t_start_s=frame.t_s, t_end_s=frame.t_s, frame_index=frame.index,
                          box_xywh_norm=o.box_xywh_norm, model_id=model.model_id,
                          attributes={"reused": True} if reused else {})
                for o in objects
            ]
        log.debug("objects analysed", extra={"frames": len(media.frames), "network_runs": len(to_run)})
        return ObjectsOutput(
            detections=detections,
            data={"model": model.model_id, "frames_run": len(to_run), "frames": frames_data},
            embeddings=np.stack(embeddings),
        )
