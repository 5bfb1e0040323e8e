#!/usr/bin/env bash
# Measures the whole product on the development data with 5-fold grouped cross-validation:
# every file is analysed with the category's head retrained without the file's group
# (`watchkeeper eval --folds`). Reports and ROC/PR plots go to docs/eval/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dev-data.sh "$@"
wk=.venv/bin/watchkeeper
out=docs/eval
mkdir -p "$out"

$wk eval "$data/fight" --category assault --positive fight --folds 5 --groups "$fight_groups" \
    --json "$out/assault.json" --plots "$out" || [ $? -eq 2 ]  # 2: some files failed, the rest is measured
$wk eval "$data/fire" --category fire --positive fire --folds 5 --json "$out/fire.json" --plots "$out" || [ $? -eq 2 ]  # 2: some files failed, the rest is measured
$wk eval "$audio" --category shooting --positive gun_shot --folds 5 --group-pattern "$audio_groups" \
    --json "$out/shooting.json" --plots "$out" || [ $? -eq 2 ]  # 2: some files failed, the rest is measured
$wk eval "$audio" --category alarm --positive siren --folds 5 --group-pattern "$audio_groups" \
    --json "$out/alarm.json" --plots "$out" || [ $? -eq 2 ]  # 2: some files failed, the rest is measured
