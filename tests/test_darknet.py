"""Darknet networks read into ONNX graphs (models.darknet), checked against OpenCV's own Darknet reader."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from skimage import data

from watchkeeper.errors import ModelError
from watchkeeper.models import load_all_backends
from watchkeeper.models.darknet import decode_yolo, layer_output, read_darknet
from watchkeeper.models.registry import ModelRegistry
from watchkeeper.models.yolo import YoloV3Tiny

# OpenCV names a convolution's activation after the layer that follows it: Darknet layer k is "leaky_{k+1}".
OPENCV_ACTIVATION = {8: "leaky_9", 10: "leaky_11", 12: "leaky_13"}
# OpenCV's yolo layers give 0 for class probabilities at or under this.
OPENCV_CLASS_FLOOR = 0.2


@pytest.fixture(scope="module")
def yolo_files():
    load_all_backends()
    paths, _ = ModelRegistry().resolve_files("yolov3-tiny")
    return paths["config"], paths["weights"]


def opencv_outputs(cfg, weights, blob, names):
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setInput(blob)
    return net.forward(names)


def assert_same_detections(ours: np.ndarray, opencv: np.ndarray) -> None:
    """Rows of (box, objectness, class probabilities) alike, OpenCV's floored class probabilities aside."""
    opencv = opencv.reshape(ours.shape)
    assert np.allclose(ours[:, :5], opencv[:, :5], atol=1e-3)
    kept = opencv[:, 5:] > 0
    assert np.allclose(ours[:, 5:][kept], opencv[:, 5:][kept], atol=1e-3)
    assert (ours[:, 5:][~kept] <= OPENCV_CLASS_FLOOR + 1e-3).all()


@pytest.mark.parametrize("size", [(416, 416), (768, 448)])
def test_yolov3_tiny_gives_what_opencv_reads_from_the_same_files(yolo_files, size):
    cfg, weights = yolo_files
    model = ModelRegistry().get("yolov3-tiny")
    image = np.full((size[1], size[0], 3), 114, np.uint8)  # the astronaut small enough to be found
    image[size[1] // 4:size[1] * 3 // 4, size[0] // 4:size[0] * 3 // 4] = cv2.resize(data.astronaut(),
                                                                                   (size[0] // 2, size[1] // 2))
    blob = cv2.dnn.blobFromImage(image, 1 / 255.0, size, swapRB=False, crop=False)
    theirs = opencv_outputs(cfg, weights, blob, [*OPENCV_ACTIVATION.values(), "yolo_16", "yolo_23"])
    ours = model._run(blob, [*OPENCV_ACTIVATION, 16, 23])
    for mine, reference in zip(ours[:3], theirs[:3]):
        assert mine.shape == reference.shape
        assert np.allclose(mine, reference, atol=2e-3 * np.abs(reference).max())
    for mine, reference in zip(ours[3:], theirs[3:]):
        assert_same_detections(mine[0], reference)
    assert max(head[0][:, 5].max() for head in ours[3:]) > 0.25  # a person found: real detections compared


TINY_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
filters=21
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=4,6, 10,12, 20,18
classes=2
num=3

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1, 1

[convolutional]
filters=21
size=3
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=4,6, 10,12, 20,18
classes=2
num=3
"""


def tiny_weights(path, extra: int = 0, missing: int = 0):
    sizes = [8 * 4 + 8 * 3 * 9, 16 * 4 + 16 * 8 * 9, 21 + 21 * 16, 21 + 21 * 24 * 9]
    rng = np.random.default_rng(3)
    values = rng.normal(0, 0.3, sum(sizes) + extra - missing).astype(np.float32)
    # Batch-norm variances must be positive: the third block of each normalised layer's four.
    for start, filters in ((0, 8), (sizes[0], 16)):
        values[start + 3 * filters:start + 4 * filters] = rng.uniform(0.5, 2.0, filters)
    header = np.array([0, 2, 0], np.int32).tobytes() + np.array([0], np.int64).tobytes()
    path.write_bytes(header + values.tobytes())
    return path


def test_every_layer_kind_read_gives_what_opencv_reads(tmp_path):
    """Normalised and plain convolutions (stride 1 and 2), both kinds of max pool, routes of one and two layers,
    upsampling and yolo layers, on a network the test writes with random weights."""
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG, encoding="utf-8")
    weights = tiny_weights(tmp_path / "tiny.weights")
    graph = read_darknet(cfg, weights)
    import onnxruntime as ort

    session = ort.InferenceSession(graph.model([3, 5, 8, 10]), providers=["CPUExecutionProvider"])
    blob = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    pooled, first, upsampled_mix, second = session.run(None, {"image": blob})
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(blob)
    their_pool, their_first, their_second = net.forward(["pool_3", "yolo_5", "yolo_10"])
    assert np.allclose(pooled, their_pool, atol=1e-4)
    assert_same_detections(decode_yolo(first, graph.yolo_layers[0], (64, 96))[0], their_first)
    assert_same_detections(decode_yolo(second, graph.yolo_layers[1], (64, 96))[0], their_second)
    assert upsampled_mix.shape == (1, 24, 32, 48)


def test_a_graph_holds_only_the_layers_its_outputs_need(yolo_files):
    graph = read_darknet(*yolo_files)
    features = onnx.load_from_string(graph.model([8, 10]))
    made = {output for node in features.graph.node for output in node.output}
    assert layer_output(10) in made and layer_output(11) not in made and layer_output(12) not in made
    assert len(features.graph.initializer) == 2 * 6  # kernel and bias of the six convolutions up to layer 10
    whole = onnx.load_from_string(graph.model([12, 16, 23]))
    assert {layer_output(16), layer_output(23)} <= {output for node in whole.graph.node for output in node.output}


def test_files_that_are_not_such_a_network_are_model_errors(tmp_path, yolo_files):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG, encoding="utf-8")
    with pytest.raises(ModelError, match="ends before"):
        read_darknet(cfg, tiny_weights(tmp_path / "short.weights", missing=5))
    with pytest.raises(ModelError, match="5 more numbers"):
        read_darknet(cfg, tiny_weights(tmp_path / "long.weights", extra=5))
    shortcut = tmp_path / "shortcut.cfg"
    shortcut.write_text(TINY_CFG.replace("[maxpool]\nsize=2\nstride=1", "[shortcut]\nfrom=-2"), encoding="utf-8")
    with pytest.raises(ModelError, match=r"\[shortcut\] are not read"):
        read_darknet(shortcut, tmp_path / "long.weights")
    with pytest.raises(ModelError, match="not a YOLOv3-tiny network"):
        YoloV3Tiny(read_darknet(cfg, tiny_weights(tmp_path / "tiny.weights")), threads=1)
    with pytest.raises(ModelError, match="layers 0-23, not 30"):
        read_darknet(*yolo_files).model([30])
