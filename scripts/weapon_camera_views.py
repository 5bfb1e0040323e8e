"""Camera-like evaluation sets from the held-out weapon frames, each with its same-scene twin.

The held-out frames (data/weapon/eval/weapon, 416x416) are exports of 16:9 camera
frames squeezed square, with the pistol at about 6% of the width. Cameras give
neither, so this writes two sets beside them, positives and negatives of the
same scenes, people and poses (the pistol painted out, as training does):

- ``wide``: each frame widened back to 1280x720.
- ``small``: a 3x3 wall of nine widened frames (1280x720 in all), one of them
  with its pistol: the pistol covers about 2% of the width, as in real CCTV;
  its twin is the same wall with that pistol painted out.
- ``street``: the armed person alone, cut from the widened frame and pasted
  into a 1280x720 street photo so that the pistol covers 2% of its width (one
  person, where the wall has nine); its twin is the same cut painted out.

    python scripts/weapon_camera_views.py data/weapon
"""

import random
import sys
from pathlib import Path

import cv2
import numpy as np
from sklearn.datasets import load_sample_image

from watchkeeper.config import Settings
from watchkeeper.models import ModelRegistry, load_all_backends
from watchkeeper.models.yolo import YoloV3Tiny
from watchkeeper.weapons.training import painted_out
from watchkeeper.weapons.windows import Box, holds, reach

WIDTH, HEIGHT = 1280, 720
JPEG_QUALITY = 92
# The street set: the pistol's share of the photo's width, and where the person's cut goes (top left).
STREET_SHARE = 0.02
STREET_AT = (900, 300)


def load(frame: Path) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """The frame widened to 1280x720, its twin without the pistol (RGB), and the weapons' boxes in it."""
    rgb = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    labels = frame.parent.parent / "labels_yolo" / f"{frame.stem}.txt"
    if not labels.exists():
        raise SystemExit(f"{frame}: its pistol's box is not there ({labels}); extract the data again")
    boxes = []
    for row in labels.read_text().split("\n"):
        if row.strip():
            kind, cx, cy, w, h = (float(v) for v in row.split()[:5])
            boxes.append((int(kind), (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
                          (cy + h / 2) * height))
    painted = painted_out(rgb, boxes)
    if painted is None:
        raise ValueError(f"{frame}: its weapons are too large to paint out")
    widened = [cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC) for image in (rgb, painted)]
    to_wide = np.array([WIDTH / width, HEIGHT / height] * 2)
    return widened[0], widened[1], [tuple(np.array(box[1:]) * to_wide) for box in boxes]


def save(rgb: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def wall(tiles: list[np.ndarray]) -> np.ndarray:
    cell_w, cell_h = WIDTH // 3, HEIGHT // 3
    small = [cv2.resize(tile, (cell_w, cell_h), interpolation=cv2.INTER_AREA) for tile in tiles]
    rows = [np.hstack(small[k:k + 3]) for k in (0, 3, 6)]
    return cv2.resize(np.vstack(rows), (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def holder(yolo: YoloV3Tiny, armed: np.ndarray, pistol: Box) -> Box | None:
    """The tallest person found in the frame within whose reach the pistol is (frame pixels)."""
    people = [(x * WIDTH, y * HEIGHT, (x + w) * WIDTH, (y + h) * HEIGHT)
              for o in yolo.detect([armed])[0].objects if o.label == "person"
              for x, y, w, h in [o.box_xywh_norm]]
    holding = [person for person in people if holds(reach(person), pistol)]
    return max(holding, key=lambda person: person[3] - person[1], default=None)


def street(photo: np.ndarray, armed: np.ndarray, twin: np.ndarray, pistol: Box,
           person: Box) -> tuple[np.ndarray, np.ndarray]:
    """The armed person and their twin cut out (with the pistol and a margin) and pasted into ``photo``, scaled
    so that the pistol covers ``STREET_SHARE`` of its width."""
    margin = 0.08 * (person[3] - person[1])
    x0, y0 = max(0, int(min(person[0], pistol[0]) - margin)), max(0, int(min(person[1], pistol[1]) - margin))
    x1 = min(WIDTH, int(max(person[2], pistol[2]) + margin))
    y1 = min(HEIGHT, int(max(person[3], pistol[3]) + margin))
    scale = STREET_SHARE * WIDTH / (pistol[2] - pistol[0])
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    left, top = STREET_AT[0], min(STREET_AT[1], HEIGHT - size[1])
    scenes = []
    for image in (armed, twin):
        cut = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)[:, :WIDTH - left]
        scene = photo.copy()
        scene[top:top + cut.shape[0], left:left + cut.shape[1]] = cut
        scenes.append(scene)
    return scenes[0], scenes[1]


def main(split: Path) -> None:
    # The frames as extracted (the split's weapon folder links to them), whose labels lie beside them.
    frames = sorted((split / "eval" / "weapon").resolve().glob("*.jpg"))
    loaded = {frame.stem: load(frame) for frame in frames}
    pairs = {name: (armed, twin) for name, (armed, twin, _) in loaded.items()}
    load_all_backends()
    yolo = ModelRegistry(Settings().models).get("yolov3-tiny")
    photo = cv2.resize(load_sample_image("china.jpg"), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    rng = random.Random(0)
    names = list(pairs)
    for name, (armed, twin) in pairs.items():
        save(armed, split / "wide" / "weapon" / f"{name}.jpg")
        save(twin, split / "wide" / "no_weapon" / f"{name}.jpg")
        pistol = loaded[name][2][0]
        person = holder(yolo, armed, pistol)
        if person is None:
            print(f"{name}: nobody found holding the pistol, left out of street")
        else:
            for image, kind in zip(street(photo, armed, twin, pistol, person), ("weapon", "no_weapon")):
                save(image, split / "street" / kind / f"{name}.jpg")
        others = rng.sample([n for n in names if n != name], 8)
        cell = rng.randrange(9)
        tiles = [pairs[n][1] for n in others]
        tiles.insert(cell, armed)
        save(wall(tiles), split / "small" / "weapon" / f"{name}.jpg")
        tiles[cell] = twin
        save(wall(tiles), split / "small" / "no_weapon" / f"{name}.jpg")
    print(f"wrote {len(pairs)} pairs to {split}/wide, {split}/small and {split}/street")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
