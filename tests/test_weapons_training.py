"""``watchkeeper train --format yolo`` end to end on a small YOLO data set made of sample photos and a real
pistol crop, then the trained detector used through the settings by ``analyze`` and listed by ``models``."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_sample_image

from mediagen import PISTOL_IN_HAND
from test_train_eval_cli import run
from watchkeeper.config import Settings
from watchkeeper.weapons.dataset import load_box_dataset, negative_files
from watchkeeper.weapons.model import WeaponModel
from watchkeeper.weapons.training import WeaponTrainOptions, extract_windows, fit_weapon_weights, shrunk


@pytest.fixture(scope="module")
def yolo_data(tmp_path_factory):
    """Twelve photos with the pistol pasted at random sizes and places (three copies of each source), three
    weapon-free photos, and one file that is no picture at all."""
    root = tmp_path_factory.mktemp("weapons")
    rng = np.random.default_rng(0)
    pistol = cv2.cvtColor(cv2.imread(str(PISTOL_IN_HAND)), cv2.COLOR_BGR2RGB)
    backgrounds = [skdata.astronaut(), skdata.coffee(), load_sample_image("china.jpg"), skdata.chelsea()]
    for folder in ("images", "labels"):
        (root / "data" / "train" / folder).mkdir(parents=True)
    for k in range(12):
        image = cv2.resize(backgrounds[k % 4], (416, 416)).copy()
        width = int(rng.integers(40, 120))
        height = round(width * 29 / 27)
        x, y = int(rng.integers(0, 416 - width)), int(rng.integers(0, 416 - height))
        image[y:y + height, x:x + width] = cv2.resize(pistol, (width, height))
        name = f"source{k // 3}_jpg.rf.{k:04x}"
        Image.fromarray(image).save(root / "data" / "train" / "images" / f"{name}.jpg")
        cx, cy = (x + width / 2) / 416, (y + height / 2) / 416
        (root / "data" / "train" / "labels" / f"{name}.txt").write_text(
            f"0 {cx:.4f} {cy:.4f} {width / 416:.4f} {height / 416:.4f}\n")
    negatives = root / "negatives"
    negatives.mkdir()
    for name, photo in (("grass", skdata.grass()), ("rocket", skdata.rocket()), ("flower", load_sample_image("flower.jpg"))):
        Image.fromarray(photo).convert("RGB").save(negatives / f"{name}.jpg")
    (negatives / "broken.jpg").write_bytes(b"not a picture")
    return root


def test_train_writes_a_detector_with_its_card_that_analyze_and_models_use(yolo_data, tmp_path, monkeypatch):
    out = tmp_path / "site-weapons.json"
    result = run("train", str(yolo_data / "data"), "--format", "yolo", "--category", "weapon", "--classes",
                 "0=handgun", "--negatives", str(yolo_data / "negatives"), "--folds", "2", "--target-far", "0.34",
                 "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2, result.stderr  # written, but one negative file could not be read
    assert "broken.jpg" in result.stderr and "image ROC-AUC" in result.stdout
    model = WeaponModel.load(out)
    card = model.meta.card
    assert card.data.images == 4  # one copy of each of the four source images
    assert card.data.groups == 4 and card.data.boxes_per_kind["handgun"] == 4
    assert card.data.negative_files == 3 and card.data.skipped == {"unreadable": 1}
    assert card.cross_validation.folds == 2 and len(card.cross_validation.image_roc_auc.folds) == 2
    assert 0 < model.threshold < 1
    assert "--format yolo" in card.trained_with

    config = tmp_path / "watchkeeper.yaml"
    config.write_text(json.dumps({"analyzers": {"weapons": {"model": str(out)}}}))
    photo = tmp_path / "photo.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    analysed = run("--config", str(config), "analyze", str(photo), "--format", "json", cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    [record] = json.loads(analysed.stdout)
    assert record["outputs"]["weapons"]["model"] == model.name
    assert record["outputs"]["weapons"]["threshold"] == model.threshold

    # The windows cut once are read back for a retraining on the same data, and refused for other data.
    cache = tmp_path / "windows.npz"
    again = ["train", str(yolo_data / "data"), "--format", "yolo", "--category", "weapon", "--classes", "0=handgun",
             "--negatives", str(yolo_data / "negatives"), "--folds", "2", "--windows-cache", str(cache)]
    assert run(*again, "--out", str(tmp_path / "first.json"), cwd=tmp_path).returncode == 2 and cache.exists()
    assert run(*again, "--members", "2", "--out", str(tmp_path / "second.json"), cwd=tmp_path).returncode == 2
    first, second = (WeaponModel.load(tmp_path / f"{n}.json").meta.card for n in ("first", "second"))
    assert first.data == second.data
    assert "2 one-hidden-layer networks" in second.summary and "seeds 0-1" in second.classifier
    assert "the people the detector finds" in first.classifier
    given = run(*again[:-2], "--given-people", "--out", str(tmp_path / "given.json"), cwd=tmp_path)
    assert given.returncode == 2, given.stderr
    assert "the objects analyzer's people as given" in WeaponModel.load(tmp_path / "given.json").meta.card.classifier
    other = run(*again, "--max-images", "2", "--out", str(tmp_path / "third.json"), cwd=tmp_path)
    assert other.returncode == 1 and "other data" in other.stderr

    listed = run("--config", str(config), "models", "--no-load", cwd=tmp_path)
    assert "Model cards" in listed.stdout and model.meta.card.trained_at[:10] in listed.stdout
    assert f"{model.threshold:g}" in listed.stdout


def test_train_refuses_yolo_data_without_what_it_needs(yolo_data, tmp_path):
    base = ["train", str(yolo_data / "data"), "--format", "yolo"]
    negatives = ["--negatives", str(yolo_data / "negatives")]
    for extra, message in ((["--category", "weapon", *negatives], "--classes"),
                           (["--category", "weapon", "--classes", "0=handgun"], "--negatives"),
                           (["--category", "weapon", "--classes", "0=pistol", *negatives], "unknown weapon kind"),
                           (["--category", "fire", "--classes", "0=handgun", *negatives], "--category weapon"),
                           (["--category", "weapon", "--classes", "0=handgun", "--max-images", "1", *negatives],
                            "at least two source pictures")):
        result = run(*base, *extra, cwd=tmp_path)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_shrunk_pictures_keep_their_weapons_labelled(yolo_data):
    """With ``shrunk_share`` 1 every picture and weapon-free frame is shrunk 2-4 times before its windows are
    cut; the weapons' boxes shrink with it, so each picture still has weapon windows."""
    dataset = load_box_dataset(yolo_data / "data", {0: "handgun"})
    negatives = negative_files([yolo_data / "negatives"])
    options = dict(painted_negatives=False, copies_per_group=1)
    shrunk_table = extract_windows(dataset, negatives, Settings(), WeaponTrainOptions(shrunk_share=1.0, **options))
    plain = extract_windows(dataset, negatives, Settings(), WeaponTrainOptions(**options))
    assert (shrunk_table.shrunk_images, plain.shrunk_images) == (4 + 3, 0)  # four pictures, three photos
    assert all((labels > 0).any() for labels, positive in zip(shrunk_table.labels, shrunk_table.positive)
               if positive)
    assert shrunk(np.zeros((416, 416, 3), np.uint8), 2.5).shape == (166, 166, 3)


def _log_odds(weights, x):
    standardised = (x - weights["mean"]) / weights["scale"]
    hidden = np.maximum(standardised @ weights["hidden_w"] + weights["hidden_b"], 0.0)
    return (hidden @ weights["out_w"] + weights["out_b"]).ravel()


def test_several_networks_are_one_network_of_their_averaged_log_odds():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(900, 16)).astype(np.float32)
    labels = np.zeros(900, int)
    labels[:90] = 1 + (np.arange(90) % 2)  # two kinds of weapon
    features[:90, :4] += 1.5
    x = rng.normal(size=(50, 16)).astype(np.float32)
    members = [fit_weapon_weights(features, labels, seed=seed) for seed in (7, 8)]
    together = fit_weapon_weights(features, labels, seed=7, members=2)
    assert together["hidden_w"].shape == (16, 2 * members[0]["hidden_w"].shape[1])
    assert not np.allclose(_log_odds(members[0], x), _log_odds(members[1], x))  # two seeds, two networks
    np.testing.assert_allclose(_log_odds(together, x), (_log_odds(members[0], x) + _log_odds(members[1], x)) / 2,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(together["kind_w"], members[0]["kind_w"])
