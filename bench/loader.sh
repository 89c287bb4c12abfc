#!/bin/sh
# loader.sh: loader throughput (samples/s) against a training step's consumption, and the
# share of the run a step waits for data. Usage: bench/loader.sh [BUILD_DIR] [N] [EDGE]
# (default: the current directory as the build tree, 1024 volumes of 64^3 = 1 MiB each).
# Drop the page cache first (as root: sync; echo 3 > /proc/sys/vm/drop_caches) to measure
# cold reads; otherwise the first epoch warms it.
set -e
B=${1:-.}; N=${2:-1024}; E=${3:-64}
SRC=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/df-loader-bench.XXXXXX"); trap 'rm -rf "$W"' EXIT
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -I"$SRC/io" -I"$SRC/src" -I"$SRC/dist" -I"$B" \
   $(pkg-config --cflags hdf5-openmpi) -I/usr/include/nifti "$SRC/bench/loader_bench.c" "$B/.libs/libdeconfound.a" \
   $(pkg-config --libs hdf5-openmpi) -lnifti2 -lznz -lz -lscalapack-openmpi -lopenblas -lmpi -lm -o "$W/loader_bench"
"$B/deconfound" synth mri3d --out "$W/shards" --n "$N" --shape "$E,$E,$E" >/dev/null
echo "data: $N volumes of 1x${E}^3 float32 in one shard, read from disk with pread; batch 16"
"$W/loader_bench" "$W/shards" 0 0        # the loader alone, synchronous
"$W/loader_bench" "$W/shards" 2 0        # the loader alone, prefetch thread
# A BR-Net-sized step (~30 samples/s on one core: 16 samples in ~0.5 s), then a step 10x faster.
"$W/loader_bench" "$W/shards" 0 0.5 16 1
"$W/loader_bench" "$W/shards" 2 0.5 16 1
"$W/loader_bench" "$W/shards" 0 0.05 16 1
"$W/loader_bench" "$W/shards" 2 0.05 16 1
