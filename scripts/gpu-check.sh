#!/usr/bin/env bash
# The GPU check of the CUDA build, run on a GPU machine from the packed folder
# (scripts/build-cuda-offline.sh): writes every result into OUT_DIR; about 5 minutes.
#
# Usage: ./gpu-check.sh OUT_DIR [STEPS]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: gpu-check.sh OUT_DIR [STEPS]}
steps=${2:-30}
mkdir -p "$out"
log() { echo "[$(date +%T)] $*" | tee -a "$out/check.log"; }
[ -x "$here/medfusion" ] || gunzip -kf "$here/medfusion.gz"
bin="$here/medfusion"
export LD_PRELOAD="$here/libllvmstub.so"
export MEDFUSION_LOG=${MEDFUSION_LOG:-warn}

log "nvidia-smi"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$out/check.log" 2>&1

log "1. a tiny CUDA training first (so a failure shows fast)"
timeout 180 "$bin" bench train --model cnn --batch 8 --image-size 32 --channels 1 --steps 5 --warmup 2 \
    --device cuda:0 > "$out/tiny.json" 2> "$out/tiny.err"
log "tiny exit $?: $(cat "$out/tiny.json")"; tail -5 "$out/tiny.err" >> "$out/check.log"

log "2. ResNet-50 bs32 224x224: fp32, amp bf16, amp f16 (loss scaling)"
for mode in "fp32" "amp --amp-dtype bf16" "amp --amp-dtype f16"; do
    name=$(echo "$mode" | tr -d ' -' | sed 's/ampdtype/amp_/')
    # Sample the GPU once a second while it trains: utilisation, memory, temperature, power.
    "$bin" monitor --count 5 --interval 1s --json --gpu-memory-warning 1 --gpu-memory-critical 2 \
        > "$out/monitor-$name.jsonl" 2> "$out/monitor-$name.alerts" &
    mon=$!
    # shellcheck disable=SC2086
    timeout 300 "$bin" bench train --model resnet50 --batch 32 --image-size 224 --channels 3 \
        --steps "$steps" --warmup 10 --precision $mode --device cuda:0 > "$out/bench-$name.json" 2> "$out/bench-$name.err"
    log "resnet50 $mode exit $?: $(cat "$out/bench-$name.json")"
    wait $mon
done

log "3. PyTorch reference (same card)"
if [ -f "$here/gpu_torch_resnet50.py" ]; then
    timeout 300 python3 "$here/gpu_torch_resnet50.py" --steps "$steps" > "$out/torch.json" 2> "$out/torch.err"
    log "torch exit $?: $(cat "$out/torch.json")"
fi

log "4. the quickstart workflow on cuda:0"
cd "$out" || exit 1
timeout 300 "$bin" run "$here/quickstart.yaml" --device cuda:0 --out quickstart --checkpoint-dir checkpoints \
    --set train.use_amp=true > quickstart.log 2>&1
log "quickstart exit $?: $(grep -E 'succeeded|failed|error' quickstart.log | tail -3)"
log "done"
