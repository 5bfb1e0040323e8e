"""Learned heads: feature extractors, small classifiers on their vectors, and the tools to train and measure them.

``watchkeeper train`` fits a head on a folder-per-label data set
(``heads.training``), ``watchkeeper eval`` measures the whole product on one
(``heads.evaluation``), and the ``heads`` analyzer runs the shipped and
configured heads on every input.
"""

from .features import EXTRACTORS, FeatureExtractor, register_extractor
from .head import Head, HeadSet, ModelCard, extractor_class, load_extractors, load_heads

__all__ = [
    "EXTRACTORS", "FeatureExtractor", "Head", "HeadSet", "ModelCard", "extractor_class", "load_extractors",
    "load_heads", "register_extractor",
]
