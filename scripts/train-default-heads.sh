#!/usr/bin/env bash
# Trains the heads shipped in src/watchkeeper/data/heads/ from the development
# data (../shared/datasets/, extracted into data/eval/ by its extract.sh).
# Extractors and C values were chosen by grouped cross-validation (see the
# model cards). The audio heads see UrbanSound8K's ten classes plus spoken
# digits as a "speech" negative (people talking must not sound like gunfire
# or sirens); slices of one recording, and one speaker's digits, share a group.
set -euo pipefail
cd "$(dirname "$0")/.."
wk=.venv/bin/watchkeeper
data=${1:-data/eval}
out=src/watchkeeper/data/heads
audio=$(mktemp -d)
trap 'rm -rf "$audio"' EXIT
for class in "$data"/urbansound/*/; do ln -s "$(realpath "$class")" "$audio/$(basename "$class")"; done
mkdir "$audio/speech"
# Every tenth spoken digit: 300 clips from every speaker and word.
find "$data/digits" -name '*.wav' | sort | awk 'NR % 10 == 1' | while read -r f; do ln -s "$(realpath "$f")" "$audio/speech/"; done
groups='^(?:\d_)?([a-z]+|\d+)[-_]'

$wk train "$data/fight" --category assault --positive fight --extractor flow_people --c 0.3 \
    --modality video --target-far 0.05 --out "$out/assault.json"
$wk train "$data/fire" --category fire --positive fire --extractor fire_scene --c 1 --dedupe \
    --modality image,video --out "$out/fire.json"
$wk train "$audio" --category shooting --positive gun_shot --extractor yamnet_embedding --c 0.1 \
    --group-pattern "$groups" --modality audio,video --out "$out/shooting.json"
$wk train "$audio" --category alarm --positive siren --extractor yamnet_embedding --c 0.01 \
    --group-pattern "$groups" --modality audio,video --out "$out/alarm.json"
