#!/usr/bin/env bash
# Prepare what tools/gpu_train.sh needs on the GPU machine (docs/gpu_run.md), on this machine:
#   1. gpu_pack/: the frames of training/configs/cpu.yaml, shrunk (training.pack_data), and
#      its config overlay gpu_pack/pack.yaml;
#   2. gpu_pack/init/: the shipped model recovered (training.onnx_recover; here, because the
#      recovery needs the torch version that exported models/vd_cpu.onnx), the pretraining
#      weights as float16 without optimiser (training.weights_checkpoint) and the completion
#      head;
#   3. .whl/: the omegaconf wheel (the GPU machine lacks it; it needs only PyYAML there);
#   4. the size of everything the run tool carries (at most 64 MiB).
# Settings (environment): GPU_PACK (gpu_pack), GPU_PACK_CONFIG (an extra config merged after
# cpu.yaml, e.g. fewer frames for tests), GPU_PACK_SIZE ("180 240"), GPU_WHEELS (1; 0 skips
# step 3), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
PACK=${GPU_PACK:-gpu_pack}
CARRY_LIMIT=$((64 * 1024 * 1024))
configs=(--config training/configs/cpu.yaml)
if [ -n "${GPU_PACK_CONFIG:-}" ]; then configs+=(--config "$GPU_PACK_CONFIG"); fi

# shellcheck disable=SC2086  # GPU_PACK_SIZE is two numbers
"$PY" -m training.pack_data "${configs[@]}" --out "$PACK" --size ${GPU_PACK_SIZE:-180 240}
"$PY" -m training.onnx_recover models/vd_cpu.onnx --out-dir "$PACK/init"
"$PY" -m training.weights_checkpoint "$PACK/init/pretrain.pt" "$PACK/init/pretrain.pt"
rm -f "$PACK"/init/fpn.pt "$PACK"/init/linear.pt  # trained on the old encoder: useless there

if [ "${GPU_WHEELS:-1}" = 1 ]; then
    version=$("$PY" -c 'import omegaconf; print(omegaconf.__version__)')
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --dest .whl "omegaconf==$version"
fi

carried=$({ git ls-files -z --cached --others --exclude-standard
            find "$PACK" .whl -type f -print0 2> /dev/null || true; } |
          xargs -0 -r stat -c %s 2> /dev/null | awk '{total += $1} END {print total + 0}')
echo "carried by the run tool: $carried bytes ($((carried / 1024 / 1024)) MiB of 64):" \
     "tracked + untracked files, $PACK, .whl"
if [ "$carried" -gt "$CARRY_LIMIT" ]; then
    echo "too large for the run tool: shrink the pack (GPU_PACK_SIZE)" >&2
    exit 1
fi
