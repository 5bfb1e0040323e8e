"""Fusion: evidence from every analyzer -> category scores -> incidents."""

from .engine import FusionEngine, FusionOutput
from .rules import FusionRules, build_rules

__all__ = ["FusionEngine", "FusionOutput", "FusionRules", "build_rules"]
