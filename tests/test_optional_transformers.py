"""The optional transformers analyzers (CLIP scene scores, BLIP captions) on tiny local models.

No CLIP or BLIP weights can be had here, so the tests build tiny randomly
initialised models, save them with ``save_pretrained`` and run the real
loading and analysis code on them, with the hub switched off. Their outputs
are checked against the same models run directly with transformers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage import data as skdata

from watchkeeper.analyzers.base import AnalysisContext, AnalyzerOutput
from watchkeeper.analyzers.caption import CaptionAnalyzer
from watchkeeper.analyzers.scene import SceneAnalyzer, category_prompts
from watchkeeper.config import Settings
from watchkeeper.domain import Frame, Media, MediaInfo
from watchkeeper.errors import ModelUnavailableError
from watchkeeper.models.registry import ModelRegistry
from watchkeeper.taxonomy import BUILTIN_IDS

ASTRONAUT = skdata.astronaut()
COFFEE = skdata.coffee()
# Wide initial weights, so that the image changes what a random model says.
LAYERS = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
          "initializer_range": 0.5}


@pytest.fixture(scope="module", autouse=True)
def hub_offline():
    """Any attempt to reach the hub raises, as on a site without internet."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A 2-layer CLIP with a byte-level BPE tokenizer, saved like a hub checkpoint."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in sorted(ByteLevel.alphabet()):
            vocab[char + suffix] = len(vocab)
    merges = [("p", "h"), ("o", "t"), ("ot", "o</w>"), ("t", "h"), ("th", "e</w>")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    config = CLIPConfig(
        text_config={**LAYERS, "vocab_size": len(vocab), "max_position_embeddings": 77,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={**LAYERS, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    folder = tmp_path_factory.mktemp("models") / "tiny-clip"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """A 2-layer BLIP captioner with a small WordPiece tokenizer."""
    from transformers import (
        BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil, BlipProcessor,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "man", "woman", "person", "in", "on",
             "the", "street", "room", "fire", "photo", "of", "with", "##s", "space", "suit", "standing", "cup"]
    vocab = {word: i for i, word in enumerate(words)}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    config = BlipConfig(
        text_config={**LAYERS, "vocab_size": len(vocab), "max_position_embeddings": 40, "encoder_hidden_size": 32,
                     "bos_token_id": vocab["[DEC]"], "pad_token_id": vocab["[PAD]"],
                     "sep_token_id": vocab["[SEP]"], "eos_token_id": vocab["[SEP]"]},
        vision_config={**LAYERS, "image_size": 32, "patch_size": 8},
        projection_dim=16,
        initializer_range=LAYERS["initializer_range"],
    )
    # With this seed the astronaut's caption ends early and the coffee's runs to max_new_tokens.
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    folder = tmp_path_factory.mktemp("models") / "tiny-blip"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


def _media(*images: np.ndarray) -> Media:
    height, width = images[0].shape[:2]
    info = MediaInfo(media_type="image" if len(images) == 1 else "video", source="skimage", format="png",
                     sha256="0" * 64, size_bytes=int(images[0].nbytes), width=width, height=height,
                     frames_sampled=len(images))
    return Media(info=info, frames=[Frame(index=i * 15, t_s=float(i), rgb=img) for i, img in enumerate(images)])


def _settings(**analyzers) -> Settings:
    return Settings.model_validate({"analyzers": analyzers})


def _context(settings: Settings, still_frames: list[int] | None = None) -> AnalysisContext:
    context = AnalysisContext(settings=settings)
    if still_frames is not None:
        context.outputs["gate"] = AnalyzerOutput(data={"still_frames": still_frames})
    return context


def _reference_clip_probs(model, processor, prompts: list[str], image: np.ndarray) -> np.ndarray:
    inputs = processor(text=prompts, images=[image], return_tensors="pt", padding=True)
    with torch.inference_mode():
        return model(**inputs).logits_per_image.softmax(dim=-1)[0].numpy()


def test_optional_analyzers_are_off_by_default():
    analyzers = Settings().analyzers
    assert not analyzers.scene.enabled and not analyzers.caption.enabled
    with pytest.raises(ValueError, match="device"):
        _settings(scene={"device": "gpu0"})


def test_importing_watchkeeper_does_not_import_torch():
    code = (
        "import sys, watchkeeper.pipeline, watchkeeper.models.transformers_models, "
        "watchkeeper.analyzers.scene, watchkeeper.analyzers.caption\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scene_scores_match_clip_run_directly(tiny_clip):
    folder, model, processor = tiny_clip
    settings = _settings(scene={"enabled": True, "model": str(folder)})
    prompts = category_prompts(settings)
    expected = _reference_clip_probs(model, processor, [*prompts.values(), *settings.analyzers.scene.normal_prompts],
                                     ASTRONAUT)
    expected_categories = dict(zip(prompts, expected[: len(prompts)].tolist(), strict=True))
    # Report the upper half of the categories, so the threshold is seen to cut.
    min_score = float(np.median(expected[: len(prompts)]))
    settings.analyzers.scene.min_score = min_score
    registry = ModelRegistry(settings.models)

    out = SceneAnalyzer(settings, registry).analyze(_media(ASTRONAUT), _context(settings))

    loaded = registry.loaded()["clip"]
    assert loaded.source == f"folder {folder}"
    assert out.data["model_id"] == "tiny-clip"
    assert list(out.data["max_scores"]) == list(BUILTIN_IDS)
    for cid, probability in expected_categories.items():
        assert out.data["max_scores"][cid] == pytest.approx(probability, abs=1e-4)
    assert out.data["anomaly_probability"] == pytest.approx(sum(expected_categories.values()), abs=1e-4)
    assert 0.0 < out.data["anomaly_probability"] < 1.0

    reported = {d.label.removeprefix("scene:"): d for d in out.detections}
    assert set(reported) == {cid for cid, p in out.data["max_scores"].items() if p >= min_score}
    assert 0 < len(reported) < len(expected_categories)
    for cid, det in reported.items():
        assert det.label == f"scene:{cid}" and det.modality == "visual" and det.analyzer == "scene"
        assert det.score == pytest.approx(expected_categories[cid], abs=1e-4)
        assert det.frame_index == 0 and det.t_start_s == 0.0 and det.model_id == "tiny-clip"
    (frame,) = out.data["frames"]
    assert [t["category"] for t in frame["top"]] == sorted(expected_categories, key=expected_categories.get,
                                                            reverse=True)[:3]


def test_scene_reuses_scores_of_still_frames(tiny_clip):
    folder, model, processor = tiny_clip
    settings = _settings(scene={"enabled": True, "model": str(folder), "min_score": 0.0})
    analyzer = SceneAnalyzer(settings, ModelRegistry(settings.models))

    out = analyzer.analyze(_media(ASTRONAUT, COFFEE, COFFEE), _context(settings, still_frames=[1]))

    first, second, third = out.data["frames"]
    assert [f["reused"] for f in out.data["frames"]] == [False, True, False]
    assert second["top"] == first["top"]
    assert third["t_s"] == 2.0 and third["index"] == 30
    prompts = [*category_prompts(settings).values(), *settings.analyzers.scene.normal_prompts]
    coffee = _reference_clip_probs(model, processor, prompts, COFFEE)
    astronaut = _reference_clip_probs(model, processor, prompts, ASTRONAUT)
    assert np.abs(coffee - astronaut).max() > 1e-3, "the images should score differently"
    assert first["anomaly_probability"] == pytest.approx(astronaut[: len(BUILTIN_IDS)].sum(), abs=1e-4)
    assert third["anomaly_probability"] == pytest.approx(coffee[: len(BUILTIN_IDS)].sum(), abs=1e-4)
    assert len(out.detections) == 3 * len(BUILTIN_IDS)


def test_captions_match_blip_run_directly_and_feed_text_semantics(tiny_blip):
    folder, model, processor = tiny_blip
    settings = _settings(caption={"enabled": True, "model": str(folder), "max_new_tokens": 8})
    registry = ModelRegistry(settings.models)

    out = CaptionAnalyzer(settings, registry).analyze(_media(ASTRONAUT, ASTRONAUT, COFFEE),
                                                      _context(settings, still_frames=[1]))

    assert registry.loaded()["blip_caption"].source == f"folder {folder}"
    assert out.detections == []
    with torch.inference_mode():
        generated = model.generate(**processor(images=[ASTRONAUT, COFFEE], return_tensors="pt"), max_new_tokens=8,
                                   output_scores=True, return_dict_in_generate=True)
    expected = [text.strip() for text in processor.batch_decode(generated.sequences, skip_special_tokens=True)]
    assert all(expected) and expected[0] != expected[1]
    # Confidence: mean probability of each chosen token, up to and including [SEP].
    step_logprobs = torch.stack(generated.scores, dim=1).log_softmax(dim=-1)
    chosen = generated.sequences[:, -step_logprobs.shape[1]:]
    chosen_logprobs = step_logprobs.gather(-1, chosen[..., None])[..., 0]
    sep = processor.tokenizer.sep_token_id
    lengths = [tokens.index(sep) + 1 if sep in tokens else len(tokens) for tokens in chosen.tolist()]
    assert lengths[0] < lengths[1], "the batch should hold a caption padded after [SEP]"
    expected_scores = [float(row[:n].mean().exp()) for row, n in zip(chosen_logprobs, lengths, strict=True)]
    assert out.data["captions"] == [
        {"index": 0, "t_s": 0.0, "text": expected[0]},
        {"index": 30, "t_s": 2.0, "text": expected[1]},
    ]
    assert [sorted(t) for t in out.data["texts"]] == [["box_xywh_norm", "frame_index", "score", "t_s", "text"]] * 2
    for text, caption, score in zip(out.data["texts"], out.data["captions"], expected_scores, strict=True):
        assert text["text"] == caption["text"] and text["box_xywh_norm"] is None
        assert (text["frame_index"], text["t_s"]) == (caption["index"], caption["t_s"])
        assert text["score"] == pytest.approx(score, abs=1e-4)
        assert 0.0 < text["score"] < 1.0


def test_captions_spread_over_long_videos(tiny_blip):
    folder, _, _ = tiny_blip
    settings = _settings(caption={"enabled": True, "model": str(folder), "max_new_tokens": 4, "max_frames": 3})
    frames = [ASTRONAUT, COFFEE] * 3
    out = CaptionAnalyzer(settings, ModelRegistry(settings.models)).analyze(_media(*frames), _context(settings))
    assert [c["t_s"] for c in out.data["captions"]] == [0.0, 2.0, 5.0]


def test_missing_folder_and_missing_weights_are_named(tiny_clip, tmp_path):
    absent = tmp_path / "absent"
    settings = _settings(scene={"enabled": True, "model": str(absent)})
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        SceneAnalyzer(settings, ModelRegistry(settings.models)).analyze(_media(ASTRONAUT), _context(settings))

    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(tiny_clip[0] / "config.json", config_only)
    with pytest.raises(ModelUnavailableError, match="no weights"):
        ModelRegistry().get("clip", str(config_only))


def test_a_folder_of_the_wrong_kind_is_refused(tiny_clip):
    with pytest.raises(ModelUnavailableError, match="no captioning model"):
        ModelRegistry().get("blip_caption", str(tiny_clip[0]))


def test_hub_name_offline_without_cache_is_unavailable(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(ModelUnavailableError, match="watchkeeper-tests/absent-clip.*HF_HUB_OFFLINE"):
        ModelRegistry().get("clip", "watchkeeper-tests/absent-clip")
    # With nothing configured, the default is the seed's hub model, equally absent offline.
    with pytest.raises(ModelUnavailableError, match="openai/clip-vit-base-patch32"):
        ModelRegistry().get("clip")


def test_missing_package_names_the_extra(tiny_clip, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelUnavailableError, match=r"pip install 'watchkeeper\[zeroshot\]'"):
        ModelRegistry().get("clip", str(tiny_clip[0]))


def test_weights_dirs_wins_over_the_analyzer_setting(tiny_clip, tmp_path):
    settings = _settings(scene={"enabled": True, "model": str(tmp_path / "absent")})
    settings.models.weights_dirs["clip"] = tiny_clip[0]
    registry = ModelRegistry(settings.models)
    out = SceneAnalyzer(settings, registry).analyze(_media(ASTRONAUT), _context(settings))
    assert out.data["model_id"] == "tiny-clip"
    assert registry.loaded()["clip"].source == f"folder {tiny_clip[0]}"
