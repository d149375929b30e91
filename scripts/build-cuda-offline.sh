#!/usr/bin/env bash
# Build the CUDA-enabled `medfusion` with no internet and no CUDA toolkit, and pack what a
# GPU machine needs into one folder (default gpu-pack/, ignored by git).
#
# A normal build with internet is just `cargo build --release --features cuda`: burn-cuda
# links cubecl's LLVM (nvptx) compiler, whose prebuilt LLVM bundle is downloaded once.
# Offline that download is impossible, so this recipe (medfusion-train selects cubecl-cuda's
# NVRTC backend, so the LLVM code is never called):
#   1. DOCS_RS=1 makes the LLVM bundler skip its download;
#   2. the binary is linked with its LLVM symbols unresolved;
#   3. scripts/llvm-stub.sh makes a small library defining each of them as
#      "stub called: NAME" + abort, loaded with LD_PRELOAD on the GPU machine;
#   4. the stripped binary is gzipped (what is sent to the GPU machine is limited to 64 MiB).
# cudarc loads libcuda and libnvrtc at run time; CUDARC_CUDA_VERSION picks the bindings
# (13000 for a CUDA 13.0 driver).
#
# Usage: scripts/build-cuda-offline.sh [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/gpu-pack}
cd "$root"
mkdir -p "$out"
# Its own target folder: the CUDA features would otherwise rebuild the normal release.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/cuda}
bin=$CARGO_TARGET_DIR/release/medfusion
DOCS_RS=1 CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000} \
    cargo rustc --release -p medfusion-cli --features cuda --bin medfusion -- \
    -C link-arg=-Wl,--unresolved-symbols=ignore-all
scripts/llvm-stub.sh "$bin" "$out/libllvmstub.so"
strip -o "$out/medfusion" "$bin"
gzip -f "$out/medfusion"
cp scripts/gpu-check.sh scripts/cubecl.toml "$out/"
cp examples/quickstart.yaml "$out/"
# The PyTorch reference of WORKLOADS.md section 7, when the shared workloads are at hand.
reference=${MEDFUSION_BENCH_DATA:-$root/../shared/bench}/gpu_torch_resnet50.py
if [ -f "$reference" ]; then cp "$reference" "$out/"; else echo "note: no $reference (the PyTorch comparison will be skipped)"; fi
du -sh "$out"
ls -l "$out"
