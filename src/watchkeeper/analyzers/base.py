"""The analyzer interface: media in, ``Detection``s (and per-modality data) out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import Settings
from ..domain import Detection, Media, MediaType
from ..models.registry import ModelRegistry


@dataclass
class AnalyzerOutput:
    """What one analyzer found.

    ``data`` is JSON-serialisable per-modality output (a transcript, the
    audio-event timeline, objects per frame...) that later analyzers in the
    same run may read and that lands in ``AnalysisResult.outputs``.
    """

    detections: list[Detection] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnalysisContext:
    """Outputs of the analyzers that already ran on this media, by name, and the camera it came from."""

    settings: Settings
    outputs: dict[str, AnalyzerOutput] = field(default_factory=dict)
    camera: str | None = None


class Analyzer(ABC):
    """Subclass per signal; register with ``@register_analyzer``.

    ``media_types`` says which media it applies to; ``requires`` names the
    analyzers whose output it reads: when they run on the same media they
    finish first, and when they are disabled or failed the analyzer runs
    without them. Analyzers with nothing between them run concurrently.
    """

    name: ClassVar[str]
    media_types: ClassVar[frozenset[MediaType]]
    requires: ClassVar[tuple[str, ...]] = ()
    # Whether the analyzer is worth running on this media at all (e.g. audio analyzers need a track).
    needs_audio: ClassVar[bool] = False
    needs_frames: ClassVar[bool] = False

    def __init__(self, settings: Settings, models: ModelRegistry) -> None:
        self.settings = settings
        self.models = models

    def applies_to(self, media: Media) -> bool:
        if media.info.media_type not in self.media_types:
            return False
        if self.needs_audio and (media.audio is None or len(media.audio) == 0):
            return False
        return not (self.needs_frames and not media.frames)

    @abstractmethod
    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        """Run on decoded media; raise ``AnalysisError`` for a failure of this analyzer alone."""

    def gives_alike(self, output: AnalyzerOutput, settings: Settings) -> bool:
        """Whether ``output``, made by this analyzer under ``settings``, is what it makes of the same media under
        its own (given its inputs alike too): by default, when its section of the settings is the same."""
        return getattr(settings.analyzers, self.name, None) == getattr(self.settings.analyzers, self.name, None)


ANALYZERS: dict[str, type[Analyzer]] = {}


def register_analyzer(cls: type[Analyzer]) -> type[Analyzer]:
    ANALYZERS[cls.name] = cls
    return cls


def still_frame_positions(context: AnalysisContext) -> frozenset[int]:
    """Positions in ``media.frames`` that the motion gate found unchanged since the last changed one.

    Heavy per-frame analyzers reuse the previous frame's result there instead
    of running again; they declare ``requires = ("gate", ...)``.
    """
    gate = context.outputs.get("gate")
    return frozenset(gate.data.get("still_frames", ())) if gate else frozenset()
