#!/bin/sh
# targets.sh: all of issue 18's targets on this machine in one run, then a summary of which hold
# (bench/targets.awk). About 20 minutes on 2 cores; record what it prints in docs/performance.md.
#   bench/targets.sh [BUILD_DIR] [ROUNDS]     (default: the source directory, 3 rounds)
# It runs, one after the other, into one log (its path is printed; OUT_DIR chooses the folder):
#   1. bench/brnet3d.sh BUILD_DIR ROUNDS: the speed, scaling and memory targets, PyTorch beside
#      (skipped, and said so, without Debian's python3-torch);
#   2. the showcase MDN placement (pipelines/mdn-mri3d.ini, 2 epochs, the per-layer profile) on
#      1 rank and on 2: MDN's share of the step;
#   3. bench/dcor_report.sh BUILD_DIR 2: the training-time dCor report's peak memory per rank.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here}
rounds=${2:-3}
DF=$build/deconfound
flags="-q --oversubscribe"; [ "$(id -u)" = 0 ] && flags="$flags --allow-run-as-root"
out=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/targets.XXXXXX")}
mkdir -p "$out" || exit 2
log=$out/targets.log
echo "log: $log"
{
    sh "$here/bench/brnet3d.sh" "$build" "$rounds"
    echo "=== MDN in the showcase placement, 1 rank x 1 thread"
    "$DF" train "$here/pipelines/mdn-mri3d.ini" --set train.epochs=2 --set train.profile=true \
        --set "train.out_dir=$out/mdn-1" --threads 1
    echo "=== MDN in the showcase placement, 2 ranks x 1 thread"
    mpirun $flags -np 2 "$DF" train "$here/pipelines/mdn-mri3d.ini" --set train.epochs=2 \
        --set train.profile=true --set "train.out_dir=$out/mdn-2" --threads 1
    echo "=== the dCor report's memory"
    bash "$here/bench/dcor_report.sh" "$build" 2
} 2>&1 | tee "$log"
echo
awk -f "$here/bench/targets.awk" "$log"
