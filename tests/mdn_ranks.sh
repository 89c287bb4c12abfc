#!/usr/bin/env bash
# MDN with global regression statistics: the same global batch gives the same training at 1,
# 2 and 3 ranks (every epoch's train and validation loss in metrics.json agree to rounding:
# tests/lib.sh, losses_match). Two [mdn] layers remove age and site: one after a conv (dataset kernel, fitted
# over the ranks' shares of the training split) and one after a linear layer (batch kernel
# with ridge). A global batch of 10 over 3 ranks is split 3/3/4 and each epoch's last batch
# is partial (8 of 48). The same with R-MDN in both places, and its resume; with the
# evaluation beta refitted each epoch (eval_beta = epoch), and its resume, or in evaluation mode (epoch_eval,
# also under augmentation, which its pass must not see); PMDN
# (kernel = penalty), and its resume; one beta per
# channel (pool = channel); age as a spline (remove = age:spline3). Then: the
# checkpoint holds the MDN state; bad columns are refused
# with one message; predict on other data runs, the same at 1 and 2 ranks.
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$WORK/mdn.ini"
cat >"$cfg" <<'INI'
[data]
source = synth:mri3d
n = 64
shape = 16,16,16
seed = 7
val_fraction = 0.25

[train]
epochs = 3
batch = 10
optimizer = adam
lr = 0.002
seed = 1
log_every = 100

[loss]
type = cross_entropy

[conv3d]
name = conv1
out = 4
kernel = 3
pad = 1
[mdn]
name = mdn1
remove = age, site
[relu]
[maxpool3d]
kernel = 2
[flatten]
[linear]
name = fc1
out = 8
[mdn]
name = mdn2
remove = age, site
kernel = batch
ridge = 0.01
[relu]
[linear]
name = fc
out = 2
INI
for np in 1 2 3; do
    mpi $np "$DF" train "$cfg" --set "train.out_dir=$WORK/np$np" >"$WORK/np$np.log" 2>&1
    check "train with [mdn] at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/np$np.log"
done
echo "losses at 1 rank: $(run_losses "$WORK/np1" | paste -sd' ')"
check "2 ranks match 1 rank" losses_match "$WORK/np1" "$WORK/np2" 6
check "3 ranks (uneven split) match 1 rank" losses_match "$WORK/np1" "$WORK/np3" 6

# stop_and_resume WHAT STRAIGHT NAME SETTINGS...: a 2-rank run with SETTINGS stopped by
# SIGTERM mid-epoch (exit 3) and resumed from its checkpoint ends as the straight run
# $WORK/STRAIGHT did (epochs 2 and 3 print the same losses).
stop_and_resume() {
    local what=$1 straight=$2 name=$3
    shift 3
    DECONFOUND_FAULT=1:8:term mpi 2 "$DF" train "$cfg" "$@" --set "train.out_dir=$WORK/$name" >"$WORK/$name-stop.log" 2>&1
    check "$what: SIGTERM mid-epoch exits 3" [ $? = 3 ]
    mpi 2 "$DF" train "$cfg" "$@" --set "train.out_dir=$WORK/$name" --resume "$WORK/$name/checkpoint.h5" >"$WORK/$name-resume.log" 2>&1
    check "$what: resume exits 0" [ $? = 0 ] || cat "$WORK/$name-resume.log"
    check "$what: stop mid-epoch + resume equals straight through" \
        bash -c "diff <(grep '^epoch [23]/3 done' '$WORK/$straight.log' | sed 's/ | [0-9.]* samples.*//') \
                      <(grep '^epoch [23]/3 done' '$WORK/$name-resume.log' | sed 's/ | [0-9.]* samples.*//') &&
                 grep -q '^epoch 3/3 done' '$WORK/$name-resume.log'"
}

# R-MDN (kernel = recursive) in both places: the same at 1, 2 and 3 ranks (its sums X^T X and
# X^T F all-reduce), and a run stopped mid-epoch and resumed continues exactly (P and beta
# come back from the checkpoint)
rm_args=(--set mdn1.kernel=recursive --set mdn2.kernel=recursive --set mdn2.ridge=0.001 --set mdn1.forgetting=0.99)
for np in 1 2 3; do
    mpi $np "$DF" train "$cfg" "${rm_args[@]}" --set "train.out_dir=$WORK/rm$np" >"$WORK/rm$np.log" 2>&1
    check "R-MDN at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/rm$np.log"
done
check "R-MDN: 2 ranks match 1 rank" losses_match "$WORK/rm1" "$WORK/rm2" 6
check "R-MDN: 3 ranks match 1 rank" losses_match "$WORK/rm1" "$WORK/rm3" 6
run_losses "$WORK/np1" >"$WORK/l-mdn"; run_losses "$WORK/rm1" >"$WORK/l-rmdn"
check "R-MDN trains differently from MDN" bash -c "! cmp -s '$WORK/l-mdn' '$WORK/l-rmdn'"
stop_and_resume "R-MDN" rm2 rmi "${rm_args[@]}"

# PMDN (kernel = penalty) after the conv (mdn2 keeps its batch kernel, whose ridge PMDN has
# no use for): beta moved by its own Adam on the penalty, from
# X^T X and X^T F of the global batch; the same at 1, 2 and 3 ranks, and across a resume
# (beta and its Adam moments come back from the checkpoint)
pm_args=(--set mdn1.kernel=penalty --set mdn1.lr=0.01)
for np in 1 2 3; do
    mpi $np "$DF" train "$cfg" "${pm_args[@]}" --set "train.out_dir=$WORK/pm$np" >"$WORK/pm$np.log" 2>&1
    check "PMDN at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/pm$np.log"
done
check "PMDN: 2 ranks match 1 rank" losses_match "$WORK/pm1" "$WORK/pm2" 6
check "PMDN: 3 ranks match 1 rank" losses_match "$WORK/pm1" "$WORK/pm3" 6
stop_and_resume "PMDN" pm2 pmi "${pm_args[@]}"
"$DF" info "$WORK/pm1/checkpoint.h5" >"$WORK/pm-info.txt" 2>&1
check "PMDN: the checkpoint holds beta's Adam moments" bash -c "grep -q 'mdn1/adam_m' '$WORK/pm-info.txt' && grep -q 'mdn1/adam_step' '$WORK/pm-info.txt'"

# [mdn] eval_beta = epoch in both places: each epoch ends with the refit pass (run/refit.h),
# whose evaluation beta is the least-squares fit over the training split. The same at 1, 2
# and 3 ranks; training itself is untouched (the same train losses to the bit as the running
# average's run: the pass restores the state it ran over), validation is not (another beta);
# a run stopped mid-epoch and resumed ends as a straight one.
ep_args=(--set mdn1.eval_beta=epoch --set mdn2.eval_beta=epoch)
for np in 1 2 3; do
    mpi $np "$DF" train "$cfg" "${ep_args[@]}" --set "train.out_dir=$WORK/ep$np" >"$WORK/ep$np.log" 2>&1
    check "eval_beta = epoch at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/ep$np.log"
done
check "eval_beta = epoch: 2 ranks match 1 rank" losses_match "$WORK/ep1" "$WORK/ep2" 6
check "eval_beta = epoch: 3 ranks match 1 rank" losses_match "$WORK/ep1" "$WORK/ep3" 6
check "eval_beta = epoch: train losses those of the running average's run" \
    cmp <(run_losses "$WORK/np2" | grep train) <(run_losses "$WORK/ep2" | grep train)
run_losses "$WORK/np2" | grep val >"$WORK/v-running"; run_losses "$WORK/ep2" | grep val >"$WORK/v-epoch"
check "eval_beta = epoch: validation losses differ from it" bash -c "! cmp -s '$WORK/v-running' '$WORK/v-epoch'"
stop_and_resume "eval_beta = epoch" ep2 epi "${ep_args[@]}"

# eval_beta = epoch_eval: the refit pass in evaluation mode (the features validation sees);
# 1 and 3 ranks the same, training untouched, validation neither the running average's nor
# the training-mode refit's
ee_args=(--set mdn1.eval_beta=epoch_eval --set mdn2.eval_beta=epoch_eval)
for np in 1 3; do
    mpi $np "$DF" train "$cfg" "${ee_args[@]}" --set "train.out_dir=$WORK/ee$np" >"$WORK/ee$np.log" 2>&1
    check "eval_beta = epoch_eval at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/ee$np.log"
done
check "eval_beta = epoch_eval: 3 ranks match 1 rank" losses_match "$WORK/ee1" "$WORK/ee3" 6
check "eval_beta = epoch_eval: train losses those of the running average's run" \
    cmp <(run_losses "$WORK/np1" | grep train) <(run_losses "$WORK/ee1" | grep train)
run_losses "$WORK/ee1" | grep val >"$WORK/v-epoch-eval"; run_losses "$WORK/ep1" | grep val >"$WORK/v-epoch1"
check "eval_beta = epoch_eval: validation losses differ from epoch's" bash -c "! cmp -s '$WORK/v-epoch1' '$WORK/v-epoch-eval'"
# ... fitted on the training volumes as evaluation sees them, without the augmentation: with
# intensity, noise and shift augmentation on, mdn2's output on the training split (eval
# --split train) is the least-squares residual of its input there plus the label's part, so
# within a class uncorrelated with age and each site level (tests/orthogonal) up to float
# rounding: about 1e-7 for these 48 samples; 0.97 when the pass read augmented volumes, and
# 0.67 when mdn1's new beta was set only after it)
ORTHO="$top_builddir/tests/orthogonal"
# mdn1 before it refitted in training mode: its pass finishes first, so mdn2's sees its new beta
aug_args=(--set mdn1.eval_beta=epoch --set mdn2.eval_beta=epoch_eval --set mdn2.ridge=0 --set data.intensity_scale=0.3
          --set data.noise=0.3 --set data.shift=1)
mpi 2 "$DF" train "$cfg" "${aug_args[@]}" --set "train.out_dir=$WORK/eeaug" >"$WORK/eeaug.log" 2>&1
check "eval_beta = epoch_eval with augmentation exits 0" [ $? = 0 ] || cat "$WORK/eeaug.log"
mpi 2 "$DF" eval "$WORK/eeaug/config.ini" --checkpoint "$WORK/eeaug/checkpoint.h5" --split train --features mdn2 \
    --out "$WORK/eeaug-train.h5" --quiet >"$WORK/eeaug-eval.log" 2>&1
r=$("$ORTHO" "$WORK/eeaug-train.h5" mdn2 0 2c 2>&1)
check "eval_beta = epoch_eval with augmentation: mdn2 on the training split orthogonal to age and site ($r)" \
    awk -v r="$r" 'BEGIN { exit !(r + 0 == r && r < 1e-4) }' || cat "$WORK/eeaug-eval.log"

# [mdn] pool = channel after the conv (one beta per channel, from the channel means; its
# sums all-reduce like the others): 1 and 3 ranks the same
for np in 1 3; do
    mpi $np "$DF" train "$cfg" --set mdn1.pool=channel --set mdn1.eval_beta=epoch --set "train.out_dir=$WORK/pool$np" >"$WORK/pool$np.log" 2>&1
    check "pool = channel at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/pool$np.log"
done
check "pool = channel: 3 ranks match 1 rank" losses_match "$WORK/pool1" "$WORK/pool3" 6
"$DF" info "$WORK/pool1/checkpoint.h5" >"$WORK/pool-info.txt" 2>&1
check "pool = channel: the checkpoint holds one beta per channel" grep -q "mdn1/running_beta  *\[[0-9]*,4\]" "$WORK/pool-info.txt"

# remove = age:spline3 (age as a natural cubic spline, knots at the quantiles of the training
# ages gathered from the ranks' shares): 1 and 3 ranks the same, the knots in the checkpoint
for np in 1 3; do
    mpi $np "$DF" train "$cfg" --set "mdn1.remove=age:spline3, site" --set "mdn2.remove=age:spline3, site" \
        --set "train.out_dir=$WORK/spl$np" >"$WORK/spl$np.log" 2>&1
    check "age:spline3 at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/spl$np.log"
done
check "age:spline3: 3 ranks match 1 rank" losses_match "$WORK/spl1" "$WORK/spl3" 6
check "age:spline3 trains differently from a linear age" bash -c "! cmp -s <(grep -o '\"train_loss\": [-0-9.e]*' '$WORK/np1/metrics.json') \
    <(grep -o '\"train_loss\": [-0-9.e]*' '$WORK/spl1/metrics.json')"
"$DF" info "$WORK/spl1/checkpoint.h5" >"$WORK/spl-info.txt" 2>&1
check "age:spline3: the checkpoint holds the knots" grep -q "mdn1/knots  *\[1,9\]" "$WORK/spl-info.txt" || cat "$WORK/spl-info.txt"

# [train] train_eval_gap: each epoch, per BatchNorm/MDN layer, how far the eval-mode output
# is from the training-mode one on the validation split; measuring changes nothing else (the
# same losses to the bit), and 1 and 2 ranks measure the same to rounding (sums in another
# order: 1e-4 relative, as losses_match)
for np in 1 2; do
    mpi $np "$DF" train "$cfg" --set train.train_eval_gap=true --set "train.out_dir=$WORK/gap$np" >"$WORK/gap$np.log" 2>&1
    check "train_eval_gap at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/gap$np.log"
done
run_losses "$WORK/np2" >"$WORK/l-plain2"; run_losses "$WORK/gap2" >"$WORK/l-gap2"
check "train_eval_gap: the losses are those of the run without it" cmp "$WORK/l-plain2" "$WORK/l-gap2"
check "train_eval_gap: both MDN layers, every epoch, a number >= 0" \
    bash -c "[ \$(grep -o '\"train_eval_gap(mdn[12])\": [0-9][0-9.e+-]*' '$WORK/gap1/metrics.json' | wc -l) = 6 ]"
check "train_eval_gap: printed on the epoch line, the layer's own and in context" \
    grep -q '^epoch 3/3 done: .*train_eval_gap(mdn1) [0-9.e-]* \[in_context [0-9.e-]*\] | train_eval_gap(mdn2)' "$WORK/gap1.log"
check "train_eval_gap: 2 ranks measure what 1 rank does" bash -c "paste <(grep -o '\"train_eval_gap([a-z0-9_]*)[.a-z_]*\": [-0-9.e+]*' '$WORK/gap1/metrics.json') \
    <(grep -o '\"train_eval_gap([a-z0-9_]*)[.a-z_]*\": [-0-9.e+]*' '$WORK/gap2/metrics.json') | tr -d '\":' |
    awk '{ d = \$2 - \$4; if (d < 0) d = -d; if (\$1 != \$3 || d > 1e-4 * \$2 + 1e-7) bad = 1 } END { exit bad || NR != 12 }'"

# the checkpoint lists the MDN state of both layers
"$DF" info "$WORK/np2/checkpoint.h5" >"$WORK/info.txt" 2>&1
has_state() { grep -q "mdn1/kernel" "$WORK/info.txt" && grep -q "mdn1/running_beta" "$WORK/info.txt" &&
              grep -q "mdn2/running_beta" "$WORK/info.txt"; }
check "checkpoint holds mdn kernel and running_beta" has_state || cat "$WORK/info.txt"

# a bad remove column: one message naming it and the available columns, exit 2
"$DF" train "$cfg" --set mdn1.remove=age,scanner --set "train.out_dir=$WORK/bad" >"$WORK/bad.log" 2>&1
st=$?
check "unknown confounder column: exit 2" [ $st = 2 ]
check "unknown confounder column: message names it and lists the columns" \
    grep -q "'scanner'.*age, sex, site" "$WORK/bad.log" || cat "$WORK/bad.log"

# a column named twice
"$DF" train "$cfg" --set mdn1.remove=age,site,age --set "train.out_dir=$WORK/bad2" >"$WORK/bad2.log" 2>&1
check "repeated column: exit 2" [ $? = 2 ]

# predict on other data: the checkpoint's schema codes its metadata (tests/model_metadata.sh
# tests levels matched by name); the logits are the same bits at 1 and 2 ranks
"$DF" synth mri3d --n 8 --shape 16,16,16 --out "$WORK/data" >"$WORK/synth.log" 2>&1 || cat "$WORK/synth.log"
for np in 1 2; do
    mpi $np "$DF" predict "$cfg" --checkpoint "$WORK/np1/checkpoint.h5" --data "$WORK/data/shard-00000.h5" \
        --out "$WORK/pred$np.h5" >"$WORK/pred$np.log" 2>&1
    check "predict with [mdn] at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/pred$np.log"
done
check "predict with [mdn]: logits [8, 2]" bash -c "h5dump -H -d logits '$WORK/pred1.h5' | grep -q '( 8, 2 )'"
check "predict with [mdn]: 2 ranks write the same logits as 1" h5diff "$WORK/pred1.h5" "$WORK/pred2.h5" logits logits
finish
