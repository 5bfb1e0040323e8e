"""Watchkeeper: multimodal incident detection with local models.

>>> from watchkeeper import Pipeline
>>> result = Pipeline().analyze("lobby.jpg")  # doctest: +SKIP

Names are imported on first use, so ``import watchkeeper.samples`` or the
settings do not pay for the media and model stack.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AnalysisResult": "domain", "Detection": "domain", "Incident": "domain",
    "BatchItem": "batch", "Pipeline": "pipeline",
    "Settings": "config", "load_settings": "config",
    "WatchkeeperError": "errors",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'watchkeeper' has no attribute '{name}'")
