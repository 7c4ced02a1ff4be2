#!/usr/bin/env bash
# The one command for a lent GPU machine (docs/gpu_run.md): pretraining of the CPU preset
# (training/configs/cpu.yaml, the shipped size) warm-started from the shipped model, on the
# packed frames (tools/gpu_prepare.sh), then the completion head, then the ONNX export; what
# comes back goes to $OUT (at most 8 files of at most 16 MiB).
#
#   run tool: command 'bash tools/gpu_train.sh', carry ["gpu_pack", ".whl"], timeout_s 540
#   CPU dry run (tiny budgets, about a minute): GPU_TRAIN_DRY_RUN=1 bash tools/gpu_train.sh
#
# Settings (environment): GPU_PRETRAIN_MINUTES (4.5), GPU_PRETRAIN_STEPS (4000: the schedule's
# length; the time budget usually ends the run first), GPU_BATCH (128), GPU_LR (1e-3),
# GPU_WORKERS (12), GPU_COMPLETION_MINUTES (1.5), GPU_PACK (gpu_pack), GPU_TRAIN_RUN_DIR
# (runs/gpu_train, emptied first), GPU_PART_BYTES (15M), PYTHON (python3). Every stage has a
# hard time limit too.
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."

DRY=${GPU_TRAIN_DRY_RUN:-0}
PY=${PYTHON:-python3}
PACK=${GPU_PACK:-gpu_pack}
CPU_CONFIG=training/configs/cpu.yaml
if [ "$DRY" = 1 ]; then
    OUT=${OUT:-$(mktemp -d)}
    RUN=${GPU_TRAIN_RUN_DIR:-$(mktemp -d)}
else
    RUN=${GPU_TRAIN_RUN_DIR:-runs/gpu_train}
fi
: "${OUT:?OUT must name the folder whose files come back}"
PRETRAIN_MINUTES=${GPU_PRETRAIN_MINUTES:-4.5}
COMPLETION_MINUTES=${GPU_COMPLETION_MINUTES:-1.5}
PART_BYTES=${GPU_PART_BYTES:-15M}  # each file that comes back must stay under 16 MiB

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    PRETRAIN=(train.batch_size=2 train.max_steps=3 train.max_minutes=0.5 train.threads=1
              train.measure_flops=false data.num_workers=0 val.num_samples=2 val.batch_size=2
              'val.ratios=[0.5]' checkpoint.every_steps=2)
    COMPLETION=(completion.max_steps=2 completion.batch_size=2
                completion.val_frames=2 completion.val_every_steps=1
                completion.checkpoint_every_steps=1 completion.threads=1 data.num_workers=0)
    PRETRAIN_MINUTES=0.5
    COMPLETION_MINUTES=0.2
else
    DEVICE=cuda
    PRETRAIN=(train.batch_size="${GPU_BATCH:-128}" train.max_steps="${GPU_PRETRAIN_STEPS:-4000}"
              train.max_minutes="$PRETRAIN_MINUTES" train.threads=4 train.precision=bf16
              data.num_workers="${GPU_WORKERS:-12}" optim.lr="${GPU_LR:-1e-3}"
              optim.schedule.warmup_fraction=0.05 checkpoint.every_steps=250)
    COMPLETION=(completion.batch_size=64 completion.lr=1e-3
                completion.threads=4 data.num_workers="${GPU_WORKERS:-12}")
fi

elapsed() {
    echo $((SECONDS - $1))
}

# stage NAME LIMIT_S COMMAND...: run COMMAND, under a hard time limit unless LIMIT_S is "none"
# (for a function of this script: fast steps only); print its duration.
stage() {
    local name=$1 limit=$2 started=$SECONDS
    shift 2
    echo "=== $name (limit $limit s) at +$SECONDS s"
    if [ "$limit" = none ]; then
        "$@"
    else
        timeout --signal=INT --kill-after=20 "$limit" "$@"
    fi
    echo "=== $name done in $(elapsed "$started") s"
}

# seconds LIMIT_MINUTES SLACK_S: a stage's hard limit, its own budget plus set-up slack.
seconds() {
    "$PY" -c "import sys; print(int(60 * float(sys.argv[1]) + int(sys.argv[2])))" "$1" "$2"
}

latest_step_checkpoint() {
    find "$1" -maxdepth 1 -name 'step_*.pt' | sort | tail -n 1
}

collect() {
    local metrics=$RUN/pretrain/metrics.csv
    if [ -f "$metrics" ]; then cp "$metrics" "$OUT/pretrain_metrics.csv"; fi
}

install_wheels() {
    if compgen -G '.whl/*.whl' > /dev/null; then
        local site
        site=$(cd "$RUN" && pwd)/site
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target "$site" .whl/*.whl
        export PYTHONPATH=$site:${PYTHONPATH:-}
    fi
    export PYTHONPATH=$PWD:${PYTHONPATH:-}
    "$PY" -c 'import omegaconf, onnx, onnxruntime, timm, torch; print("torch", torch.__version__, "timm", timm.__version__, "onnx", onnx.__version__, "omegaconf", omegaconf.__version__)'
}

check_inputs() {
    test -f "$PACK/pack.yaml" || { echo "no $PACK/pack.yaml: run tools/gpu_prepare.sh" >&2; exit 2; }
    test -f "$PACK/init/pretrain.pt" || { echo "no $PACK/init/pretrain.pt" >&2; exit 2; }
    if [ "$DEVICE" = cuda ]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        "$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0), "CUDA", torch.version.cuda)'
    fi
    nproc
}

# pack_weights CHECKPOINT HEAD: the pretraining weights (float16, no optimiser) in parts of at
# most PART_BYTES with their SHA-256 (tools/gpu_join.sh puts them together), and the head.
pack_weights() {
    local whole=$RUN/pretrain_weights.pt
    "$PY" -m training.weights_checkpoint "$1" "$whole"
    (cd "$RUN" && sha256sum pretrain_weights.pt) > "$OUT/pretrain_weights.pt.sha256"
    split -b "$PART_BYTES" -d -a 2 "$whole" "$OUT/pretrain_weights.pt.part"
    cp "$2" "$OUT/completion_head.pt"
}

main() {
    local started=$SECONDS
    echo "gpu_train: dry run $DRY, device $DEVICE, pack $PACK, run folder $RUN, out $OUT"
    rm -rf "$RUN"
    mkdir -p "$RUN"
    trap collect EXIT
    install_wheels
    check_inputs
    stage pretrain "$(seconds "$PRETRAIN_MINUTES" 90)" \
        "$PY" -m training.train --config "$CPU_CONFIG" --config "$PACK/pack.yaml" \
        run.name=pretrain run.out_dir="$RUN" train.device="$DEVICE" train.resume=none \
        train.init_from="$PACK/init/pretrain.pt" checkpoint.keep_last=2 log.every_steps=20 \
        log.panel_every_steps=0 log.tensorboard=false log.progress=false "${PRETRAIN[@]}"
    local checkpoint head
    checkpoint=$(latest_step_checkpoint "$RUN/pretrain/checkpoints")
    stage completion "$(seconds "$COMPLETION_MINUTES" 120)" \
        "$PY" -m training.train_completion --config "$CPU_CONFIG" --config "$PACK/pack.yaml" \
        --checkpoint "$checkpoint" --out-dir "$RUN/completion" --minutes "$COMPLETION_MINUTES" \
        completion.init_from="$PACK/init/completion_head.pt" completion.device="$DEVICE" \
        completion.head.uncertainty=true completion.keep_last=2 "${COMPLETION[@]}"
    head=$(latest_step_checkpoint "$RUN/completion/checkpoints")
    stage export 240 \
        "$PY" -m training.export_onnx --config "$CPU_CONFIG" --checkpoint "$checkpoint" \
        --completion-head "$head" --untrained-head ycbv --input-size 126 168 --fp16-weights \
        --output "$OUT/vd_gpu.onnx"
    stage weights none pack_weights "$checkpoint" "$head"
    collect
    ls -l "$OUT"
    "$PY" tools/gpu_summary.py --pretrain-dir "$RUN/pretrain" --completion-head "$head" \
        --onnx "$OUT/vd_gpu.onnx" --seconds "$(elapsed "$started")"
}

mkdir -p "$OUT"
main 2>&1 | tee "$OUT/gpu_train.log"
