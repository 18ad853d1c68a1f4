#!/usr/bin/env bash
# The GPU checks of docs/scale-out.md and docs/performance.md, as one short script for a
# machine with an NVIDIA GPU (the project's device tool lends one for a few minutes): the
# test suite with the cuda feature, fastburn's throughput on cuda and wgpu against PyTorch's
# on CUDA, and a one-device run of the data-parallel path through Burn's collectives (N = 1).
#
#   scripts/gpu_check.sh [OUT_DIR]     # results in OUT_DIR (default: gpu-check), one log each
#
# Needs: network access to GitHub on the first build (Burn's CUDA backend downloads its LLVM
# bundle), the NVIDIA driver, NVRTC and NCCL; PyTorch with CUDA for the comparison
# (PYTHON=..., skipped when it cannot import torch with CUDA).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
python="${PYTHON:-python3}"
features="cuda,wgpu,pretrained"
step() { echo "== $1"; }

step "build (release CLI with $features)"
cargo build --release -p fastburn-cli --features "$features" 2>&1 | tail -3 | tee "$out/build.log"
bin=target/release/fastburn
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" 2>&1

step "tests with the cuda feature"
timeout 900 cargo test --release --workspace --features "$features,ndarray" 2>&1 \
  | grep -E '^test result|FAILED|panicked' > "$out/tests.log"
tail -3 "$out/tests.log"

step "bench: fastburn cuda, wgpu; PyTorch CUDA (batch 64, train and inference)"
for row in resnet34:128 resnet50:224 mobilenet_v2:224 efficientnet_b0:224; do
  arch=${row%%:*}; size=${row##*:}
  for device in cuda wgpu; do
    echo "$arch $size $device $("$bin" bench --arch "$arch" --size "$size" --bs 64 --iters 10 --warmup 3 --device "$device" 2>&1 | tail -1)"
  done
  if "$python" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    echo "$arch $size pytorch-cuda $("$python" scripts/bench_pytorch.py --arch "$arch" --size "$size" --bs 64 --iters 10 --warmup 3 --device cuda 2>&1 | tail -1)"
  fi
done | tee "$out/bench.log"

step "data-parallel path on one GPU through Burn's collectives (N = 1)"
for reduce in collective gather; do
  /usr/bin/time -f "%e s" "$bin" train --out "$out/dp-$reduce" --devices cuda:0 --reduce "$reduce" \
    --n 256 --n-test 8 --synth-size 64 --sizes 64 --epochs 2 --lr 1e-3 --bs 32 --no-tta --quiet \
    > "$out/dp-$reduce.log" 2>&1
  echo "$reduce: $(tail -2 "$out/dp-$reduce.log" | tr '\n' ' ')"
done
