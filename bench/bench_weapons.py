"""Weapon detector cost per analysed 1280x720 frame: prints a table and writes bench/results/weapons.json.

Target on a 2-core CPU: at most 150 ms more per frame than the pipeline without the detector, with up to
``analyzers.weapons.max_people`` people in view (``--max-people`` to try another). Measured two ways: the
detector alone on a frame with 0 to that many people (their boxes given, as the objects analyzer gives them;
260 pixels tall, and 130 where each is looked at again before their region is searched), and the whole
pipeline on a 1280x720 photo with the weapons analyzer on and off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_sample_image

from bench_core import _median_ms  # run as python bench/bench_weapons.py: bench/ is on the path
from watchkeeper import Pipeline
from watchkeeper.analyzers.weapons import weapon_model
from watchkeeper.config import Settings
from watchkeeper.models import ModelRegistry
from watchkeeper.weapons.detector import WeaponDetector

TARGET_EXTRA_MS = 150.0
WIDTH, HEIGHT = 1280, 720


# People's heights in the frame: 260 pixels, and 130 (under windows.REFINE_BELOW of the height: each is
# looked at again, closer, before their region is searched).
TALL, SMALL = 260, 130


def with_people(frame: np.ndarray, people: int, size: int = TALL) -> list[tuple[float, float, float, float]]:
    """Stands ``people`` photographed people (a portrait ``size`` pixels square) in a 1280x720 ``frame``, in
    place, three to a row (a second row behind the first); returns their boxes (pixels)."""
    person = cv2.resize(skdata.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    boxes = []
    for k in range(people):
        x, y = 80 + k % 3 * 400 + k // 3 * 200, 300 - k // 3 * 280
        frame[y:y + size, x:x + size] = person
        boxes.append((float(x), float(y), float(x + size), float(y + size)))
    return boxes


def street_with_people(people: int, size: int = TALL) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A 1280x720 photo with ``people`` photographed people standing in it, and their boxes (pixels)."""
    frame = cv2.resize(load_sample_image("china.jpg"), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    return frame, with_people(frame, people, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "weapons.json")
    parser.add_argument("--max-people", type=int, default=Settings().analyzers.weapons.max_people,
                        help="people searched around per frame (analyzers.weapons.max_people): the bench times "
                        "frames with up to this many")
    args = parser.parse_args()

    settings = Settings()
    registry = ModelRegistry(settings.models)
    detector = WeaponDetector(registry.get("yolov3-tiny"), weapon_model(settings, registry),
                              max_people=args.max_people)
    detector_ms: dict[int, dict[int, float]] = {TALL: {}, SMALL: {}}
    for size, by_people in detector_ms.items():
        for people in range(0 if size == TALL else 1, args.max_people + 1):
            frame, boxes = street_with_people(people, size)
            detector.find(frame, boxes)  # warm up
            by_people[people] = round(_median_ms(lambda: detector.find(frame, boxes), args.repeats), 1)

    frame, _ = street_with_people(2)
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "street.jpg"
        Image.fromarray(frame).save(photo, quality=92)
        pipeline_ms = {}
        for enabled in (False, True):
            settings = Settings()
            settings.analyzers.weapons.enabled = enabled
            settings.analyzers.weapons.max_people = args.max_people
            pipeline = Pipeline(settings)
            pipeline.analyze(photo, use_cache=False)  # warm up: models load
            pipeline_ms[enabled] = round(_median_ms(lambda: pipeline.analyze(photo, use_cache=False), args.repeats), 1)

    extra = round(pipeline_ms[True] - pipeline_ms[False], 1)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "frame": f"{WIDTH}x{HEIGHT}",
        "detector_ms_by_people": detector_ms[TALL],
        "detector_ms_by_small_people": detector_ms[SMALL],
        "pipeline_image_ms_without_weapons": pipeline_ms[False],
        "pipeline_image_ms_with_weapons": pipeline_ms[True],
        "pipeline_extra_ms": extra,
        "target_extra_ms": TARGET_EXTRA_MS,
        "meets_target": max(*detector_ms[TALL].values(), *detector_ms[SMALL].values(), extra) <= TARGET_EXTRA_MS,
    }
    print(f"weapon detector on a {WIDTH}x{HEIGHT} frame (median of {args.repeats}):")
    for size, by_people in detector_ms.items():
        for people, ms in by_people.items():
            print(f"  {people} people {size} pixels tall: {ms:7.1f} ms")
    print(f"pipeline on a {WIDTH}x{HEIGHT} photo with 2 people: {pipeline_ms[False]:.1f} ms without, "
          f"{pipeline_ms[True]:.1f} ms with the detector: +{extra:.1f} ms (target <= {TARGET_EXTRA_MS:.0f} ms)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
