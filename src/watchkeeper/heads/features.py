"""Feature extractors for learned heads.

An extractor turns one time window of analysed media (the media and the
outputs of the analyzers that ran on it) into a fixed-length vector. Each has
a version string: a head records the version it was trained on and refuses
to run on another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ..analyzers.base import AnalyzerOutput
from ..domain import Media, MediaType, Modality


class FeatureExtractor(ABC):
    """Subclass per feature set; register with ``@register_extractor``.

    ``requires`` names the analyzers whose outputs ``extract`` reads (the
    heads analyzer runs after them). ``extract`` must give the same length
    for every window; ``window_s`` is the default window length heads built
    on this extractor use on audio and video (``None``: the whole media).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    media_types: ClassVar[frozenset[MediaType]]
    requires: ClassVar[tuple[str, ...]] = ()
    window_s: ClassVar[float | None] = None
    # The modality of the evidence its heads give: "audio" for features of the sound track.
    modality: ClassVar[Modality] = "visual"

    @abstractmethod
    def extract(self, media: Media, outputs: dict[str, AnalyzerOutput], t_start_s: float, t_end_s: float) -> np.ndarray:
        """A 1-D float32 feature vector for the window [t_start_s, t_end_s) (absolute seconds)."""

    def extract_windows(
        self, media: Media, outputs: dict[str, AnalyzerOutput], spans: Sequence[tuple[float, float]]
    ) -> list[np.ndarray]:
        """``extract`` for each window of one media; overridden where overlapping windows can share work."""
        return [self.extract(media, outputs, t_start_s, t_end_s) for t_start_s, t_end_s in spans]

    def quiet_windows(
        self, media: Media, outputs: dict[str, AnalyzerOutput], spans: Sequence[tuple[float, float]]
    ) -> list[bool]:
        """Windows that carry none of the signal this extractor describes (nothing moves, for flow).

        Heads built on it score such windows 0 instead of asking their model: a
        linear model extrapolates freely on inputs unlike any it was trained on,
        and "no motion" is not evidence of a fight whatever else the picture holds.
        """
        return [False] * len(spans)


EXTRACTORS: dict[str, type[FeatureExtractor]] = {}


def register_extractor(cls: type[FeatureExtractor]) -> type[FeatureExtractor]:
    EXTRACTORS[cls.name] = cls
    return cls
