#!/usr/bin/env bash
# fastburn vs PyTorch, measured in the same run on this machine: the table of docs/performance.md.
#
#   cargo build --release -p fastburn-cli
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch torchvision
#   scripts/bench_compare.sh          # THREADS=2 ITERS=5 RUNS=3 BS=64 PYTHON=/tmp/venv/bin/python
#   ROWS="resnet34:64" scripts/bench_compare.sh     # only some rows (arch:size, space-separated)
#
# Each row: arch, size, fastburn train/infer img/s (flex; inference is eval mode, BatchNorm folded
# into the convolutions), PyTorch train/infer img/s with the same number of threads, and the
# ratios fastburn / PyTorch. fastburn and PyTorch alternate RUNS times; every figure is the
# median over the runs, each ratio the median of the per-run ratios (fastburn and PyTorch of
# the same run). The last row runs fastburn with `--kernels off` (Burn's own operations).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/tmp/venv/bin/python}
THREADS=${THREADS:-2}
ITERS=${ITERS:-5}
RUNS=${RUNS:-3}
BS=${BS:-64}
ROWS=${ROWS:-"resnet18:64 resnet34:64 resnet18:128 resnet34:128 mobilenet_v2:128 efficientnet_b0:128"}
FB=${FASTBURN:-target/release/fastburn}
export RAYON_NUM_THREADS=$THREADS
field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$2"; }
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
row() { # arch size label [fastburn flags...]
  local arch=$1 size=$2 label=$3; shift 3
  local ft="" fi="" pt="" pi="" rt="" ri=""
  for _ in $(seq "$RUNS"); do
    fb=$("$FB" bench --arch "$arch" --size "$size" --bs "$BS" --iters "$ITERS" --device flex "$@" | tail -1)
    py=$("$PYTHON" scripts/bench_pytorch.py --arch "$arch" --size "$size" --bs "$BS" --iters "$ITERS" --threads "$THREADS" | tail -1)
    a=$(field train_img_s "$fb"); b=$(field infer_img_s "$fb"); c=$(field train_img_s "$py"); d=$(field infer_img_s "$py")
    ft+=" $a"; fi+=" $b"; pt+=" $c"; pi+=" $d"
    rt+=" $(awk -v x="$a" -v y="$c" 'BEGIN { print x / y }')"; ri+=" $(awk -v x="$b" -v y="$d" 'BEGIN { print x / y }')"
  done
  awk -v a="$arch" -v s="$size" -v l="$label" -v ft="$(median <<<"$ft")" -v pt="$(median <<<"$pt")" \
      -v rt="$(median <<<"$rt")" -v fi="$(median <<<"$fi")" -v pi="$(median <<<"$pi")" -v ri="$(median <<<"$ri")" \
    'BEGIN { printf "| %s%s | %d px | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× |\n", a, l, s, ft, pt, rt, fi, pi, ri }'
}
printf '| model | size | fastburn train | PyTorch train | ratio | fastburn infer | PyTorch infer | ratio |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
for r in $ROWS; do row "${r%%:*}" "${r##*:}" ""; done
row resnet34 64 " (kernels off)" --kernels off
