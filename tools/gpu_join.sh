#!/usr/bin/env bash
# Put the pretraining weights that tools/gpu_train.sh sent back in parts together again.
#   tools/gpu_join.sh FOLDER [DESTINATION]
# FOLDER holds pretrain_weights.pt.partNN and pretrain_weights.pt.sha256; DESTINATION
# (default FOLDER/pretrain_weights.pt) is written only when its SHA-256 matches.
set -euo pipefail
folder=${1:?usage: tools/gpu_join.sh FOLDER [DESTINATION]}
destination=${2:-$folder/pretrain_weights.pt}
parts=("$folder"/pretrain_weights.pt.part*)
test -f "${parts[0]}" || { echo "no pretrain_weights.pt.part* in $folder" >&2; exit 2; }
expected=$(cut -d ' ' -f 1 "$folder/pretrain_weights.pt.sha256")
work=$(mktemp "$(dirname "$destination")/.join.XXXXXX")
cat "${parts[@]}" > "$work"
actual=$(sha256sum "$work" | cut -d ' ' -f 1)
if [ "$actual" != "$expected" ]; then
    rm -f "$work"
    echo "SHA-256 mismatch: joined $actual, expected $expected" >&2
    exit 1
fi
mv "$work" "$destination"
echo "joined ${#parts[@]} parts into $destination (SHA-256 $actual)"
