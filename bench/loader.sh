#!/bin/sh
# loader.sh: cold-cache loader throughput (samples/s) against a training step's consumption,
# and the share of step time a step waits for data (targets: loader >= 3x ahead of the step,
# wait < 5 % of step time). Usage: bench/loader.sh [BUILD_DIR] [N] [D,H,W] [STEP_SECONDS]
# (defaults: the current directory as the build tree; 2048 volumes of the BR-Net input
# 1x32x64x64 = 512 KiB each, 1 GiB in one shard, one sample per chunk as `pack` writes; a step of 16 samples every 0.457 s =
# 35 samples/s, what `deconfound bench brnet3d` gives per rank on this machine kind).
# The program is built by the build system (`make` builds bench/loader_bench).
#
# Cold cache: every run starts with `sync; echo 3 > /proc/sys/vm/drop_caches` when that is
# allowed (root outside a restricted container), and the program itself evicts the shard
# files with posix_fadvise(POSIX_FADV_DONTNEED) before every epoch, so every epoch reads from
# the disk as for a data set larger than the page cache. The output says which worked.
set -e
B=${1:-.}; N=${2:-2048}; S=${3:-32,64,64}; STEP=${4:-0.457}
B=$(cd "$B" && pwd)
make -C "$B" -s bench/loader_bench deconfound >/dev/null
W=$(mktemp -d "${TMPDIR:-/var/tmp}/df-loader-bench.XXXXXX"); trap 'rm -rf "$W"' EXIT
"$B/deconfound" synth mri3d --out "$W/gen" --n "$N" --shape "$S" >/dev/null
drop() {
    sync
    if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then echo "page cache dropped (drop_caches)"; else echo "drop_caches refused; relying on fadvise"; fi
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "data: $N volumes of 1x$S float32 ($(du -sh "$W/gen" | cut -f1)) in $W/gen, read from disk with pread; batch 16"
run() { drop; "$B/bench/loader_bench" "$W/gen" "$@"; }
echo "-- loader alone (no step), cold every epoch:"
run 0 0 16 2 1
run 2 0 16 2 1
echo "-- with a BR-Net step of ${STEP} s per batch of 16, cold every epoch:"
run 0 "$STEP" 16 1 1
run 2 "$STEP" 16 1 1
echo "-- with a step 10x faster, cold every epoch:"
FAST=$(awk -v s="$STEP" 'BEGIN { printf "%.4f", s / 10 }')
run 2 "$FAST" 16 1 1
