#!/usr/bin/env bash
# The GPU check of the CUDA build, run on a GPU machine from the packed folder
# (scripts/build-cuda-offline.sh). Everything it measures ends up in OUT_DIR.
#
# Usage: ./gpu-check.sh OUT_DIR [STEPS] [BUDGET_SECONDS] [WORK_DIR]
#
# Burn's CUDA kernels are compiled by NVRTC the first time each one is launched, and the
# convolutions and matrix products are autotuned (every candidate kernel compiled and
# timed). For ResNet-50 that is minutes of single-threaded compiling per precision, so:
#   1. warm-ups: a tiny CNN, ResNet-50 in fp32, bf16 and f16 mixed precision, and the
#      quickstart workflow start at once, each in its own folder of WORK_DIR with its own
#      on-disk kernel cache (cubecl.toml), compiling in parallel on the machine's cores;
#   2. timed runs, one at a time on an otherwise idle GPU, each after its own warm-up
#      (kernels then load from the cache; autotuning is redone, uncontended): ResNet-50
#      bs32 224x224 in bf16 AMP, fp32 and f16 AMP with `medfusion monitor` sampling the GPU
#      beside it (a GPU memory warning threshold of 0.5% must raise the alert), and the
#      PyTorch reference on the same card.
# Jobs run in their own sessions and outlive the script: when BUDGET_SECONDS (default 480)
# runs out it writes what it has, and running it again with the same WORK_DIR (default
# /tmp/medfusion-gpu) on the same machine goes on where it stopped. Compiled kernels can also
# travel between machines: PACK_KERNELS=DIR packs the warm-ups' caches at the end, and a
# `kernels/` folder beside this script (those files) is restored into the jobs at the start.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: gpu-check.sh OUT_DIR [STEPS] [BUDGET_SECONDS] [WORK_DIR]}
steps=${2:-30}
deadline=$((SECONDS + ${3:-480}))
work=${4:-/tmp/medfusion-gpu}
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd)
log() { echo "[$(date +%T) +${SECONDS}s] $*" | tee -a "$out/check.log"; }
left() { echo $((deadline - SECONDS)); }

[ -x "$here/medfusion" ] || gunzip -kf "$here/medfusion.gz"
# The stub library stands in for the LLVM compiler that the NVRTC build never calls; only
# medfusion gets it (not python or nvidia-smi).
bin="$work/medfusion-run"
printf '#!/bin/sh\nLD_PRELOAD="%s/libllvmstub.so" exec "%s" "$@"\n' "$here" "$here/medfusion" > "$bin"
chmod +x "$bin"

# Job NAME: its folder, exit status (rc), pid while it runs.
dir() { echo "$work/$1"; }
done_ok() { [ "$(cat "$(dir "$1")/rc" 2>/dev/null)" = 0 ]; }
finished() { [ -f "$(dir "$1")/rc" ]; }
running() { [ -f "$(dir "$1")/pid" ] && ! finished "$1"; }
# start NAME TIMEOUT ENV... -- ARGS...: run medfusion in NAME's folder, in its own session.
start() {
    local name=$1 limit=$2; shift 2
    local env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    if done_ok "$name" || running "$name"; then return; fi
    local d; d=$(dir "$name")
    rm -rf "$d"; mkdir -p "$d"
    cp "$here/cubecl.toml" "$d/"
    # Kernels compiled by an earlier check (any sm_90 card: H100 and H200 share them).
    if compgen -G "$here/kernels/$name.tgz*" > /dev/null; then
        cat "$here/kernels/$name".tgz* | tar xzf - -C "$d" && log "$name: kernel cache restored"
    fi
    (
        cd "$d" || exit
        env MEDFUSION_LOG=info "${env[@]}" setsid bash -c \
            'echo $$ > sid; timeout "$0" "$@" > out.json 2> err.log; echo $? > rc' "$limit" "$bin" "$@" &
        echo $! > pid
    )
    log "started $name"
}
# wait_for NAME...: until they have all finished or the budget is spent.
wait_for() {
    local n
    for n in "$@"; do
        while running "$n" && ! finished "$n" && [ "$(left)" -gt 0 ]; do sleep 2; done
    done
}
report() {
    local name=$1 d; d=$(dir "$1")
    if finished "$name"; then
        log "$name exit $(cat "$d/rc"): $(cat "$d/out.json" 2>/dev/null | tail -c 1500)"
    else
        log "$name still running"
    fi
    grep -m3 -E "bench step done" "$d/err.log" 2>/dev/null | sed 's/^/    /' >> "$out/check.log"
    grep -E "ERROR|panicked|error:" "$d/err.log" 2>/dev/null | tail -3 | sed 's/^/    /' >> "$out/check.log"
    echo "    kernels compiled: $(grep -c . "$d/cubecl-compile.log" 2>/dev/null || echo 0)" >> "$out/check.log"
}
r50=(bench train --model resnet50 --batch 32 --image-size 224 --channels 3 --device cuda:0)
declare -A flags=([fp32]="--precision fp32" [bf16]="--precision amp --amp-dtype bf16" [f16]="--precision amp --amp-dtype f16")

log "nvidia-smi"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$out/check.log" 2>&1
# The GPU over the whole check, every 5 s, beside the jobs' compiled-kernel counts.
(while [ "$(left)" -gt 0 ]; do
    echo "$(date +%T) $(nvidia-smi --query-gpu=utilization.gpu,memory.used,power.draw --format=csv,noheader) \
kernels:$(for n in tiny warm-fp32 warm-bf16 warm-f16 quickstart; do printf ' %s=%s' "$n" \
        "$(grep -c . "$(dir $n)/cubecl-compile.log" 2>/dev/null || echo 0)"; done)"
    sleep 5
done) >> "$out/progress.log" 2>&1 &

log "1. warm-ups, in parallel"
start tiny 600 -- bench train --model cnn --batch 8 --image-size 32 --channels 1 --steps 5 --warmup 2 --device cuda:0
for p in bf16 fp32 f16; do
    # shellcheck disable=SC2086 # the flags are words
    start "warm-$p" 1800 CUBECL_AUTOTUNE_CACHE=0 -- "${r50[@]}" --steps 2 --warmup 1 ${flags[$p]}
done
start quickstart 1800 -- run "$here/quickstart.yaml" --device cuda:0 --out run --checkpoint-dir checkpoints --set train.use_amp=true
wait_for tiny
report tiny

log "2. timed runs, one at a time"
# Timed on an idle GPU: after every warm-up, unless that leaves under 150 s to time in.
jobs=(warm-bf16 warm-fp32 warm-f16 quickstart)
busy() { local n; for n in "${jobs[@]}"; do running "$n" && printf '%s ' "$n"; done; }
while [ "$(left)" -gt 150 ] && [ -n "$(busy)" ]; do sleep 2; done
for n in "${jobs[@]}"; do report "$n"; done
timed() {
    local p=$1
    done_ok "warm-$p" || return
    done_ok "timed-$p" && return
    [ "$(left)" -gt 20 ] || return
    log "timing $p (still running beside it: $(busy))"
    cp -r "$(dir "warm-$p")/." "$(dir "timed-$p").tmp" 2>/dev/null
    rm -rf "$(dir "timed-$p")"; mv "$(dir "timed-$p").tmp" "$(dir "timed-$p")"
    rm -f "$(dir "timed-$p")"/{rc,pid,sid,out.json,err.log,cubecl-compile.log,cubecl-autotune.log}
    "$bin" monitor --count 8 --interval 1s --json --gpu-memory-warning 0.5 --gpu-memory-critical 0.6 \
        > "$out/monitor-$p.jsonl" 2> "$out/monitor-$p.alerts" &
    local mon=$!
    # shellcheck disable=SC2086
    (cd "$(dir "timed-$p")" && MEDFUSION_LOG=info timeout "$(left)" "$bin" "${r50[@]}" --steps "$steps" --warmup 8 ${flags[$p]} \
        > out.json 2> err.log; echo $? > rc)
    wait "$mon"
    report "timed-$p"
}
timed bf16
timed fp32
if [ -f "$here/gpu_torch_resnet50.py" ] && [ "$(left)" -gt 60 ] && ! [ -s "$work/torch.json" ]; then
    log "PyTorch reference (same card)"
    for d in bf16 fp16; do
        timeout "$(left)" python3 "$here/gpu_torch_resnet50.py" --steps "$steps" --amp-dtype "$d" \
            > "$work/torch-$d.json" 2> "$work/torch-$d.err"
        log "torch $d exit $?: $(cat "$work/torch-$d.json")"
    done
    cp "$work/torch-bf16.json" "$work/torch.json" 2>/dev/null
fi
timed f16
grep -E "succeeded|failed|epoch|AUC|auc" "$(dir quickstart)/err.log" 2>/dev/null | tail -5 >> "$out/check.log"

# With PACK_KERNELS=DIR, the warm-ups' kernel caches go to DIR (15 MB parts) for the next
# check to carry in kernels/: the warm-ups still running are stopped first (the cache is a
# write-ahead-logged database, consistent after a kill).
if [ -n "${PACK_KERNELS:-}" ]; then
    mkdir -p "$PACK_KERNELS"
    for n in warm-bf16 warm-fp32 warm-f16; do
        # The whole session of the job: its shell, timeout (a process group of its own)
        # and medfusion.
        running "$n" && pkill -KILL -s "$(cat "$(dir "$n")/sid")" 2>/dev/null
    done
    sleep 1
    for n in warm-bf16 warm-fp32 warm-f16; do
        [ -f "$(dir "$n")/default.db" ] || continue
        (cd "$(dir "$n")" && tar czf - default.db $(ls default.db-wal 2>/dev/null)) \
            | split -b 15m - "$PACK_KERNELS/$n.tgz.part-"
        log "packed $n kernels ($(grep -c . "$(dir "$n")/cubecl-compile.log") compiled): $(du -ch "$PACK_KERNELS/$n".tgz.part-* | tail -1)"
    done
fi

# Everything in one archive (what comes back from the machine is a few files at most).
tar czf "$out/work.tgz" -C "$work" --exclude='*.db*' --exclude=medfusion-run \
    --exclude=checkpoints . 2>/dev/null
log "done"
