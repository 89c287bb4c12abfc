#!/usr/bin/env bash
# The Slurm job scripts on a real one-node Slurm cluster (../shared/tools/slurm-localhost.sh:
# munge, slurmctld, slurmd, srun --mpi=pmix): jobs/train.sbatch trains with srun; a SIGUSR1
# (as from --signal before the time limit) makes it checkpoint, requeue itself and resume to
# the end; with LAUNCHER=mpirun, a SIGTERM to the whole job (preemption) makes it checkpoint
# and requeue; jobs/sweep.sbatch runs one setting per array task. Needs root (it starts daemons);
# skipped (77) otherwise or when the tool is absent.
. "${top_srcdir:-.}/tests/lib.sh"
# an absolute path: the EXIT trap that stops the cluster runs after the cd into $WORK below
tool="$(cd "${top_srcdir:-.}/.." && pwd)/shared/tools/slurm-localhost.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to start Slurm daemons"; exit 77; }
[ -f "$tool" ] || { echo "SKIP: $tool not found"; exit 77; }
was_up=0
bash "$tool" status 2>/dev/null | grep -q 'slurmctld: running' && was_up=1
bash "$tool" start >"$WORK/slurm-start.log" 2>&1 || { cat "$WORK/slurm-start.log"; fail "local Slurm cluster starts"; finish; }
[ $was_up = 1 ] || trap 'bash "$tool" stop >/dev/null 2>&1; cleanup_work' EXIT
pass "local Slurm cluster starts"

cfg=$(cd "$top_srcdir" && pwd)/pipelines/quickstart.ini
jobs=$(cd "$top_srcdir" && pwd)/jobs
export DECONFOUND=$(cd "$top_builddir" && pwd)/deconfound
# The jobs run as a user's would: with the security Slurm's PMIx server offers (munge), not
# the suite's PMIX_MCA_psec=native (Makefile.am), which sbatch would pass on.
unset PMIX_MCA_psec
cd "$WORK"
small=(--set data.n=64 --set data.shape=16,16,16 --set train.epochs=2)

# 1. a training job, srun --mpi=pmix, 2 tasks
sbatch --wait --output=train-%j.out "$jobs/train.sbatch" "$cfg" "${small[@]}" >/dev/null
check "train.sbatch: job succeeds" [ $? = 0 ]
check "train.sbatch: trained with 2 ranks" grep -q '^run: 2 ranks' train-*.out
check "train.sbatch: final line" grep -q '^final:' train-*.out

# 2. SIGUSR1 mid-run: checkpoint, exit 3, scontrol requeue, resume, finish
long=(--set data.n=256 --set data.shape=32,32,32 --set train.epochs=8 --set train.log_every=2)
jid=$(sbatch --parsable --output=requeue-%j.out "$jobs/train.sbatch" "$cfg" "${long[@]}")
out="requeue-$jid.out"
for _ in $(seq 1 300); do grep -q '^epoch 1/8 step' "$out" 2>/dev/null && break; sleep 0.2; done
scancel --batch --signal=USR1 "$jid"  # what --signal=B:USR1@120 sends before the time limit
# Slurm holds a requeued job until the old run's credential has expired (cred_expire,
# 120 s by default; releasing it earlier gets it killed as "credential revoked"), so this
# part takes about two and a half minutes.
for _ in $(seq 1 400); do
    grep -q '^final:' "$out" 2>/dev/null && break
    squeue -h -j "$jid" 2>/dev/null | grep -q . || break  # the job is gone (failed)
    sleep 1
done
check "requeue: stopped with a checkpoint" grep -q '^stopped by signal' "$out"
check "requeue: the script requeued the job" grep -q 'requeueing job' "$out"
check "requeue: the second run resumed" grep -q '^resumed from runs/deconfound-'"$jid"'/checkpoint.h5' "$out"
check "requeue: ran to the end" grep -q '^final:' "$out"

# 2b. LAUNCHER=mpirun, preempted: SIGTERM to every process of the job (scancel --full, as
# Slurm's preemption notice) while a step of more than 4 s is in progress (a test hook,
# run/train.c). The ranks still finish that step and write the checkpoint, the script gets
# status 3 and requeues; the requeued run is cancelled (part 2 tested resuming).
mlong=(--set data.n=64 --set data.shape=16,16,16 --set train.epochs=3 --set train.log_every=1)
jid=$(LAUNCHER=mpirun DECONFOUND_FAULT=-1:2:slow sbatch --parsable --output=mpirun-%j.out "$jobs/train.sbatch" "$cfg" "${mlong[@]}")
out="mpirun-$jid.out"
for _ in $(seq 1 300); do grep -q '^epoch 1/3 step 2/3' "$out" 2>/dev/null && break; sleep 0.2; done
scancel --full --signal=TERM "$jid"
for _ in $(seq 1 120); do grep -q 'requeueing job' "$out" 2>/dev/null && break; sleep 1; done
check "mpirun, SIGTERM to the job: trained mpirun's ranks" grep -q '^run: 2 ranks' "$out"
check "mpirun, SIGTERM to the job: stopped after the step in progress" grep -q '^stopped by signal after epoch 1;' "$out"
check "mpirun, SIGTERM to the job: checkpoint of epoch 1" bash -c "$DECONFOUND info runs/deconfound-$jid/checkpoint.h5 | grep -q 'epoch 1, step 3,'"
check "mpirun, SIGTERM to the job: exit status 3, requeued" grep -q 'requeueing job' "$out"
scancel "$jid" 2>/dev/null

# 3. a job array: one setting per task
printf '# settings\ndata.split_seed=1\n\ndata.split_seed=2 train.lr=0.001\n' >settings.txt
JOBS_DIR="$jobs" sbatch --wait --array=0-1 --output=sweep-%A_%a.out "$jobs/sweep.sbatch" "$cfg" settings.txt "${small[@]}" >/dev/null
check "sweep.sbatch: array succeeds" [ $? = 0 ]
check "sweep.sbatch: task 1 used its setting" grep -q 'array task 1: data.split_seed=2 train.lr=0.001' sweep-*_1.out
check "sweep.sbatch: both tasks wrote metrics" bash -c "ls runs/deconfound-sweep-*/task-0/metrics.json runs/deconfound-sweep-*/task-1/metrics.json"
# 4. cross-validation: the folds as an array (jobs/cv.sh -> cv.sbatch), the comparison as a job
# that waits for every fold (--dependency=afterok) and then writes compare.md
OUT_DIR=runs/cv JOBS_DIR="$jobs" bash "$jobs/cv.sh" "$cfg" 3 --set data.n=96 --set data.shape=16,16,16 --set train.epochs=2 >cv.txt 2>&1
cat cv.txt
array=$(sed -n 's/^folds: array job \([0-9]*\).*/\1/p' cv.txt) cmp=$(sed -n 's/^comparison: job \([0-9]*\).*/\1/p' cv.txt)
check "cv.sh: submits the fold array and the comparison job" bash -c "[ -n '$array' ] && [ -n '$cmp' ]"
check "cv.sh: the comparison waits for the folds (afterok)" bash -c "squeue -h -j $cmp -o %E | grep -q 'afterok:$array'"
for _ in $(seq 1 300); do squeue -h -j "$array,$cmp" 2>/dev/null | grep -q . || break; sleep 1; done
check "cv: three folds trained, each its own fold of 3" bash -c "for f in 0 1 2; do grep -q \"\\\"fold\\\": \$f,\" runs/cv/fold-\$f/run.json &&
    grep -q '\"kfold\": 3,' runs/cv/fold-\$f/run.json && grep -q '\"status\": \"finished\"' runs/cv/fold-\$f/run.json || exit 1; done"
check "cv: compare.md over the 3 folds, written after them" bash -c "grep -q '^| quickstart *| 3 ' runs/cv/compare.md &&
    [ runs/cv/compare.md -nt runs/cv/fold-2/run.json ] && [ runs/cv/compare.md -nt runs/cv/fold-0/run.json ]"
# 5. the same cross-validation in one job: `deconfound cv` under srun, the folds in sequence
sbatch --wait --ntasks=2 --output=cvjob-%j.out --wrap "srun --mpi=pmix --kill-on-bad-exit=1 $DECONFOUND cv $cfg --folds 2 \
    --out runs/cv1 --set data.n=96 --set data.shape=16,16,16 --set train.epochs=2" >/dev/null
check "cv under srun: the job succeeds" [ $? = 0 ]
check "cv under srun: 2 ranks, both folds, then the comparison" bash -c "grep -q '^run: 2 ranks' cvjob-*.out &&
    [ \$(grep -c '^==== fold' cvjob-*.out) = 2 ] && grep -q '^| quickstart *| 2 ' runs/cv1/compare.md"
squeue -h -o %A | xargs -r scancel 2>/dev/null
finish
