"""Optional Hugging Face ``transformers`` backends: CLIP-style zero-shot scoring and BLIP-style captions.

No package carries these weights here. A backend loads a folder written by
``save_pretrained`` (``models.weights_dirs.<name>`` or the analyzer's
``model`` setting), or a hub name, which is resolved to the local hub cache
and downloaded only where the hub is reachable and ``HF_HUB_OFFLINE`` is
unset. Loading from the folder itself never touches the network.

torch and transformers are imported inside ``load()`` only, so neither the
package nor the default pipeline pays for them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelUnavailableError
from .registry import ModelBackend, register_backend, unit_rows

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install 'watchkeeper[zeroshot]', then point the analyzer's `model` setting (or "
    "models.weights_dirs) at a folder written by save_pretrained, or at a hub name where the hub is reachable"
)
# Any one of these makes a folder loadable (single file or sharded, safetensors preferred).
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Everything a processor and a model need, minus duplicate weight formats (TF, Flax, ONNX).
HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]
BATCH_IMAGES = 8


def _hub_snapshot(repo_id: str) -> Path:
    """Local folder of a hub model: the cache, filled first where the hub is reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    log.info("resolving hub model", extra={"repo_id": repo_id})
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            # Older repositories carry only PyTorch pickles.
            folder = Path(snapshot_download(repo_id, allow_patterns=["pytorch_model.bin*"]))
    except (LocalEntryNotFoundError, HfHubHTTPError, ValueError) as exc:
        raise ModelUnavailableError(
            f"'{repo_id}' is neither a folder nor a hub model in the local cache, and the hub could not be "
            f"used ({type(exc).__name__}: {exc})"
        ) from exc
    return folder


def _model_id(folder: Path) -> str:
    """``org/name`` for a hub cache snapshot (``models--org--name/snapshots/<commit>``), else the folder name."""
    repo_folder = folder.parent.parent.name
    if folder.parent.name == "snapshots" and repo_folder.startswith("models--"):
        return repo_folder[len("models--"):].replace("--", "/")
    return folder.name


class TransformersBackend(ModelBackend):
    optional = True
    """A model and its processor from one ``save_pretrained`` folder."""

    package = "transformers"
    install_hint = INSTALL_HINT
    files: ClassVar[dict[str, str]] = {"config": "config.json"}
    # User folders and hub snapshots: there is no packaged file to pin a digest to.
    sha256: ClassVar[dict[str, str]] = {}
    requires_modules = ("torch", "transformers", "huggingface_hub")
    default_hub_name: ClassVar[str]

    def default_dir(self) -> Path:
        return self.resolve_source(self.default_hub_name)

    def resolve_source(self, user_source: str) -> Path:
        path = Path(user_source).expanduser()
        if path.is_dir():
            return path
        if path.exists() or path.is_absolute() or not HUB_NAME.match(user_source):
            raise ModelUnavailableError(f"folder {user_source} does not exist")
        return _hub_snapshot(user_source)

    def load(self, paths: dict[str, Path]) -> Any:
        folder = paths["config"].parent
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise ModelUnavailableError(
                f"model '{self.name}': {folder} has a config.json but no weights (one of {list(WEIGHT_FILES)})"
            )
        return self.build(folder)

    @abstractmethod
    def build(self, folder: Path) -> Any:
        """The runnable model from ``folder``, loaded with ``local_files_only`` (never the hub)."""


class TorchRunner:
    """A loaded model, its processor and the device it runs on; one inference at a time."""

    def __init__(self, model: Any, processor: Any, model_id: str) -> None:
        self.model = model.eval()
        self.processor = processor
        self.model_id = model_id
        self.device = "cpu"
        self._lock = threading.Lock()

    def _use_device(self, device: str) -> None:
        if device == self.device:
            return
        import torch

        available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
        if not available[device.split(":")[0]]:
            raise ModelUnavailableError(f"model '{self.model_id}': device '{device}' is not available to torch here")
        self.model.to(device)
        self.device = device


def _pooled(features: Any) -> Any:
    """transformers 5 returns an output object from get_*_features, 4.x a tensor."""
    return features if not hasattr(features, "pooler_output") else features.pooler_output


class ClipScorer(TorchRunner):
    """Images and sentences as unit vectors in one space, and CLIP's logit scale."""

    def __init__(self, model: Any, processor: Any, model_id: str) -> None:
        super().__init__(model, processor, model_id)
        self.logit_scale = model.logit_scale.detach().exp().item()
        self._text_cache: dict[tuple[str, ...], np.ndarray] = {}

    def embed_texts(self, texts: Sequence[str], device: str = "cpu") -> np.ndarray:
        """(len(texts), D) float32 unit vectors; the same sentences are embedded once."""
        key = tuple(texts)
        if key not in self._text_cache:
            import torch

            with self._lock, torch.inference_mode():
                self._use_device(device)
                inputs = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
                inputs = {k: v.to(device) for k, v in inputs.items()}
                vectors = _pooled(self.model.get_text_features(**inputs)).cpu().numpy()
            self._text_cache[key] = unit_rows(vectors)
        return self._text_cache[key]

    def embed_images(self, images: Sequence[np.ndarray], device: str = "cpu") -> np.ndarray:
        """(len(images), D) float32 unit vectors for RGB uint8 images."""
        import torch

        chunks = []
        with self._lock, torch.inference_mode():
            self._use_device(device)
            for start in range(0, len(images), BATCH_IMAGES):
                pixels = self.processor(images=list(images[start:start + BATCH_IMAGES]), return_tensors="pt")
                features = self.model.get_image_features(pixel_values=pixels["pixel_values"].to(device))
                chunks.append(_pooled(features).cpu().numpy())
        return unit_rows(np.concatenate(chunks))


class Captioner(TorchRunner):
    """One caption per image, with the mean per-token probability of the words it chose."""

    def caption(
        self, images: Sequence[np.ndarray], *, max_new_tokens: int, device: str = "cpu"
    ) -> list[tuple[str, float]]:
        import torch

        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        results: list[tuple[str, float]] = []
        with self._lock, torch.inference_mode():
            self._use_device(device)
            for start in range(0, len(images), BATCH_IMAGES):
                inputs = self.processor(images=list(images[start:start + BATCH_IMAGES]), return_tensors="pt")
                out = self.model.generate(
                    pixel_values=inputs["pixel_values"].to(device), max_new_tokens=max_new_tokens,
                    output_scores=True, return_dict_in_generate=True,
                )
                logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
                generated = out.sequences[:, -logprobs.shape[1]:]
                texts = self.processor.batch_decode(out.sequences, skip_special_tokens=True)
                for text, row, tokens in zip(texts, logprobs, generated, strict=True):
                    # Steps after the end of sequence are padding, not words the model chose.
                    ends = [i for i, token in enumerate(tokens.tolist()) if token in eos_ids]
                    chosen = row[: ends[0] + 1] if ends else row
                    results.append((text.strip(), float(chosen.mean().exp())))
        return results


@register_backend
class ClipBackend(TransformersBackend):
    name = "clip"
    description = "CLIP-style image/text model for zero-shot scene scores (optional, transformers)"
    default_hub_name = "openai/clip-vit-base-patch32"

    def build(self, folder: Path) -> ClipScorer:
        import torch
        from transformers import AutoModel, AutoProcessor

        # float32: some hub checkpoints are stored in half precision, which CPUs run slowly or not at all.
        model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        if not (hasattr(model, "get_image_features") and hasattr(model, "logit_scale")):
            raise ModelUnavailableError(
                f"model 'clip': {folder} holds a '{model.config.model_type}' model, not a CLIP-style image/text model"
            )
        return ClipScorer(model, AutoProcessor.from_pretrained(folder, local_files_only=True), _model_id(folder))


@register_backend
class BlipCaptionBackend(TransformersBackend):
    name = "blip_caption"
    description = "BLIP-style image captioning model (optional, transformers)"
    default_hub_name = "Salesforce/blip-image-captioning-base"

    def build(self, folder: Path) -> Captioner:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        except ValueError as exc:  # a config of a model type with no image-to-text head
            raise ModelUnavailableError(f"model 'blip_caption': {folder} holds no captioning model ({exc})") from exc
        return Captioner(model, AutoProcessor.from_pretrained(folder, local_files_only=True), _model_id(folder))
