#!/bin/sh
# local.sh: run deconfound on this workstation under mpirun.
#   jobs/local.sh [-n RANKS] COMMAND [ARGS...]      e.g. jobs/local.sh -n 2 train pipelines/quickstart.ini
# RANKS defaults to the number of cores. Each rank sets its OpenBLAS threads to
# cores / ranks itself, so ranks x threads never oversubscribes the machine. Adds the Open
# MPI flags needed as root and when ranks exceed cores.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
np=$(nproc)
if [ "${1:-}" = "-n" ]; then np=$2; shift 2; fi
case "${1:-}" in ""|-h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
DF=${DECONFOUND:-$here/deconfound}
[ -x "$DF" ] || { echo "local.sh: $DF not built: run ./configure && make first" >&2; exit 2; }
# OpenBLAS 0.3.21 (Debian 12) does not recognise recent AMD CPUs and falls back to AVX2 kernels;
# on a CPU with AVX-512 its SkylakeX kernels are ~1.3x faster here (docs/performance.md).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=SkylakeX
fi
flags="--oversubscribe -q"  # -q: leave error reporting to deconfound (one line)
[ "$(id -u)" = 0 ] && flags="$flags --allow-run-as-root"
exec mpirun $flags -np "$np" "$DF" "$@"
