"""Split the development data (../shared/datasets/extract.sh output) for the weapon detector.

Weapon-free media go alternately to negatives for training and negatives for
evaluation: fight clips by source video (consecutively numbered clips were cut
from one video), photos in blocks of ten. The evaluation set's weapons are the
67 camera frames of data/eval/weapon/pistol, whose room and person the
training recipe leaves out (--exclude '^1-opencv0'). Links, not copies.

    python scripts/weapon_dev_split.py data/eval data/weapon
"""

import re
import sys
from pathlib import Path

PHOTO_BLOCK = 10
CLIPS = ("fight/noFight", "fight/fight")
PHOTOS = ("fire/normal", "fire/fire")


def source_runs(files: list[Path]) -> list[int]:
    """Run number per clip: a run is a stretch of consecutive clip numbers, one source video."""
    runs, last = [], None
    for path in files:
        number = int(re.search(r"\d+", path.name).group())
        runs.append(runs[-1] + (number != last + 1) if runs else 0)
        last = number
    return runs


def main(extracted: Path, out: Path) -> None:
    for source in CLIPS + PHOTOS:
        files = sorted(p for p in (extracted / source).iterdir() if p.is_file())
        blocks = source_runs(files) if source in CLIPS else [k // PHOTO_BLOCK for k in range(len(files))]
        for path, block in zip(files, blocks):
            target = out / ("negatives" if block % 2 == 0 else "eval/no_weapon") / source.replace("/", "_") / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(path.resolve())
    weapons = out / "eval" / "weapon"
    if not weapons.exists():
        weapons.parent.mkdir(parents=True, exist_ok=True)
        weapons.symlink_to((extracted / "weapon" / "pistol").resolve())
    print(f"wrote {out}/negatives and {out}/eval/{{weapon,no_weapon}}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
