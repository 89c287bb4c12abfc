#!/bin/sh
# brnet3d.sh: one run, side by side, on this machine: OpenBLAS sgemm (the ceiling for
# GEMM-based convolution), deconfound's BR-Net 3D CNN training step, and PyTorch's on the same
# network (../shared/bench/torch_brnet3d.py, Debian python3-torch; skipped if absent), at 1 and
# 2 threads. deconfound runs as launched (it picks OpenBLAS's kernels itself: base/blas_core.h)
# and with each OpenBLAS core type this CPU can run forced, so "as launched" can be compared
# with the best. Every line names the core type. Results are recorded in docs/performance.md.
#   bench/brnet3d.sh [BUILD_DIR]        (default: the source directory)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
DF=${1:-$here}/deconfound
TORCH=${TORCH_BENCH:-$here/../shared/bench/torch_brnet3d.py}
PY=/usr/bin/python3
cores="Prescott"
grep -q ' avx2' /proc/cpuinfo && cores="$cores Haswell"
grep -q ' avx512f' /proc/cpuinfo && cores="$cores SkylakeX Cooperlake"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(env -u OPENBLAS_CORETYPE "$DF" --version | tail -1)"
for t in 1 2; do
    echo "--- $t thread(s)"
    env -u OPENBLAS_CORETYPE "$DF" bench sgemm --threads "$t" | sed 's/$/  [as launched]/'
    for c in $cores; do OPENBLAS_CORETYPE=$c "$DF" bench sgemm --threads "$t" | sed "s/\$/  [OPENBLAS_CORETYPE=$c]/"; done
    env -u OPENBLAS_CORETYPE "$DF" bench brnet3d --threads "$t" | sed 's/$/  [as launched]/'
    for c in $cores; do OPENBLAS_CORETYPE=$c "$DF" bench brnet3d --threads "$t" | sed "s/\$/  [OPENBLAS_CORETYPE=$c]/"; done
    if [ -f "$TORCH" ] && $PY -c 'import torch' 2>/dev/null; then
        $PY "$TORCH" "$t" 16 10
    else
        echo "torch: not available ($PY with torch, $TORCH)"
    fi
done
