#!/bin/sh
# brnet3d.sh: the training speed of this machine, side by side in one run (issue 18's figures,
# recorded in docs/performance.md):
#   1. each BR-Net convolution's forward, backward-data and backward-weights as a share of
#      OpenBLAS sgemm measured in the same run (bench conv3d), at 1 thread;
#   2. the BR-Net training step (batch 16) at 1 thread, 2 threads in one rank, and 2 ranks of
#      one thread, each beside sgemm at the same threads and with its peak memory, and beside
#      PyTorch on the same network (../shared/bench/torch_brnet3d.py, Debian python3-torch;
#      skipped when absent) at 1 and 2 threads;
#   3. one process alternating blocks of steps at 1 thread and at 2 (bench brnet3d
#      --vs-1-thread): the 2-thread speed-up side by side, free of the minutes between the
#      separate runs of step 2;
#   4. the per-layer profile at 1 thread, and the step with the fused BatchNorm-ReLU-MaxPool
#      kernel turned off.
# Every line names the CPU and the OpenBLAS core type. deconfound runs as launched (it picks
# OpenBLAS's kernels itself: base/blas_core.h).
#   bench/brnet3d.sh [BUILD_DIR] [ROUNDS]     (default: the source directory, 3 rounds)
# The machine kind is shared: step 2 repeats ROUNDS times, alternating the layouts, so a
# median can be quoted.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
DF=${1:-$here}/deconfound
rounds=${2:-3}
flags="-q --oversubscribe"; [ "$(id -u)" = 0 ] && flags="$flags --allow-run-as-root"
export TORCH_BENCH=${TORCH_BENCH:-$here/../shared/bench/torch_brnet3d.py}

echo "=== the convolutions alone, 1 thread"
"$DF" bench conv3d --threads 1
for r in $(seq "$rounds"); do
    echo "=== round $r: the training step"
    "$DF" bench brnet3d --threads 1 --steps 20 --vs-torch
    mpirun $flags --bind-to none -np 1 "$DF" bench brnet3d --threads 2 --steps 20 --vs-torch
    mpirun $flags -np 2 "$DF" bench brnet3d --threads 1 --steps 20
done
echo "=== 2 threads against 1 in one process, alternating"
"$DF" bench brnet3d --threads 2 --vs-1-thread --steps 12
echo "=== profile, 1 thread"
"$DF" bench brnet3d --threads 1 --steps 20 --profile
echo "=== unfused (BatchNorm, ReLU, MaxPool as separate layers), 1 thread"
"$DF" bench brnet3d --threads 1 --steps 20 --no-fuse
