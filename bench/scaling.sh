#!/bin/sh
# scaling.sh: data-parallel scaling on this machine: training throughput at 1 and 2 ranks
# (one BLAS thread each) for the same global batch, and the time per step spent waiting for
# the gradient all-reduce (what backward did not hide). Recorded in docs/distributed.md.
#   bench/scaling.sh [BUILD_DIR] [CONFIG] [EPOCHS]     (default: pipelines/brnet3d.ini, 2 epochs)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
DF=${1:-$here}/deconfound
cfg=${2:-$here/pipelines/brnet3d.ini}
epochs=${3:-2}
flags="-q --oversubscribe"; [ "$(id -u)" = 0 ] && flags="$flags --allow-run-as-root"

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; config $cfg"
base=""
for np in 1 2; do
    OPENBLAS_NUM_THREADS=1 mpirun $flags -np $np "$DF" train "$cfg" --set train.epochs=$epochs \
        --set "train.out_dir=$tmp/np$np" --set train.checkpoint_every=0 >"$tmp/np$np.log" 2>&1 || { cat "$tmp/np$np.log"; exit 1; }
    # the last epoch's figures (the first includes warm-up)
    sps=$(grep -o '"samples_per_s": [0-9.]*' "$tmp/np$np/metrics.json" | tail -1 | awk '{print $2}')
    wait=$(grep -o '"comm_wait_ms_per_step": [0-9.]*' "$tmp/np$np/metrics.json" | tail -1 | awk '{print $2}')
    [ -z "$base" ] && base=$sps
    echo "$np rank(s): $sps samples/s, speed-up $(echo "$sps / $base" | bc -l | cut -c1-4), all-reduce wait $wait ms/step"
done
