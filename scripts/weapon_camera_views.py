"""Camera-like evaluation sets from the held-out weapon frames, each with its same-scene twin.

The held-out frames (data/weapon/eval/weapon, 416x416) are exports of 16:9 camera
frames squeezed square, with the pistol at about 6% of the width. Cameras give
neither, so this writes two sets beside them, positives and negatives of the
same scenes, people and poses (the pistol painted out, as training does):

- ``wide``: each frame widened back to 1280x720.
- ``small``: a 3x3 wall of nine widened frames (1280x720 in all), one of them
  with its pistol: the pistol covers about 2% of the width, as in real CCTV;
  its twin is the same wall with that pistol painted out.

    python scripts/weapon_camera_views.py data/weapon
"""

import random
import sys
from pathlib import Path

import cv2
import numpy as np

from watchkeeper.weapons.training import painted_out

WIDTH, HEIGHT = 1280, 720
JPEG_QUALITY = 92


def load(frame: Path) -> tuple[np.ndarray, np.ndarray]:
    """The frame widened to 1280x720 and its twin without the pistol (RGB)."""
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
    return tuple(cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC) for image in (rgb, painted))


def save(rgb: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def wall(tiles: list[np.ndarray]) -> np.ndarray:
    cell_w, cell_h = WIDTH // 3, HEIGHT // 3
    small = [cv2.resize(tile, (cell_w, cell_h), interpolation=cv2.INTER_AREA) for tile in tiles]
    rows = [np.hstack(small[k:k + 3]) for k in (0, 3, 6)]
    return cv2.resize(np.vstack(rows), (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def main(split: Path) -> None:
    # The frames as extracted (the split's weapon folder links to them), whose labels lie beside them.
    frames = sorted((split / "eval" / "weapon").resolve().glob("*.jpg"))
    pairs = {frame.stem: load(frame) for frame in frames}
    rng = random.Random(0)
    names = list(pairs)
    for name, (armed, twin) in pairs.items():
        save(armed, split / "wide" / "weapon" / f"{name}.jpg")
        save(twin, split / "wide" / "no_weapon" / f"{name}.jpg")
        others = rng.sample([n for n in names if n != name], 8)
        cell = rng.randrange(9)
        tiles = [pairs[n][1] for n in others]
        tiles.insert(cell, armed)
        save(wall(tiles), split / "small" / "weapon" / f"{name}.jpg")
        tiles[cell] = twin
        save(wall(tiles), split / "small" / "no_weapon" / f"{name}.jpg")
    print(f"wrote {len(pairs)} pairs to {split}/wide and {split}/small")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
