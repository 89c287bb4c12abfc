#!/bin/sh
# local.sh: run deconfound on this workstation under mpirun.
#   jobs/local.sh [-n RANKS] COMMAND [ARGS...]      e.g. jobs/local.sh -n 2 train pipelines/quickstart.ini
# RANKS defaults to the number of cores. Each rank sets its compute threads to
# cores / ranks itself, so ranks x threads never oversubscribes the machine. Adds the Open
# MPI flags needed as root and when ranks exceed cores, and leaves fewer ranks than cores
# unbound so their threads can use the other cores.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
np=$(nproc)
if [ "${1:-}" = "-n" ]; then np=$2; shift 2; fi
case "${1:-}" in ""|-h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
DF=${DECONFOUND:-$here/deconfound}
[ -x "$DF" ] || { echo "local.sh: $DF not built: run ./configure && make first" >&2; exit 2; }
# (OpenBLAS's kernels: the program picks them for the CPU itself; docs/distributed.md.)
flags="--oversubscribe -q"  # -q: leave error reporting to deconfound (one line)
[ "$(id -u)" = 0 ] && flags="$flags --allow-run-as-root"
# mpirun binds each of at most 2 ranks to one core: a single rank would get one thread
[ "$np" -lt "$(nproc)" ] && flags="$flags --bind-to none"
exec mpirun $flags -np "$np" "$DF" "$@"
