"""Emotion (MediaPipe faces + FER) and OCR (RapidOCR) on real pictures and drawn text; missing weights."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data as skdata

from watchkeeper.analyzers.base import AnalysisContext, AnalyzerOutput
from watchkeeper.analyzers.emotion import EmotionAnalyzer
from watchkeeper.analyzers.ocr import OcrAnalyzer
from watchkeeper.config import ModelSettings, Settings
from watchkeeper.domain import Frame, Media, MediaInfo
from watchkeeper.errors import ModelUnavailableError
from watchkeeper.models.fer import EMOTIONS
from watchkeeper.models.registry import BACKENDS, ModelRegistry


def media_of(frames: list[np.ndarray], interval_s: float = 1.0) -> Media:
    height, width = frames[0].shape[:2]
    info = MediaInfo(media_type="image" if len(frames) == 1 else "video", source="test", format="raw",
                     sha256="0" * 64, size_bytes=0, width=width, height=height, frames_sampled=len(frames))
    return Media(info=info, frames=[Frame(i, i * interval_s, np.ascontiguousarray(f)) for i, f in enumerate(frames)])


def grace_hopper() -> np.ndarray:
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


@pytest.fixture(scope="module")
def models():
    return ModelRegistry()


@pytest.fixture(scope="module")
def emotion(models):
    settings = Settings()
    settings.analyzers.emotion.enabled = True
    return EmotionAnalyzer(settings, models)


@pytest.fixture(scope="module")
def ocr(models):
    settings = Settings()
    settings.analyzers.ocr.enabled = True
    settings.analyzers.ocr.frame_step = 2
    return OcrAnalyzer(settings, models)


# --- emotion --------------------------------------------------------------------------------------


def test_emotion_reads_grace_hoppers_face(emotion):
    output = emotion.analyze(media_of([grace_hopper()]), AnalysisContext(emotion.settings))
    (face,) = output.data["faces"]
    assert list(face["emotions"]) == list(EMOTIONS)
    assert sum(face["emotions"].values()) == pytest.approx(1.0, abs=0.01)
    x, y, w, h = face["box_xywh_norm"]
    # Her face is in the upper middle of the portrait.
    assert 0.2 < x + w / 2 < 0.8 and 0.2 < y + h / 2 < 0.6 and 0.15 < w < 0.6
    for detection in output.detections:
        assert detection.label.removeprefix("emotion:") in emotion.settings.analyzers.emotion.labels
        assert detection.score >= emotion.settings.analyzers.emotion.min_score


def test_emotion_sees_the_astronauts_smile_and_no_face_in_coffee(emotion):
    (face,) = emotion.analyze(media_of([skdata.astronaut()]), AnalysisContext(emotion.settings)).data["faces"]
    assert face["top"] == "happy"
    empty = emotion.analyze(media_of([skdata.coffee()]), AnalysisContext(emotion.settings))
    assert empty.data["faces"] == [] and empty.detections == []


def test_emotion_finds_a_small_face_in_a_wide_frame(emotion):
    # A 76 px face in a 1280x720 frame: lost when the whole frame is squeezed into the detector's input.
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[300:700, 850:1250] = cv2.resize(skdata.astronaut(), (400, 400))
    (face,) = emotion.analyze(media_of([frame]), AnalysisContext(emotion.settings)).data["faces"]
    x, y, _, _ = face["box_xywh_norm"]
    assert 850 / 1280 < x < 1250 / 1280 and 300 / 720 < y < 700 / 720
    assert face["top"] == "happy"


def test_emotion_labels_and_motion_gate(models):
    settings = Settings()
    settings.analyzers.emotion.labels = ["happy"]
    analyzer = EmotionAnalyzer(settings, models)
    context = AnalysisContext(settings, outputs={"gate": AnalyzerOutput(data={"still_frames": [1]})})
    output = analyzer.analyze(media_of([skdata.astronaut()] * 2), context)
    assert output.data["frames_run"] == 1
    assert [(d.label, d.frame_index, d.attributes.get("reused", False)) for d in output.detections] == [
        ("emotion:happy", 0, False), ("emotion:happy", 1, True)]


# --- OCR ------------------------------------------------------------------------------------------


def sign(text: str, width: int = 640, height: int = 360) -> np.ndarray:
    frame = np.full((height, width, 3), 235, np.uint8)
    cv2.putText(frame, text, (60, 220), cv2.FONT_HERSHEY_SIMPLEX, 3.2, (20, 20, 20), 8, cv2.LINE_AA)
    return frame


def squashed(text: str) -> str:
    return "".join(text.split()).upper()


def test_ocr_reads_a_drawn_sign(ocr):
    output = ocr.analyze(media_of([sign("EXIT 12")]), AnalysisContext(ocr.settings))
    (text,) = output.data["texts"]
    assert squashed(text["text"]) == "EXIT12"
    assert text["score"] > 0.8 and text["frame_index"] == 0 and text["t_s"] == 0.0
    x, y, w, _ = text["box_xywh_norm"]
    assert 0.05 < x < 0.2 and 0.3 < y < 0.6 and w > 0.5
    (detection,) = output.detections
    assert detection.label == "ocr:text" and squashed(detection.attributes["text"]) == "EXIT12"


def test_ocr_on_video_reads_every_nth_changed_frame_and_merges_repeats(ocr):
    frames = [sign("EXIT 12")] * 4 + [sign("DANGER")] * 2 + [np.full((360, 640, 3), 235, np.uint8)] * 2
    # Frames 1-3 and 5 are unchanged since the frame before: frame 2 need not be read again.
    context = AnalysisContext(ocr.settings, outputs={"gate": AnalyzerOutput(data={"still_frames": [1, 2, 3, 5, 7]})})
    output = ocr.analyze(media_of(frames), context)
    assert output.data["frames_run"] == 3  # frames 0, 4 and 6; 2 was unchanged
    texts = [(squashed(t["text"]), t["t_s"], t["t_end_s"]) for t in output.data["texts"]]
    assert texts == [("EXIT12", 0.0, 2.0), ("DANGER", 4.0, 4.0)]
    assert [(d.t_start_s, d.t_end_s) for d in output.detections] == [(0.0, 2.0), (4.0, 4.0)]


# --- missing weights ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mediapipe-pose", "mediapipe-face", "fer-emotion", "rapidocr"])
def test_missing_weights_name_the_files(tmp_path, name):
    registry = ModelRegistry(ModelSettings(weights_dirs={name: tmp_path}))
    with pytest.raises(ModelUnavailableError) as caught:
        registry.get(name)
    for relative in BACKENDS[name].files.values():
        assert relative.split("/")[-1] in str(caught.value)


def test_mediapipe_weights_cannot_come_from_another_folder(tmp_path):
    backend = BACKENDS["mediapipe-face"]
    for relative in backend.files.values():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(backend().default_dir() / relative, tmp_path / relative)
    with pytest.raises(ModelUnavailableError, match="mediapipe package only"):
        ModelRegistry(ModelSettings(weights_dirs={"mediapipe-face": tmp_path})).get("mediapipe-face")
