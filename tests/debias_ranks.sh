#!/usr/bin/env bash
# The debiasing losses under mpirun: EnD (pairs over the global batch), MI (the bound over
# a permutation of the global batch, its statistics network replicated and synchronised) and
# CLAD (positives made by the loader, the queues updated from the gathered global batch) train
# the same at 1, 2 and 3 ranks; every epoch logs the terms beside the loss; a run stopped
# mid-epoch and resumed equals the straight-through run -- MI's statistics network, its
# optimisers, CLAD's queues and the partial epoch's logs included.
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$top_srcdir/pipelines/quickstart.ini"
args=(--set data.n=64 --set data.shape=16,16,16 --set train.epochs=3 --set train.batch=10)
(cat "$cfg"; printf '\n[debias]\nmethod = end\nlayer = flatten1\nbias = site\nalpha = 0.5\nbeta = 0.5\n') >"$WORK/end.ini"
# age binned at the training split's terciles; the first epoch is warm-up
(cat "$cfg"; printf '\n[debias]\nmethod = mi\nlayer = flatten1\nbias = age\nbins = 3\nestimator_steps = 3\nestimator_hidden = 16\nwarmup = 1\n') \
    >"$WORK/mi.ini"
# CLAD on the brain masks of the synthetic volumes (the background: everything outside)
(cat "$cfg"; printf '\n[debias]\nmethod = clad\nlayer = flatten1\nqueue = 8\n') >"$WORK/clad.ini"
clad_args=(--set data.masks=1 --set data.flip=w --set data.shift=1)

# term_values DIR: every logged term quantity of every epoch, one per line ("name value")
term_values() { grep -o '"[a-z_0-9]*([a-z_0-9]*)[.a-zA-Z_]*": [-0-9.e+]*' "$1/metrics.json" | sed 's/"//g; s/://'; }
# Rank counts change the order of sums (gradients, the statistics network's gradient), so the
# terms match to rounding: 1e-4 relative, or 1e-6 absolute for values near zero (MI's bound
# here is ~1e-3). Measured between 1, 2 and 3 ranks: EnD's at most 7e-8 relative, MI's 2e-6
# relative (3e-9 absolute), CLAD's under 1e-8 relative.
terms_match() {
    paste <(term_values "$1") <(term_values "$2") | awk '
        { d = $2 - $4; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2
          if ($3 == "" || $1 != $3 || d > 1e-6 + 1e-4 * a) { print "differs: " $1 " " $2 " vs " $4; bad = 1 } }
        END { exit bad || NR == 0 }'
}

for m in end mi clad; do
    extra=(); [ $m = clad ] && extra=("${clad_args[@]}")
    for np in 1 2 3; do
        mpi $np "$DF" train "$WORK/$m.ini" "${args[@]}" "${extra[@]}" --set "train.out_dir=$WORK/$m$np" >"$WORK/$m$np.log" 2>&1
        check "$m at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/$m$np.log"
    done
    check "$m: 2 ranks match 1 rank" losses_match "$WORK/${m}1" "$WORK/${m}2" 6
    check "$m: 3 ranks (uneven split) match 1 rank" losses_match "$WORK/${m}1" "$WORK/${m}3" 6
    check "$m: the terms' logs match at 2 ranks" terms_match "$WORK/${m}1" "$WORK/${m}2"
    check "$m: the terms' logs match at 3 ranks" terms_match "$WORK/${m}1" "$WORK/${m}3"
done
echo "EnD at 1 rank:"; grep '^epoch [0-9]*/3 done' "$WORK/end1.log"
echo "MI at 1 rank:"; grep '^epoch [0-9]*/3 done' "$WORK/mi1.log"
echo "CLAD at 1 rank:"; grep '^epoch [0-9]*/3 done' "$WORK/clad1.log"
check "EnD: the epoch line shows R_perp, R_par and the weights" \
    grep -q 'end(flatten1) [0-9.e-]* \[R_perp [0-9.e-]*, R_par [0-9.e-]*, alpha 0.5, beta 0.5, single_class_batches 0\]' "$WORK/end1.log"
check "MI: the epoch line shows the estimate, the estimator's and lambda" \
    grep -q 'mi(flatten1) [-0-9.e]* \[mi [-0-9.e]*, mi_estimator [-0-9.e]*, lambda 1, single_class_batches 0\]' "$WORK/mi1.log"
check "CLAD: the epoch line shows the term, the positives' similarity and the contrastive accuracy" \
    grep -q 'clad(flatten1) [0-9.e-]* \[pos_cos [-0-9.e]*, top1 [0-9.e-]*\]' "$WORK/clad1.log"
mpi 1 "$DF" train "$cfg" "${args[@]}" --set "train.out_dir=$WORK/plain" >"$WORK/plain.log" 2>&1
run_losses "$WORK/plain" >"$WORK/l-plain"
mpi 1 "$DF" train "$cfg" "${args[@]}" "${clad_args[@]}" --set "train.out_dir=$WORK/plain-aug" >"$WORK/plain-aug.log" 2>&1
run_losses "$WORK/plain-aug" >"$WORK/l-plain-aug"
run_losses "$WORK/clad1" >"$WORK/l-clad1-only"
check "clad changes the training" bash -c "[ -s '$WORK/l-clad1-only' ] && ! cmp -s '$WORK/l-plain-aug' '$WORK/l-clad1-only'"
for m in end mi; do
    run_losses "$WORK/${m}1" >"$WORK/l-$m"
    check "$m changes the training" bash -c "! cmp -s '$WORK/l-plain' '$WORK/l-$m'"
done

# A debiasing loss beside MDN layers (pipelines/mdn-mri3d.ini: MDN after conv3 and fc1
# removing age and site) and another [loss]: EnD on fc1_relu removing sex; 1 and 3 ranks agree
# over the first epoch (6 steps). Not longer: this small setting (global batch 10, alpha = beta
# = 1, MDN's batch kernel on 10 rows) multiplies rounding differences by 10-100 per epoch --
# |sum g_ij| has a kink where a class's sum crosses 0 -- so after 3 epochs 1 and 3 ranks
# differed by 5e-4 on OpenBLAS's Prescott kernels and 2e-5 on Haswell's. After the first epoch,
# measured on Prescott, Haswell and SkylakeX at 1, 2 and 3 ranks: train loss within 2e-7
# relative, the terms within 1.3e-6; a fault in the global batch moves them by far more.
mcfg="$top_srcdir/pipelines/mdn-mri3d.ini"
(cat "$mcfg"; printf '\n[debias]\nmethod = end\nlayer = fc1_relu\nbias = sex\nalpha = 1\nbeta = 1\n') >"$WORK/mdn-end.ini"
for np in 1 3; do
    mpi $np "$DF" train "$WORK/mdn-end.ini" "${args[@]}" --set train.epochs=1 --set loss.type=bce_logits --set fc2.out=1 \
        --set "train.out_dir=$WORK/me$np" >"$WORK/me$np.log" 2>&1
    check "EnD beside MDN layers and a BCE loss at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/me$np.log"
done
check "EnD beside MDN: 3 ranks match 1 rank" losses_match "$WORK/me1" "$WORK/me3" 2
check "EnD beside MDN: the terms' logs match" terms_match "$WORK/me1" "$WORK/me3"

# MI stopped mid-epoch (SIGTERM before global step 7, 5 steps per epoch: inside epoch 2) and
# resumed = straight through
mi4=("${args[@]}" --set train.epochs=4)
mpi 2 "$DF" train "$WORK/mi.ini" "${mi4[@]}" --set "train.out_dir=$WORK/straight" >"$WORK/straight.log" 2>&1
DECONFOUND_FAULT=1:7:term mpi 2 "$DF" train "$WORK/mi.ini" "${mi4[@]}" --set "train.out_dir=$WORK/int" >"$WORK/int.log" 2>&1
check "MI: SIGTERM mid-epoch exits 3" [ $? = 3 ]
check "MI: stopped inside epoch 2" grep -q 'stopped by signal at epoch 2 step' "$WORK/int.log"
mpi 2 "$DF" train "$WORK/mi.ini" "${mi4[@]}" --set "train.out_dir=$WORK/int" --resume "$WORK/int/checkpoint.h5" >"$WORK/res.log" 2>&1
check "MI: resume exits 0" [ $? = 0 ] || cat "$WORK/res.log"
epoch_lines() { grep '^epoch [234]/4 done' "$1" | sed 's/ | [0-9.]* samples\/s.*//'; }
epoch_lines "$WORK/straight.log" >"$WORK/a.txt"; epoch_lines "$WORK/res.log" >"$WORK/b.txt"
check "MI: stop mid-epoch + resume equals straight through (terms included)" \
    bash -c "[ \$(wc -l <'$WORK/a.txt') = 3 ] && diff '$WORK/a.txt' '$WORK/b.txt'"

# CLAD the same way: the queues (and whether they were filled) come back from the checkpoint,
# the positives from (seed, epoch, position)
c4=("${args[@]}" "${clad_args[@]}" --set train.epochs=4)
mpi 2 "$DF" train "$WORK/clad.ini" "${c4[@]}" --set "train.out_dir=$WORK/cstraight" >"$WORK/cstraight.log" 2>&1
DECONFOUND_FAULT=1:7:term mpi 2 "$DF" train "$WORK/clad.ini" "${c4[@]}" --set "train.out_dir=$WORK/cint" >"$WORK/cint.log" 2>&1
check "CLAD: SIGTERM mid-epoch exits 3" [ $? = 3 ]
mpi 2 "$DF" train "$WORK/clad.ini" "${c4[@]}" --set "train.out_dir=$WORK/cint" --resume "$WORK/cint/checkpoint.h5" >"$WORK/cres.log" 2>&1
check "CLAD: resume exits 0" [ $? = 0 ] || cat "$WORK/cres.log"
epoch_lines "$WORK/cstraight.log" >"$WORK/a.txt"; epoch_lines "$WORK/cres.log" >"$WORK/b.txt"
check "CLAD: stop mid-epoch + resume equals straight through (queues included)" \
    bash -c "[ \$(wc -l <'$WORK/a.txt') = 3 ] && diff '$WORK/a.txt' '$WORK/b.txt'"
finish
