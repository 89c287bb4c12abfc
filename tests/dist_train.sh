#!/usr/bin/env bash
# Data-parallel training under mpirun: small overlapped gradient buckets give the same
# training as 1 rank; a stop on SIGTERM (reaching only one rank) or SIGUSR1 writes a valid
# checkpoint mid-epoch and exits 3, and resuming gives exactly the straight-through run; a
# failing or crashing rank ends the whole job within seconds with its message; a Slurm
# launch whose tasks are not one MPI job is refused.
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$top_srcdir/pipelines/quickstart.ini"
small=(--set data.n=96 --set data.shape=16,16,16 --set train.epochs=4 --set train.batch=8 --set train.schedule=step)

# 1. ~1000-float buckets: 22 all-reduces per step started during backward, at 1, 2 and 3 ranks
for np in 1 2 3; do
    mpi $np "$DF" train "$cfg" "${small[@]}" --set train.bucket_mb=0.004 --set "train.out_dir=$WORK/b$np" >"$WORK/b$np.log" 2>&1
    check "small buckets: $np rank(s) exit 0" [ $? = 0 ]
done
check "small buckets: 2 ranks match 1" losses_match "$WORK/b1" "$WORK/b2" 8
check "small buckets: 3 ranks match 1" losses_match "$WORK/b1" "$WORK/b3" 8
check "communication wait is reported" grep -q 'comm wait [0-9.]* ms/step' "$WORK/b2.log"

# 2. SIGTERM reaching one rank mid-epoch: checkpoint, exit 3, resume = straight through
mpi 2 "$DF" train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/straight" >"$WORK/straight.log" 2>&1
DECONFOUND_FAULT=1:14:term mpi 2 "$DF" train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/int" >"$WORK/int.log" 2>&1
status=$?
check "SIGTERM: exit status 3" [ $status = 3 ]
check "SIGTERM: stopped mid-epoch" grep -q 'stopped by signal at epoch 2 step' "$WORK/int.log"
check "SIGTERM: the checkpoint is valid" bash -c "'$DF' info '$WORK/int/checkpoint.h5' | grep -q 'epoch 1, step 15'"
mpi 2 "$DF" train "$cfg" "${small[@]}" --set "train.out_dir=$WORK/int" --resume "$WORK/int/checkpoint.h5" >"$WORK/res.log" 2>&1
check "resume after SIGTERM exits 0" [ $? = 0 ]
grep '^epoch [234]/4 done' "$WORK/straight.log" | sed 's/ | [0-9.]* samples\/s.*//' >"$WORK/a.txt"
grep '^epoch [234]/4 done' "$WORK/res.log" | sed 's/ | [0-9.]* samples\/s.*//' >"$WORK/b.txt"
check "stop mid-epoch + resume equals straight-through" bash -c "[ \$(wc -l <'$WORK/a.txt') = 3 ] && diff '$WORK/a.txt' '$WORK/b.txt'"

# 3. SIGUSR1 from outside, forwarded by mpirun to every rank (what sbatch --signal does)
long=(--set data.n=256 --set data.shape=16,16,16 --set train.epochs=200 --set train.log_every=1)
"$MPIEXEC" $MPI_FLAGS -np 2 "$DF" train "$cfg" "${long[@]}" --set "train.out_dir=$WORK/usr1" >"$WORK/usr1.log" 2>&1 &
pid=$!  # mpirun itself: it forwards SIGUSR1 to every rank
for _ in $(seq 1 200); do grep -q '^epoch 1/200 step 2/' "$WORK/usr1.log" && break; sleep 0.1; done
kill -USR1 $pid
wait $pid
status=$?
check "SIGUSR1: exit status 3" [ $status = 3 ]
check "SIGUSR1: checkpoint written" grep -q '^stopped by signal' "$WORK/usr1.log"
check "SIGUSR1: the checkpoint loads" bash -c "'$DF' info '$WORK/usr1/checkpoint.h5' | grep -q 'conv1'"

# 4. a failing rank ends the job fast, with its message; so does a crashing one
for kind in error segv; do
    start=$(date +%s)
    DECONFOUND_FAULT=1:5:$kind timeout 60 "$MPIEXEC" $MPI_FLAGS -np 3 "$DF" train "$cfg" "${small[@]}" \
        --set "train.out_dir=$WORK/f$kind" >"$WORK/f$kind.log" 2>&1
    status=$?
    took=$(( $(date +%s) - start ))
    check "failing rank ($kind): non-zero status ($status), not a hang (timeout is 124)" \
        bash -c "[ $status != 0 ] && [ $status != 124 ]"
    check "failing rank ($kind): the job ended within 15 s ($took s)" [ $took -le 15 ]
done
check "failing rank: its message names it" grep -q 'deconfound (rank 1 of 3): injected fault' "$WORK/ferror.log"

# 5. Slurm launched N tasks but MPI sees one rank (srun without PMIx): refused, status 2
SLURM_STEP_ID=0 SLURM_STEP_NUM_TASKS=4 "$DF" train "$cfg" >"$WORK/slurm.log" 2>&1
status=$?
check "Slurm task count mismatch: status 2" [ $status = 2 ]
check "Slurm task count mismatch: explained" grep -q "Slurm started 4 tasks but MPI sees 1 rank" "$WORK/slurm.log"
finish
