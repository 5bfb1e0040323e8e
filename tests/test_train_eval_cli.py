"""`watchkeeper train` and `watchkeeper eval`, run as a user would, on tones against noise.

The extractor is test_heads.AudioTexture, imported by the program through
``analyzers.heads.extractor_modules``.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mediagen import noise, tone, write_audio

EXE = str(Path(sys.executable).with_name("watchkeeper"))
TESTS = Path(__file__).parent
DRONE = {"id": "drone", "name": "Drone", "description": "A drone hums overhead with a steady tone."}


def run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def humming(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seconds = rng.uniform(1.5, 3.0)
    hum = tone(rng.uniform(200, 2500), seconds, amplitude=rng.uniform(0.05, 0.3))
    return hum + noise(seconds, amplitude=rng.uniform(0.002, 0.02), seed=seed)


def hiss(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return noise(rng.uniform(1.5, 3.0), amplitude=rng.uniform(0.02, 0.2), seed=seed)


def write_config(path: Path, **heads) -> Path:
    config = {"data_dir": str(path.parent / "data"), "categories": [DRONE],
              "analyzers": {"heads": {"builtin": False, "extractor_modules": ["test_heads"], **heads}}}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-eval")
    for label, make in (("tone", humming), ("noise", hiss)):
        (root / "set" / label).mkdir(parents=True)
        for seed in range(20):
            write_audio(root / "set" / label / f"{label}{seed:02d}.wav", make(seed + 100 * (label == "tone")))
    (root / "set" / "noise" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt not really")
    config = write_config(root / "train.yaml")
    proc = run("--config", str(config), "train", "set", "--category", "drone", "--positive", "tone",
               "--extractor", "test_audio_texture", "--out", "heads/drone.json", "--workers", "2", cwd=root)
    return root, proc


def test_train_writes_a_head_with_its_card_and_reports_the_broken_file(trained):
    root, proc = trained
    assert proc.returncode == 2, proc.stderr  # the head is written; one input failed
    assert "broken.wav" in proc.stderr and "file ROC-AUC" in proc.stdout
    head = json.loads((root / "heads" / "drone.json").read_text())
    assert head["category"] == "drone" and head["media_types"] == ["audio"]
    assert head["extractor"] == {"name": "test_audio_texture", "version": "1"}
    card = head["card"]
    assert card["data"]["positive_files"] == 20 and card["data"]["negative_files"] == 20
    assert card["data"]["failed_files"] == 1
    assert card["cross_validation"]["folds"] == 5
    assert card["cross_validation"]["file_roc_auc"]["mean"] >= 0.9
    assert card["trained_with"].startswith("watchkeeper --config") and "--positive tone" in card["trained_with"]
    assert 0.05 <= head["threshold"] <= 0.99


def test_the_trained_head_scores_in_the_analysis_path(trained, tmp_path):
    from watchkeeper import Pipeline
    from watchkeeper.config import load_settings

    root, _ = trained
    pipeline = Pipeline(load_settings(write_config(tmp_path / "use.yaml", files=[str(root / "heads" / "drone.json")])))
    hum = pipeline.analyze(write_audio(tmp_path / "hum.wav", humming(999)))
    quiet = pipeline.analyze(write_audio(tmp_path / "hiss.wav", hiss(998)))
    evidence = [d for d in hum.detections if d.label == "head:drone"]
    assert evidence and evidence[0].modality == "audio"
    assert any(i.category == "drone" for i in hum.incidents)
    assert not any(i.category == "drone" for i in quiet.incidents)


def test_eval_measures_the_product_and_writes_json_and_plots(trained):
    root, _ = trained
    config = write_config(root / "eval.yaml", files=[str(root / "heads" / "drone.json")])
    proc = run("--config", str(config), "eval", "set", "--category", "drone", "--positive", "tone",
               "--json", "report/eval.json", "--plots", "report", "--workers", "1", cwd=root)
    assert proc.returncode == 2, proc.stderr  # the broken file
    assert "ROC-AUC" in proc.stdout and "broken.wav" in proc.stderr
    report = json.loads((root / "report" / "eval.json").read_text())
    metrics = report["metrics"]
    assert metrics["positives"] == 20 and metrics["negatives"] == 20 and metrics["failed"] == 1
    assert metrics["roc_auc"] >= 0.9 and metrics["recall_at_false_alarm_rate"]["0.05"] >= 0.5
    confusion = metrics["decision"]["confusion"]
    assert sum(confusion.values()) == 40 and confusion["true_positive"] >= 15
    assert metrics["decision"]["f1"] >= 0.8
    assert report["head"] == "drone-test_audio_texture" and report["failed"][0]["path"] == "noise/broken.wav"
    assert len(report["worst_false_negatives"]) == 10 and report["worst_false_negatives"][0]["positive"]
    for name in ("drone_roc.png", "drone_pr.png"):
        with Image.open(root / "report" / name) as image:
            assert image.format == "PNG" and image.size == (500, 500)


def test_cross_validated_eval_retrains_the_head_without_each_fold(trained):
    root, _ = trained
    config = write_config(root / "eval.yaml", files=[str(root / "heads" / "drone.json")])
    # Tones and hisses pair up by seed; a group per pair keeps both on one side of every split.
    groups = root / "groups.csv"
    groups.write_text("path,group\n" + "".join(
        f"{label}/{label}{seed:02d}.wav,pair{seed % 10}\n" for label in ("tone", "noise") for seed in range(20)))
    proc = run("--config", str(config), "eval", "set", "--category", "drone", "--positive", "tone", "--folds", "4",
               "--groups", str(groups), "--json", "cv.json", "--workers", "1", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "4-fold cross-validated" in proc.stdout
    report = json.loads((root / "cv.json").read_text())
    assert report["folds"] == 4 and report["head"] == "drone-test_audio_texture retrained per fold"
    metrics = report["metrics"]
    assert metrics["positives"] == 20 and metrics["negatives"] == 20 and metrics["failed"] == 1
    assert metrics["roc_auc"] >= 0.9


def test_cross_validated_eval_needs_a_head_to_retrain(trained):
    root, _ = trained
    proc = run("--config", str(root / "train.yaml"), "eval", "set", "--category", "drone", "--positive", "tone",
               "--folds", "3", cwd=root)
    assert proc.returncode == 1 and "retrains the 'drone' head, and there is none" in " ".join(proc.stderr.split())


def test_unknown_category_and_duplicates_are_usage_errors(trained):
    root, _ = trained
    config = root / "train.yaml"
    for command in ("train", "eval"):
        proc = run("--config", str(config), command, "set", "--category", "no_such", "--positive", "tone", cwd=root)
        assert proc.returncode == 1 and "unknown category 'no_such'" in proc.stderr
    shutil.copytree(root / "set", root / "dup")
    shutil.copy(root / "dup" / "tone" / "tone00.wav", root / "dup" / "noise" / "copy.wav")
    proc = run("--config", str(config), "train", "dup", "--category", "drone", "--positive", "tone", cwd=root)
    assert proc.returncode == 1 and "noise/copy.wav = tone/tone00.wav" in proc.stderr and "--dedupe" in proc.stderr
