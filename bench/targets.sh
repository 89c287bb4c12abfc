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
# The folder is kept: the log, and the MDN runs' directories, are what to record and look at.
set -u
case ${1:-} in -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here}
rounds=${2:-3}
DF=$build/deconfound
[ -x "$DF" ] || { echo "bench/targets.sh: no program $DF (build first, or name the build directory)" >&2; exit 2; }
case $rounds in '' | *[!0-9]* | 0) echo "bench/targets.sh: ROUNDS must be a whole number of at least 1, not '$rounds'" >&2; exit 2 ;; esac
flags="-q --oversubscribe"; [ "$(id -u)" = 0 ] && flags="$flags --allow-run-as-root"
if [ -n "${OUT_DIR:-}" ]; then out=$OUT_DIR; mkdir -p "$out" || exit 2
else out=$(mktemp -d "${TMPDIR:-/tmp}/targets.XXXXXX") || exit 2; fi
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
