"""YOLO-format box data sets (Darknet, Ultralytics and Roboflow exports) for the weapon detector.

A data set is a folder in which every ``images/`` folder has a ``labels/``
sibling holding one ``.txt`` per image: one row per object, ``class cx cy w h``
(normalised) or a polygon ``class x1 y1 x2 y2 ...``, which is reduced to its
bounding box. Class ids are mapped to weapon kinds by the caller, because
exported ``data.yaml`` files are not always right about them.

An empty label file is not a negative here: export tools write one for images
nobody annotated, which may well show weapons. Negatives come from their own
folders of weapon-free media.

Augmented copies of one source image (Roboflow names them
``<source>_jpg.rf.<hash>.jpg``) share a cross-validation group, so that no
copy is scored by a model that trained on its sibling.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..batch import MEDIA_EXTENSIONS
from ..errors import ConfigError

WEAPON_KINDS = ("handgun", "long_gun", "knife")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
ROBOFLOW_GROUP = r"^(.+?)(?:_(?:jpe?g|png|bmp|webp))?\.rf\.[0-9a-f]+$"


@dataclass(frozen=True)
class LabelledBox:
    kind: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1, normalised to the image


@dataclass(frozen=True)
class BoxedImage:
    path: Path
    boxes: tuple[LabelledBox, ...]
    group: str


@dataclass
class BoxDataset:
    root: Path
    images: list[BoxedImage]
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class NegativeFile:
    path: Path
    group: str


def parse_class_map(text: str) -> dict[int, str]:
    """``"0=handgun,1=knife,2=long_gun"`` → ``{0: "handgun", ...}``; ids not named are ignored."""
    mapping: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, kind = part.partition("=")
        if not sep or not key.strip().isdigit():
            raise ConfigError(f"--classes: '{part}' is not ID=KIND (for example 0=handgun)")
        if kind.strip() not in WEAPON_KINDS:
            raise ConfigError(f"--classes: unknown weapon kind '{kind.strip()}'; known: {', '.join(WEAPON_KINDS)}")
        mapping[int(key)] = kind.strip()
    if not mapping:
        raise ConfigError("--classes maps no class id to a weapon kind")
    return mapping


def read_label_file(path: Path, class_map: dict[int, str]) -> list[LabelledBox] | None:
    """The boxes of one label file; None when a row is malformed. Rows of unmapped classes are left out."""
    boxes = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            class_id, values = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            return None
        if len(values) == 4:
            cx, cy, w, h = values
            x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        else:
            return None
        x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in (x0, y0, x1, y1))
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        if class_id in class_map:
            boxes.append(LabelledBox(class_map[class_id], (x0, y0, x1, y1)))
    return boxes


def _group(stem: str, pattern: re.Pattern[str]) -> str:
    match = pattern.search(stem)
    if match is None:
        return stem
    return match.group(1) if match.groups() else match.group(0)


def load_box_dataset(root: str | Path, class_map: dict[int, str], *,
                     group_pattern: str = ROBOFLOW_GROUP, exclude: str | None = None) -> BoxDataset:
    """Every labelled image under ``root``; files whose name matches ``exclude`` are left out (held out)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    try:
        pattern = re.compile(group_pattern)
        excluded = re.compile(exclude) if exclude else None
    except re.error as exc:
        raise ConfigError(f"--group-pattern/--exclude: {exc}") from exc
    dataset = BoxDataset(root, [])
    folders = sorted(p for p in root.rglob("images") if p.is_dir() and (p.parent / "labels").is_dir())
    if not folders:
        raise ConfigError(f"{root}: no 'images' folder with a 'labels' folder beside it (YOLO format)")
    for images in folders:
        labels = images.parent / "labels"
        for image in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
            if excluded is not None and excluded.search(image.name):
                dataset.skipped["excluded by --exclude"] += 1
                continue
            label = labels / image.relative_to(images).with_suffix(".txt")
            if not label.is_file():
                dataset.skipped["no label file"] += 1
                continue
            boxes = read_label_file(label, class_map)
            if boxes is None:
                dataset.skipped["malformed label file"] += 1
            elif not boxes:
                dataset.skipped["no weapon of a mapped class (empty labels are not negatives)"] += 1
            else:
                dataset.images.append(BoxedImage(image, tuple(boxes), _group(image.stem, pattern)))
    if not dataset.images:
        raise ConfigError(f"{root}: no image has a box of the classes {class_map}")
    return dataset


def negative_files(folders: list[Path]) -> list[NegativeFile]:
    """Weapon-free images and videos under the folders; each file is its own group."""
    files = []
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"--negatives {folder}: not a folder")
        files += [NegativeFile(p, f"negative:{p.relative_to(folder)}") for p in sorted(folder.rglob("*"))
                  if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS]
    if not files:
        raise ConfigError("the --negatives folders hold no image or video")
    return files
