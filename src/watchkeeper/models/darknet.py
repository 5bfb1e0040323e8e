"""A Darknet network (``.cfg`` and ``.weights``) as an ONNX graph, run by onnxruntime.

The graph is built at load from the packaged files: batch normalisation
folded into each convolution, one graph output per Darknet layer asked for
(named ``layer<index>``, Darknet's own numbering), and only the layers those
outputs need. A ``[yolo]`` layer's output is its convolution's raw output;
``decode_yolo`` turns it into the rows OpenCV's Darknet importer gives
(centre, size, objectness, class probabilities), which the detector code was
written against.

Why not OpenCV's DNN module, which reads Darknet files itself: onnxruntime
runs YOLOv3-tiny about twice as fast on two cores (measured on an Intel Xeon
with AVX-512: a 768x448 pass of the whole network 54 → 32 ms, a 704x384
pass to layer 10 17 → 10 ms), and it needs no network re-planned per input
shape. Only the layer kinds YOLOv3 and YOLOv3-tiny use are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from ..errors import ModelError

# Darknet's weights file opens with major, minor and revision (int32) and the images seen (int64 from 0.2).
_HEADER_WORDS = 5
_BN_EPSILON = 1e-5  # Darknet's, in its normalisation
_LEAKY_SLOPE = 0.1
INPUT = "image"


def layer_output(index: int) -> str:
    return f"layer{index}"


@dataclass(frozen=True)
class YoloLayer:
    """A ``[yolo]`` layer: the Darknet index of its output, its anchors (pixels at the network's input size)."""

    index: int
    anchors: np.ndarray  # (boxes per cell, 2) width, height
    classes: int


@dataclass
class DarknetGraph:
    """Every node and weight of the network; ``model`` makes the graph of the outputs asked for."""

    nodes: list  # onnx.NodeProto, in order
    weights: dict  # name → onnx.TensorProto
    layers: int
    yolo_layers: list[YoloLayer]

    def model(self, outputs: Sequence[int]) -> bytes:
        """A serialised ONNX model whose outputs are these layers' (NCHW float32), with only the nodes they need."""
        from onnx import TensorProto, helper

        for index in outputs:
            if not 0 <= index < self.layers:
                raise ModelError(f"the network has layers 0-{self.layers - 1}, not {index}")
        needed = {layer_output(index) for index in outputs}
        kept = []
        for node in reversed(self.nodes):
            if needed.intersection(node.output):
                kept.append(node)
                needed.update(name for name in node.input if name)
        graph = helper.make_graph(
            kept[::-1], "darknet",
            [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 3, "height", "width"])],
            [helper.make_tensor_value_info(layer_output(index), TensorProto.FLOAT, None) for index in outputs],
            [tensor for name, tensor in self.weights.items() if name in needed],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        return model.SerializeToString()


def _sections(cfg_text: str) -> list[dict[str, str]]:
    sections: list[dict[str, str]] = []
    for raw in cfg_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append({"type": line[1:-1].strip()})
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
        else:
            raise ModelError(f"unreadable line in a Darknet config: {raw!r}")
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise ModelError("a Darknet config starts with a [net] section")
    return sections


def _ints(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part.strip()]


def read_darknet(cfg: Path, weights: Path) -> DarknetGraph:
    """The network of a Darknet config and weights file; ModelError if either is not one this reads."""
    from onnx import helper, numpy_helper

    sections = _sections(cfg.read_text(encoding="utf-8"))
    values = np.fromfile(weights, dtype=np.float32)
    taken = _HEADER_WORDS

    def take(count: int) -> np.ndarray:
        nonlocal taken
        if taken + count > len(values):
            raise ModelError(f"{weights} ends before the weights {cfg.name} describes")
        part = values[taken:taken + count]
        taken += count
        return part

    nodes, tensors = [], {}
    channels: list[int] = []
    yolo_layers: list[YoloLayer] = []
    for index, section in enumerate(sections[1:]):
        kind, name = section["type"], layer_output(index)
        source = INPUT if index == 0 else layer_output(index - 1)
        before = 3 if index == 0 else channels[-1]
        try:
            if kind == "convolutional":
                filters, size, stride = int(section["filters"]), int(section["size"]), int(section.get("stride", 1))
                pad = size // 2 if int(section.get("pad", 0)) else int(section.get("padding", 0))
                activation = section.get("activation", "logistic")
                if activation not in ("leaky", "linear"):
                    raise ModelError(f"layer {index}: activation {activation!r} is not read")
                if int(section.get("batch_normalize", 0)):
                    bias, scale, mean, variance = (take(filters) for _ in range(4))
                    kernel = take(filters * before * size * size).reshape(filters, before, size, size)
                    gain = scale / np.sqrt(variance + _BN_EPSILON)
                    kernel, bias = kernel * gain[:, None, None, None], bias - mean * gain
                else:
                    bias = take(filters)
                    kernel = take(filters * before * size * size).reshape(filters, before, size, size)
                tensors[f"{name}.kernel"] = numpy_helper.from_array(kernel.astype(np.float32), f"{name}.kernel")
                tensors[f"{name}.bias"] = numpy_helper.from_array(bias.astype(np.float32), f"{name}.bias")
                convolved = f"{name}.linear" if activation == "leaky" else name
                nodes.append(helper.make_node("Conv", [source, f"{name}.kernel", f"{name}.bias"], [convolved],
                                              kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4))
                if activation == "leaky":
                    nodes.append(helper.make_node("LeakyRelu", [convolved], [name], alpha=_LEAKY_SLOPE))
                channels.append(filters)
            elif kind == "maxpool":
                size, stride = int(section["size"]), int(section.get("stride", 1))
                # Darknet pads size - 1 pixels, the odd one on the right and bottom: a 2x2 pool of stride 1 keeps
                # the size, one of stride 2 halves an even side.
                padding = int(section.get("padding", size - 1))
                pads = [padding // 2, padding // 2, padding - padding // 2, padding - padding // 2]
                nodes.append(helper.make_node("MaxPool", [source], [name], kernel_shape=[size, size],
                                              strides=[stride, stride], pads=pads))
                channels.append(before)
            elif kind == "route":
                routed = [k if k >= 0 else index + k for k in _ints(section["layers"])]
                if any(not 0 <= k < index for k in routed):
                    raise ModelError(f"layer {index} routes from a layer that is not before it: {routed}")
                if len(routed) == 1:
                    nodes.append(helper.make_node("Identity", [layer_output(routed[0])], [name]))
                else:
                    nodes.append(helper.make_node("Concat", [layer_output(k) for k in routed], [name], axis=1))
                channels.append(sum(channels[k] for k in routed))
            elif kind == "upsample":
                stride = int(section.get("stride", 2))
                scales = numpy_helper.from_array(np.array([1, 1, stride, stride], np.float32), f"{name}.scales")
                tensors[scales.name] = scales
                nodes.append(helper.make_node("Resize", [source, "", scales.name], [name], mode="nearest",
                                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
                channels.append(before)
            elif kind == "yolo":
                mask = _ints(section["mask"])
                anchors = np.asarray(_ints(section["anchors"]), np.float32).reshape(-1, 2)[mask]
                classes = int(section["classes"])
                if before != len(mask) * (5 + classes):
                    raise ModelError(f"layer {index}: {before} channels for {len(mask)} boxes of {classes} classes")
                nodes.append(helper.make_node("Identity", [source], [name]))
                yolo_layers.append(YoloLayer(index, anchors, classes))
                channels.append(before)
            else:
                raise ModelError(f"layer {index}: Darknet layers of kind [{kind}] are not read")
        except (KeyError, ValueError) as exc:
            raise ModelError(f"layer {index} ([{kind}]) of {cfg.name} is not understood: {exc}") from exc
    if taken != len(values):
        raise ModelError(f"{weights} holds {len(values) - taken} more numbers than {cfg.name} describes")
    return DarknetGraph(nodes, tensors, len(sections) - 1, yolo_layers)


def decode_yolo(raw: np.ndarray, layer: YoloLayer, input_hw: tuple[int, int]) -> np.ndarray:
    """A ``[yolo]`` layer's raw output (batch, boxes x (5 + classes), rows, cols) as (batch, rows x cols x boxes,
    5 + classes): box centre and size normalised to the input, objectness, then each class's probability
    (its own times the objectness), a cell's boxes after one another, cells row by row."""
    batch, _, rows, cols = raw.shape
    boxes = len(layer.anchors)
    cells = raw.reshape(batch, boxes, 5 + layer.classes, rows, cols).transpose(0, 3, 4, 1, 2)
    decoded = np.empty_like(cells)
    decoded[..., 0] = (np.arange(cols)[None, None, :, None] + expit(cells[..., 0])) / cols
    decoded[..., 1] = (np.arange(rows)[None, :, None, None] + expit(cells[..., 1])) / rows
    decoded[..., 2] = np.exp(cells[..., 2]) * layer.anchors[:, 0] / input_hw[1]
    decoded[..., 3] = np.exp(cells[..., 3]) * layer.anchors[:, 1] / input_hw[0]
    decoded[..., 4] = expit(cells[..., 4])
    decoded[..., 5:] = expit(cells[..., 5:]) * decoded[..., 4:5]
    return decoded.reshape(batch, rows * cols * boxes, 5 + layer.classes)
