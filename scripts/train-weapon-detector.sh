#!/usr/bin/env bash
# Trains the weapon detector shipped in src/watchkeeper/data/weapons/ and measures the whole product on
# held-out development data (docs/eval/weapon.json, plots beside it; docs/eval/weapon-{wide,small,street}.json).
#   $1  the extracted development data (../shared/datasets/extract.sh DEST ...; default data/eval)
#   $2  the git directory of AhmedMohsenElgarh/new-dataset-weapon (the fetch tool's answer): its train/
#       split, whose labels are 0 pistol, 1 knife, 2 long gun (boxes or polygons) whatever data.yaml says
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/eval}
repo=${2:?give the git directory of AhmedMohsenElgarh/new-dataset-weapon}
wk=.venv/bin/watchkeeper
mkdir -p data/weapon_src
git --git-dir="$repo" archive HEAD train | tar -x -C data/weapon_src
.venv/bin/python scripts/weapon_dev_split.py "$data" data/weapon
# The evaluation's camera frames (1-opencv0-*) come from one room and person: their siblings in train/
# are left out, so the evaluation sees that scene for the first time.
# --given-people: windows around the objects analyzer's people as given (docs/weapons.md, "Training it").
$wk train data/weapon_src --format yolo --category weapon --classes 0=handgun,1=knife,2=long_gun \
    --negatives data/weapon/negatives --exclude '^1-opencv0' --max-images 3500 --folds 4 --target-far 0.02 \
    --given-people --windows-cache data/weapon/windows.npz --out src/watchkeeper/data/weapons/weapon-windows.json
$wk eval data/weapon/eval --category weapon --positive weapon --no-cache --json docs/eval/weapon.json --plots docs/eval/
# The same held-out frames as a camera gives them, each against its same-scene twin with the pistol painted out:
# widened back to 1280x720 (pistol ~6% of the width), as one of nine views in a 1280x720 wall (~2%), and the
# armed person alone pasted into a 1280x720 street photo (2%).
.venv/bin/python scripts/weapon_camera_views.py data/weapon
for view in wide small street; do
    $wk eval data/weapon/$view --category weapon --positive weapon --no-cache --json docs/eval/weapon-$view.json
done
