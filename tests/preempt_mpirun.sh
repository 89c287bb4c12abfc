#!/usr/bin/env bash
# Stopping a training run launched with mpirun, through jobs/local.sh, while a step longer than
# Open MPI's kill sequence is in progress (DECONFOUND_FAULT=-1:2:slow: the third step and every
# later one take 4 s more): SIGTERM, and Ctrl-C (SIGINT to the script's process group) each end
# in a checkpoint and exit status 3, and --resume trains to the end. SIGUSR1 sent to a plain
# mpirun does the same. Sent SIGTERM itself, mpirun would send its ranks SIGTERM a second later
# and SIGKILL a second after that, inside the step, and exit 1 (docs/distributed.md).
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$top_srcdir/pipelines/quickstart.ini"
local_sh="$top_srcdir/jobs/local.sh"
export DECONFOUND="$DF"
small=(--set data.n=64 --set data.shape=16,16,16 --set train.epochs=3 --set train.log_every=1)

# wait_step LOG: until the log shows the second step done (the third, slow, is in progress)
wait_step() {
    for _ in $(seq 1 600); do grep -q 'step 2/3' "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# stopped NAME STATUS: the run NAME stopped with a checkpoint
stopped() {
    check "$1: exit status 3 (got $2)" [ "$2" = 3 ]
    check "$1: stopped by the signal after the step" grep -q '^stopped by signal' "$WORK/$1.log"
    check "$1: checkpoint written" [ -s "$WORK/$1/checkpoint.h5" ]
}

# 1. SIGTERM to jobs/local.sh
DECONFOUND_FAULT=-1:2:slow "$local_sh" -n 2 train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/term" >"$WORK/term.log" 2>&1 &
pid=$!
wait_step "$WORK/term.log" && kill -TERM $pid
wait $pid; stopped term $?
"$local_sh" -n 2 train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/term" --resume "$WORK/term/checkpoint.h5" >"$WORK/term-resume.log" 2>&1
check "term: --resume trains to the end" bash -c "[ $? = 0 ] && grep -q '^final:' '$WORK/term-resume.log'"

# 2. Ctrl-C: SIGINT to the process group of jobs/local.sh, as a terminal sends it (set -m gives
# the background job a group of its own). A terminal's foreground job has SIGINT at its
# default; this script may not (started in the background by a shell without job control,
# as a CI runner may start it, SIGINT is ignored, and a shell cannot trap a signal ignored
# at its start), so env gives local.sh the default back.
set -m
DECONFOUND_FAULT=-1:2:slow env --default-signal=INT "$local_sh" -n 2 train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/int" \
    >"$WORK/int.log" 2>&1 &
pid=$!
set +m
wait_step "$WORK/int.log" && kill -INT -- -$pid
wait $pid; status=$?
stopped int $status
[ "$status" = 3 ] || tail -5 "$WORK/int.log"

# 3. SIGUSR1 to a plain mpirun: it forwards it to every rank
DECONFOUND_FAULT=-1:2:slow "$MPIEXEC" $MPI_FLAGS -np 2 "$DF" train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/usr1" >"$WORK/usr1.log" 2>&1 &
pid=$!
wait_step "$WORK/usr1.log" && kill -USR1 $pid
wait $pid; stopped usr1 $?

# 4. a second signal stops at once: mpirun gets SIGTERM and ends the ranks itself (whether
# they had finished the step by then is a race, so only the status is checked)
DECONFOUND_FAULT=-1:2:slow "$local_sh" -n 2 train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/twice" >"$WORK/twice.log" 2>&1 &
pid=$!
wait_step "$WORK/twice.log" && { kill -TERM $pid; sleep 0.2; kill -TERM $pid; }
wait $pid; status=$?
check "twice: ended by mpirun, not status 0 or 3 (got $status)" bash -c "[ $status != 0 ] && [ $status != 3 ]"
finish
