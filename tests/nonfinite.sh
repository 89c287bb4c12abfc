#!/usr/bin/env bash
# Numerical faults: a run whose values go NaN or infinite (SGD at lr 50 on the quickstart
# network: here BatchNorm's running variance overflows float at epoch 1 step 6; the exact step
# may differ with another CPU's rounding, so it is not required) stops on every rank with one
# message naming the epoch, the step and where it started, the same place at 1 and 2 ranks,
# and never writes a checkpoint holding it; [train] on_nonfinite = skip_batch skips such
# batches, counts them, and stops when a whole epoch is skipped.
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$top_srcdir/pipelines/quickstart.ini"
args=(--set data.n=64 --set data.shape=16,16,16 --set train.epochs=4 --set train.batch=8 --set train.optimizer=sgd
      --set train.lr=50 --quiet)

for np in 1 2; do
    mpi $np "$DF" train "$cfg" "${args[@]}" --set "train.out_dir=$WORK/stop$np" >"$WORK/stop$np.log" 2>&1
    st=$?
    check "diverging at $np rank(s): exit 1" [ $st = 1 ] || cat "$WORK/stop$np.log"
    grep '^deconfound' "$WORK/stop$np.log" | grep -v 'deconfound train:' >"$WORK/msg$np"
    check "diverging at $np rank(s): one message" [ "$(wc -l <"$WORK/msg$np")" = 1 ] || cat "$WORK/msg$np"
    check "diverging at $np rank(s): every rank's error, no rank named" grep -q '^deconfound: epoch' "$WORK/msg$np"
    check "diverging at $np rank(s): names the epoch, the step and where" \
        grep -Eq 'epoch [0-9]+ step [0-9]+: a value went non-finite \(NaN or infinity\), first in the (state|output|gradient) of layer [a-z0-9+]+' "$WORK/msg$np"
    check "diverging at $np rank(s): no checkpoint" [ ! -e "$WORK/stop$np/checkpoint.h5" ]
done
# A divergence every rank detects at once from the same sums, with no collective call to agree
# on it first (an MDN layer's P, df_die_shared; injected here at step 3): one message, exit 1,
# and no hang.
for np in 2 3; do
    DECONFOUND_FAULT=-1:3:shared timeout 60 "$MPIEXEC" $MPI_FLAGS -np $np "$DF" train "$cfg" "${args[@]}" \
        --set train.lr=0.01 --set "train.out_dir=$WORK/shared$np" >"$WORK/shared$np.log" 2>&1
    st=$?
    check "divergence seen by every rank at $np ranks: exit 1 (got $st)" [ $st = 1 ] || cat "$WORK/shared$np.log"
    grep '^deconfound' "$WORK/shared$np.log" | grep -v 'deconfound train:' >"$WORK/smsg$np"
    check "divergence seen by every rank at $np ranks: one message, from no rank in particular" \
        bash -c "[ \$(wc -l <'$WORK/smsg$np') = 1 ] && grep -q '^deconfound: injected divergence' '$WORK/smsg$np'" ||
        cat "$WORK/shared$np.log"
done
# ... and when rank 0 did not see it (its sums rounded otherwise), the rank that did speaks
DECONFOUND_FAULT=1:3:shared timeout 60 "$MPIEXEC" $MPI_FLAGS -np 2 "$DF" train "$cfg" "${args[@]}" \
    --set train.lr=0.01 --set "train.out_dir=$WORK/shared1" >"$WORK/shared1.log" 2>&1
st=$?
check "divergence seen by rank 1 alone: exit 1 (got $st), its message" \
    bash -c "[ $st = 1 ] && grep -q '^deconfound (rank 1 of 2): injected divergence' '$WORK/shared1.log'" || cat "$WORK/shared1.log"
where() { sed -n 's/.*first in the \([a-z]*\) of layer \([a-z0-9+]*\).*/\1 \2/p' "$1"; }
w1=$(where "$WORK/msg1") w2=$(where "$WORK/msg2")
check "the same place named at 1 and 2 ranks ($w1)" bash -c "[ -n '$w1' ] && [ '$w1' = '$w2' ]"

"$DF" train "$cfg" "${args[@]}" --set train.on_nonfinite=skip_batch --set "train.out_dir=$WORK/skip" >"$WORK/skip.log" 2>&1
st=$?
check "skip_batch: the skipped batch is reported" \
    grep -Eq '^epoch [0-9]+ step [0-9]+: batch skipped, a value went non-finite, first in the' "$WORK/skip.log"
check "skip_batch: counted at the epoch's end" grep -Eq '^epoch [0-9]+: [0-9]+ of 6 batches skipped' "$WORK/skip.log"
check "skip_batch: a whole epoch skipped stops the run (exit 1)" \
    bash -c "[ $st = 1 ] && grep -Eq 'epoch [0-9]+: every batch was skipped' '$WORK/skip.log'" || cat "$WORK/skip.log"
# an epoch that trained on some batches wrote its checkpoint (finite: checkpoint_save refuses otherwise)
if grep -Eq '^epoch 1: [1-5] of 6 batches skipped' "$WORK/skip.log"; then
    check "skip_batch: the partly skipped epoch's checkpoint written" "$DF" info "$WORK/skip/checkpoint.h5"
fi
finish
