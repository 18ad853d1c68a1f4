#!/usr/bin/env bash
# fastburn vs PyTorch, measured in one run on this machine: the table of docs/performance.md.
#
#   cargo build --release -p fastburn-cli
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch torchvision
#   scripts/bench_compare.sh                       # THREADS=2 ITERS=5 PYTHON=/tmp/venv/bin/python
#
# Each line: arch, size, fastburn train/infer img/s (flex), PyTorch train/infer img/s with the
# same number of threads, and the ratios fastburn / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/tmp/venv/bin/python}
THREADS=${THREADS:-2}
ITERS=${ITERS:-5}
BS=${BS:-64}
FB=${FASTBURN:-target/release/fastburn}
export RAYON_NUM_THREADS=$THREADS
printf '| model | size | fastburn train | PyTorch train | ratio | fastburn infer | PyTorch infer | ratio |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
for size in 64 128; do
  for arch in resnet18 resnet34; do
    fb=$("$FB" bench --arch "$arch" --size "$size" --bs "$BS" --iters "$ITERS" --device flex | tail -1)
    pt=$("$PYTHON" scripts/bench_pytorch.py --arch "$arch" --size "$size" --bs "$BS" --iters "$ITERS" --threads "$THREADS" | tail -1)
    fbt=$(sed -E 's/.*train_img_s=([0-9.]+).*/\1/' <<<"$fb"); fbi=$(sed -E 's/.*infer_img_s=([0-9.]+).*/\1/' <<<"$fb")
    ptt=$(sed -E 's/.*train_img_s=([0-9.]+).*/\1/' <<<"$pt"); pti=$(sed -E 's/.*infer_img_s=([0-9.]+).*/\1/' <<<"$pt")
    awk -v a="$arch" -v s="$size" -v ft="$fbt" -v pt="$ptt" -v fi="$fbi" -v pi="$pti" \
      'BEGIN { printf "| %s | %d px | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× |\n", a, s, ft, pt, ft/pt, fi, pi, fi/pi }'
  done
done
