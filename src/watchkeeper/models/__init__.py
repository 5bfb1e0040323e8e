"""Local model backends. Importing a backend module registers it."""

import importlib

from .registry import BACKENDS, ModelBackend, ModelRegistry, register_backend

BACKEND_MODULES = ("yamnet", "whisper", "minilm", "yolo", "mediapipe_models", "fer", "ocr", "transformers_models",
                  "weapon_windows")


def load_all_backends() -> dict[str, type[ModelBackend]]:
    """Import every built-in backend module so the registry knows them all."""
    for module in BACKEND_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return dict(BACKENDS)


__all__ = ["BACKENDS", "ModelBackend", "ModelRegistry", "load_all_backends", "register_backend"]
