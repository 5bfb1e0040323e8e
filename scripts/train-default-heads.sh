#!/usr/bin/env bash
# Trains the heads shipped in src/watchkeeper/data/heads/ from the development
# data (../shared/datasets/, extracted into data/eval/ by its extract.sh).
# Extractors and C values were chosen by grouped cross-validation (see the
# model cards); UrbanSound8K slices of one recording share a group.
set -euo pipefail
cd "$(dirname "$0")/.."
wk=.venv/bin/watchkeeper
data=${1:-data/eval}
out=src/watchkeeper/data/heads
$wk train "$data/fight" --category assault --positive fight --extractor flow_people --c 0.3 \
    --modality video --target-far 0.05 --out "$out/assault.json"
$wk train "$data/fire" --category fire --positive fire --extractor fire_scene --c 1 --dedupe \
    --modality image,video --out "$out/fire.json"
$wk train "$data/urbansound" --category shooting --positive gun_shot --extractor yamnet_embedding --c 0.1 \
    --group-pattern '^(\d+)-' --modality audio,video --out "$out/shooting.json"
$wk train "$data/urbansound" --category alarm --positive siren --extractor yamnet_embedding --c 0.01 \
    --group-pattern '^(\d+)-' --modality audio,video --out "$out/alarm.json"
