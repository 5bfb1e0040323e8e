#!/usr/bin/env bash
# Trains the heads shipped in src/watchkeeper/data/heads/ from the development data.
# Extractors and C values were chosen by grouped cross-validation (see the model cards);
# scripts/crossval-default-heads.sh measures the whole product with these recipes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/dev-data.sh "$@"
wk=.venv/bin/watchkeeper
out=src/watchkeeper/data/heads

$wk train "$data/fight" --category assault --positive fight --extractor flow_people --c 0.3 \
    --groups "$fight_groups" --modality video --target-far 0.05 --out "$out/assault.json"
$wk train "$data/fire" --category fire --positive fire --extractor fire_scene --c 1 --dedupe \
    --modality image,video --out "$out/fire.json"
$wk train "$audio" --category shooting --positive gun_shot --extractor yamnet_embedding --c 0.1 \
    --group-pattern "$audio_groups" --modality audio,video --out "$out/shooting.json"
$wk train "$audio" --category alarm --positive siren --extractor yamnet_embedding --c 0.01 \
    --group-pattern "$audio_groups" --modality audio,video --out "$out/alarm.json"
