#!/usr/bin/env bash
# Fuzzes fastburn's readers of untrusted files with libFuzzer, on the stable toolchain.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]
#
# TARGET: decode_image, parse_csv, load_checkpoint, load_bundle, or all (default), each run
# for SECONDS (default 60), one after the other, one process, at nice 19. Builds the
# libFuzzer binaries of crates/fuzz with SanitizerCoverage instrumentation (stable `-C`
# flags only: no AddressSanitizer, which needs nightly) and debug assertions / overflow
# checks, into their own target folder (the flags would otherwise rebuild the normal one).
# Each target's corpus lives in $FUZZ_WORK/<target>/corpus (kept between runs), seeded from
# crates/fuzz/corpus/<target>. Any crash-/timeout-/oom- input is copied to
# crates/fuzz/regressions/<target>/ (then: minimise, fix, see its README), and the script
# exits 1. A panic that fastburn contains (a decoder's, turned into Error::Panic) does not
# stop the run; the first input for a panic location not yet in regressions/ is copied there
# as contained-<location> and counts as a finding too.
#
# Environment: FUZZ_TARGET_DIR (default /root/.cache/fastburn/fuzz-target), FUZZ_WORK
# (default $FUZZ_TARGET_DIR/work), FUZZ_ARGS (extra libFuzzer flags, e.g. -max_len=65536),
# FUZZ_STRICT=1 (stop at every panic, contained ones included).
set -euo pipefail
cd "$(dirname "$0")/.."

all=(decode_image parse_csv load_checkpoint load_bundle)
which=${1:-all}
secs=${2:-60}
if [[ $which == all ]]; then
    targets=("${all[@]}")
elif [[ " ${all[*]} " == *" $which "* ]]; then
    targets=("$which")
else
    echo "usage: $0 [${all[*]// /|}|all] [SECONDS]" >&2
    exit 2
fi
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 1)); then
    echo "SECONDS must be a positive whole number, got '$secs'" >&2
    exit 2
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/root/.cache/fastburn/fuzz-target}
work=${FUZZ_WORK:-$CARGO_TARGET_DIR/work}
# What `cargo fuzz build --sanitizer none --debug-assertions` passes, minus -Clink-dead-code
# (only for coverage reports) and -Ccodegen-units=1 (faster execs, but Burn takes far longer
# to build on two cores). `--target` keeps these flags off build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
-Cdebug-assertions -Coverflow-checks"

bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
echo "== building ${targets[*]} (instrumented, $CARGO_TARGET_DIR)"
nice -n 19 cargo build --release --target "$triple" -p fastburn-fuzz --features libfuzzer "${bins[@]}"
bindir=$CARGO_TARGET_DIR/$triple/release

found=0
for t in "${targets[@]}"; do
    dir=$work/$t
    corpus=$dir/corpus
    artifacts=$dir/artifacts
    mkdir -p "$corpus" "$artifacts"
    rm -f "$artifacts"/*
    for seed in crates/fuzz/corpus/"$t"/*; do
        [[ -f $seed ]] && cp -n "$seed" "$corpus"/
    done
    # The targets write each input to files under TMPDIR: on a tmpfs when there is one
    # (ext4 stalls on rewriting the same file thousands of times a second: 6x fewer execs).
    if [[ -d /dev/shm && -w /dev/shm ]]; then
        tmp=$(mktemp -d /dev/shm/fastburn-fuzz.XXXXXX)
    else
        tmp=$dir/tmp && rm -rf "$tmp" && mkdir -p "$tmp"
    fi
    log=$dir/fuzz.log
    echo "== fuzzing $t for ${secs}s (log: $log)"
    rc=0
    contained=allow
    [[ ${FUZZ_STRICT:-} == 1 ]] && contained=strict
    # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
    TMPDIR=$tmp FASTBURN_FUZZ_CONTAINED=$contained FASTBURN_FUZZ_CONTAINED_DIR=$artifacts \
        nice -n 19 "$bindir/$t" "$corpus" \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} >"$log" 2>&1 || rc=$?
    rm -rf "$tmp"
    grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    shopt -s nullglob
    hits=("$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/oom-*)
    for f in "$artifacts"/contained-*; do
        known=("crates/fuzz/regressions/$t/$(basename "$f")"*)
        if ((${#known[@]} > 0)); then
            echo "   $t: known contained panic: $(basename "$f")"
        else
            hits+=("$f")
        fi
    done
    shopt -u nullglob
    if ((${#hits[@]} > 0)); then
        found=1
        mkdir -p "crates/fuzz/regressions/$t"
        for f in "${hits[@]}"; do
            cp "$f" "crates/fuzz/regressions/$t/"
            echo "!! $t: $(basename "$f") -> crates/fuzz/regressions/$t/"
        done
        grep -E -m 5 "panicked at|contained panic at|ERROR: libFuzzer|SUMMARY" "$log" || true
    elif ((rc != 0)); then
        echo "!! $t: libFuzzer exited with $rc and left no input; see $log" >&2
        found=1
    fi
done
exit "$found"
