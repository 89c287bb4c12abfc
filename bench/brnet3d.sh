#!/bin/sh
# brnet3d.sh: one run, side by side, on this machine: OpenBLAS sgemm (the ceiling for
# GEMM-based convolution), deconfound's BR-Net 3D CNN training step, and PyTorch's on the same
# network (../shared/bench/torch_brnet3d.py, Debian python3-torch; skipped if absent), at 1 and
# 2 threads. Results are recorded in docs/performance.md.
#   bench/brnet3d.sh [BUILD_DIR]        (default: the source directory)
# OpenBLAS 0.3.21 does not recognise this AMD CPU (Zen 5) and usually falls back to AVX2 (Haswell) kernels;
# each figure is also given with OPENBLAS_CORETYPE=SkylakeX, which selects its AVX-512
# kernels on a CPU that has them (oneDNN, under PyTorch, picks AVX-512 by itself).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
DF=${1:-$here}/deconfound
TORCH=${TORCH_BENCH:-$here/../shared/bench/torch_brnet3d.py}
PY=/usr/bin/python3
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, avx512f: $(grep -q avx512f /proc/cpuinfo && echo yes || echo no)"
for t in 1 2; do
    echo "--- $t thread(s)"
    "$DF" bench sgemm --threads "$t"
    OPENBLAS_CORETYPE=SkylakeX "$DF" bench sgemm --threads "$t" | sed 's/$/  [OPENBLAS_CORETYPE=SkylakeX]/'
    "$DF" bench brnet3d --threads "$t"
    OPENBLAS_CORETYPE=SkylakeX "$DF" bench brnet3d --threads "$t" | sed 's/$/  [OPENBLAS_CORETYPE=SkylakeX]/'
    if [ -f "$TORCH" ] && $PY -c 'import torch' 2>/dev/null; then
        $PY "$TORCH" "$t" 16 10
    else
        echo "torch: not available ($PY with torch, $TORCH)"
    fi
done
