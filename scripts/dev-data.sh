# Sourced by train-default-heads.sh and crossval-default-heads.sh: stages the development data
# (../shared/datasets/, extracted into data/eval/ by its extract.sh) as the heads see it.
#   $audio        UrbanSound8K's ten classes plus spoken digits as a "speech" negative (people
#                 talking must not sound like gunfire or sirens)
#   $audio_groups slices of one recording, and one speaker's digits, share a group
#   $fight_groups fight clips with consecutive numbers were cut from one source video and share a group
data=${1:-data/eval}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
audio=$stage/audio
mkdir -p "$audio/speech"
for class in "$data"/urbansound/*/; do ln -s "$(realpath "$class")" "$audio/$(basename "$class")"; done
# Every tenth spoken digit: 300 clips from every speaker and word.
find "$data/digits" -name '*.wav' | sort | awk 'NR % 10 == 1' | while read -r f; do ln -s "$(realpath "$f")" "$audio/speech/"; done
audio_groups='^(?:\d_)?([a-z]+|\d+)[-_]'
fight_groups=$stage/fight-groups.csv
(cd "$data/fight" && ls -- */* | sort -V) | awk -F/ '
    BEGIN { print "path,group" }
    { match($2, /[0-9]+/); n = substr($2, RSTART, RLENGTH) + 0
      if ($1 != label || n != last + 1) group++
      label = $1; last = n; print $0 "," $1 "-run" group }' > "$fight_groups"
