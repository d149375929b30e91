#!/usr/bin/env bash
# The GPU check of the CUDA build, run on a GPU machine from the packed folder
# (scripts/build-cuda-offline.sh). Writes every result into OUT_DIR, most important first,
# and stops starting new steps when the time budget (seconds, default 480) runs out.
#
# Usage: ./gpu-check.sh OUT_DIR [STEPS] [BUDGET_SECONDS]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: gpu-check.sh OUT_DIR [STEPS] [BUDGET_SECONDS]}
steps=${2:-30}
deadline=$((SECONDS + ${3:-480}))
mkdir -p "$out"
out=$(cd "$out" && pwd)
log() { echo "[$(date +%T) +${SECONDS}s] $*" | tee -a "$out/check.log"; }
# Seconds a step may take: its cap, or what is left of the budget.
budget() { local left=$((deadline - SECONDS)); [ "$left" -lt "$1" ] && echo "$left" || echo "$1"; }
[ -x "$here/medfusion" ] || gunzip -kf "$here/medfusion.gz"
real="$here/medfusion"
# The stub library stands in for the LLVM compiler the NVRTC build never calls; only
# medfusion gets it (not python or nvidia-smi).
bin="$here/medfusion-run"
printf '#!/bin/sh\nLD_PRELOAD="%s/libllvmstub.so" exec "%s" "$@"\n' "$here" "$real" > "$bin"
chmod +x "$bin"
export MEDFUSION_LOG=${MEDFUSION_LOG:-warn}

log "nvidia-smi"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$out/check.log" 2>&1

log "1. a tiny CUDA training first (so a failure shows fast)"
timeout "$(budget 150)" "$bin" bench train --model cnn --batch 8 --image-size 32 --channels 1 \
    --steps 5 --warmup 2 --device cuda:0 > "$out/tiny.json" 2> "$out/tiny.err"
log "tiny exit $?: $(cat "$out/tiny.json")"
tail -5 "$out/tiny.err" >> "$out/check.log"

# ResNet-50 bs32 224x224, with the monitor sampling the GPU every second (a GPU memory
# warning threshold of 0.5% must raise the alert).
bench() {
    local name=$1; shift
    [ $((deadline - SECONDS)) -gt 30 ] || { log "skipped $name: out of time"; return; }
    "$bin" monitor --count 6 --interval 1s --json --gpu-memory-warning 0.5 --gpu-memory-critical 0.6 \
        > "$out/monitor-$name.jsonl" 2> "$out/monitor-$name.alerts" &
    local mon=$!
    timeout "$(budget 150)" "$bin" bench train --model resnet50 --batch 32 --image-size 224 --channels 3 \
        --steps "$steps" --warmup 8 --device cuda:0 "$@" > "$out/bench-$name.json" 2> "$out/bench-$name.err"
    log "resnet50 $name exit $?: $(cat "$out/bench-$name.json")"
    tail -3 "$out/bench-$name.err" >> "$out/check.log"
    wait "$mon"
}
log "2. ResNet-50 bs32 224x224"
bench amp-bf16 --precision amp --amp-dtype bf16
bench fp32 --precision fp32

log "3. PyTorch reference (same card)"
if [ -f "$here/gpu_torch_resnet50.py" ] && [ $((deadline - SECONDS)) -gt 40 ]; then
    timeout "$(budget 120)" python3 "$here/gpu_torch_resnet50.py" --steps "$steps" > "$out/torch.json" 2> "$out/torch.err"
    log "torch exit $?: $(cat "$out/torch.json")"
fi

bench amp-f16 --precision amp --amp-dtype f16

log "4. the quickstart workflow on cuda:0"
if [ $((deadline - SECONDS)) -gt 40 ]; then
    (cd "$out" && timeout "$(budget 150)" "$bin" run "$here/quickstart.yaml" --device cuda:0 --out quickstart \
        --checkpoint-dir checkpoints --set train.use_amp=true > quickstart.log 2>&1)
    log "quickstart exit $?: $(grep -E 'succeeded|failed|error' "$out/quickstart.log" | tail -3)"
fi
log "done"
