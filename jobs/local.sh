#!/bin/bash
# local.sh: run deconfound on this workstation under mpirun.
#   jobs/local.sh [-n RANKS] COMMAND [ARGS...]      e.g. jobs/local.sh -n 2 train pipelines/quickstart.ini
# RANKS defaults to the number of cores. Each rank sets its compute threads to
# cores / ranks itself, so ranks x threads never oversubscribes the machine. Adds the Open
# MPI flags needed as root and when ranks exceed cores, and leaves fewer ranks than cores
# unbound so their threads can use the other cores.
# Stopping: SIGTERM, SIGINT (Ctrl-C) or SIGHUP to this script stop training after the step in
# progress, with a checkpoint and exit status 3 (continue with --resume); a second one stops
# at once.
here=$(cd "$(dirname "$0")/.." && pwd)
np=$(nproc)
if [ "${1:-}" = "-n" ]; then np=$2; shift 2; fi
case "${1:-}" in ""|-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
DF=${DECONFOUND:-$here/deconfound}
[ -x "$DF" ] || { echo "local.sh: $DF not built: run ./configure && make first" >&2; exit 2; }
# (OpenBLAS's kernels: the program picks them for the CPU itself; docs/distributed.md.)
flags=(--oversubscribe -q)  # -q: leave error reporting to deconfound (one line)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
# mpirun binds each of at most 2 ranks to one core: a single rank would get one thread
[ "$np" -lt "$(nproc)" ] && flags+=(--bind-to none)

# Why mpirun is not simply exec'd: sent SIGTERM or SIGINT itself, Open MPI's mpirun kills its
# ranks one second later (odls_base_sigkill_timeout), inside any longer step, so no checkpoint
# is written. It forwards SIGUSR1 to every rank instead, and the program stops on it as on
# SIGTERM. So mpirun runs in a process group of its own (set -m), where a terminal's Ctrl-C
# does not reach it, and this script turns the first stop signal into SIGUSR1 for it; it has
# no stdin to read (--stdin none), which a background group may not do. docs/distributed.md.
set -m
mpirun "${flags[@]}" --stdin none -np "$np" "$DF" "$@" &
pid=$!
set +m
stops=0
forward_stop() {
    stops=$((stops + 1))
    if [ $stops = 1 ]; then
        echo "local.sh: asking the ranks to stop (training: after the step in progress, with a checkpoint and exit status 3); signal again to stop at once" >&2
        kill -USR1 "$pid" 2>/dev/null
    else
        kill -TERM "$pid" 2>/dev/null
    fi
}
trap forward_stop TERM INT HUP
# wait returns early (status > 128) whenever a trapped signal arrives: wait again while mpirun
# runs; bash keeps its exit status for the last wait.
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
wait "$pid"
