"""models.onnx_device: the onnxruntime models take the CUDA provider first when asked and available.

This machine has the CPU build of onnxruntime, so the CUDA case is shown with onnxruntime claiming the
provider (the GPU build's answer) and the sessions' provider lists recorded; the fallback is real.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnxruntime
import pytest

from watchkeeper.config import ModelSettings, load_settings
from watchkeeper.errors import ConfigError
from watchkeeper.models import load_all_backends
from watchkeeper.models.registry import CPU_PROVIDER, CUDA_PROVIDER, ModelRegistry, onnx_providers

load_all_backends()


@pytest.fixture
def gpu_build(monkeypatch) -> list[str]:
    """onnxruntime answers as its GPU build does; returns the calls to preload_dlls."""
    preloaded: list[str] = []
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda *a, **k: preloaded.append("called"))
    return preloaded


@pytest.fixture
def sessions(monkeypatch) -> list[list[str]]:
    """The providers each new InferenceSession is asked for (it is built on what this build has)."""
    asked: list[list[str]] = []
    real = onnxruntime.InferenceSession

    def recording(model: Any, options: Any = None, providers: list[str] | None = None, **kwargs: Any) -> Any:
        asked.append(list(providers or []))
        return real(model, options, providers=[CPU_PROVIDER], **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    return asked


def test_cpu_is_the_default_and_asks_nothing_of_onnxruntime(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: pytest.fail("not asked for cpu"))
    assert ModelSettings().onnx_device == "cpu"
    assert onnx_providers("cpu") == [CPU_PROVIDER]


def test_cuda_comes_first_with_the_cpu_behind_it_and_its_libraries_loaded(gpu_build):
    assert onnx_providers("cuda") == [CUDA_PROVIDER, CPU_PROVIDER]
    assert gpu_build == ["called"]


def test_cuda_without_the_gpu_build_falls_back_to_the_cpu_with_a_warning(caplog):
    assert CUDA_PROVIDER not in onnxruntime.get_available_providers()  # this machine's CPU build
    with caplog.at_level(logging.WARNING, logger="watchkeeper.models.registry"):
        assert onnx_providers("cuda") == [CPU_PROVIDER]
    assert "onnxruntime-gpu" in caplog.text


def test_a_failed_preload_still_tries_cuda(gpu_build, monkeypatch, caplog):
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("no such directory")

    monkeypatch.setattr(onnxruntime, "preload_dlls", broken)
    with caplog.at_level(logging.WARNING, logger="watchkeeper.models.registry"):
        assert onnx_providers("cuda") == [CUDA_PROVIDER, CPU_PROVIDER]
    assert "no such directory" in caplog.records[-1].error


@pytest.mark.parametrize("name", ["yamnet", "minilm", "yolov3-tiny"])
def test_the_models_sessions_take_the_configured_providers(gpu_build, sessions, name):
    ModelRegistry(ModelSettings(onnx_device="cuda")).get(name)
    assert sessions == [[CUDA_PROVIDER, CPU_PROVIDER]]
    sessions.clear()
    ModelRegistry(ModelSettings()).get(name)
    assert sessions == [[CPU_PROVIDER]]


def test_rapidocr_gets_its_cuda_flags(gpu_build, monkeypatch):
    import rapidocr_onnxruntime

    made: list[dict[str, Any]] = []
    monkeypatch.setattr(rapidocr_onnxruntime, "RapidOCR", lambda **kwargs: made.append(kwargs))
    ModelRegistry(ModelSettings(onnx_device="cuda")).get("rapidocr")
    ModelRegistry(ModelSettings()).get("rapidocr")
    flags = [{k: v for k, v in kwargs.items() if k.endswith("_use_cuda")} for kwargs in made]
    assert flags == [dict.fromkeys(("det_use_cuda", "cls_use_cuda", "rec_use_cuda"), True),
                     dict.fromkeys(("det_use_cuda", "cls_use_cuda", "rec_use_cuda"), False)]


def test_asking_for_cuda_on_the_cpu_build_still_analyses():
    yamnet = ModelRegistry(ModelSettings(onnx_device="cuda")).get("yamnet")
    assert yamnet.session.get_providers() == [CPU_PROVIDER]
    _, scores, _ = yamnet.scores(np.zeros(16000, np.float32))
    assert scores.shape[1] == 521 and np.isfinite(scores).all()


def test_the_setting_comes_from_the_environment_and_is_checked():
    assert load_settings(env={"WATCHKEEPER_MODELS__ONNX_DEVICE": "cuda"}, dotenv=None).models.onnx_device == "cuda"
    with pytest.raises(ConfigError, match="models.onnx_device"):
        load_settings(env={"WATCHKEEPER_MODELS__ONNX_DEVICE": "tpu"}, dotenv=None)
