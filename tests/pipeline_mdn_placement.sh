#!/usr/bin/env bash
# pipelines/mdn-placement/run.sh end to end on a small cohort: six variants (the showcase's
# placement, MDN after every convolution with the batch kernel and the refitted evaluation
# beta, R-MDN, the showcase's placement with age as a spline and the evaluation-mode refit,
# one beta per channel with a slope of age per site and the shift augmentation, the same with
# intensity and noise augmentation and fc1's beta refitted in evaluation mode) train under
# mpirun; results.csv has the columns the study names, one line per variant, accuracies in
# [0, 100] and dCor^2 numbers with the maximum over the second half no smaller than the last
# readings; results_by_seed.csv has every run; a second call repeats nothing; heldout.sh
# measures two variants' runs on a fresh cohort and writes its tables; DECONFOUND and
# OUT_DIR are honoured; bad arguments stop with status 2.
. "${top_srcdir:-.}/tests/lib.sh"
tiny=(--seeds 1 --variants "last every-batch-epoch every-recursive last-spline-epoch-eval every-pooled-agesite-shift every-pooled-agesite-aug-fc1eval" --epochs 2 --set data.n=96 --set data.shape=16,16,16)
run() { DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/mdn-placement/run.sh" "$@"; }
run "${tiny[@]}" >"$WORK/run.log" 2>&1
check "run.sh exits 0" [ $? = 0 ] || cat "$WORK/run.log"
csv="$WORK/study/results.csv"
check "results.csv: the study's columns" bash -c "head -1 '$csv' | grep -qx \
    'variant,placement,kernel,eval_beta,batch,ranks,val_acc,val_acc_last5,train_acc,dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1,dcor2_u_max,gap_first_mdn,seeds'"
check "results.csv: every variant, as described" bash -c "tail -n +2 '$csv' | cut -d, -f1-6 | paste -sd' ' | grep -qx \
    'last,last,dataset,running,32,2 every-batch-epoch,every,batch,epoch,32,2 every-recursive,every,recursive,-,32,2 last-spline-epoch-eval,last-spline,dataset,epoch_eval,32,2 every-pooled-agesite-shift,every-pooled-agesite,batch,epoch,32,2 every-pooled-agesite-aug-fc1eval,every-pooled-agesite,batch,epoch/fc1:epoch_eval,32,2'"
check "results.csv: accuracies in [0, 100], dCor^2 numbers, the maximum at least the last, a gap >= 0" awk -F, 'NR > 1 {
    for (i = 7; i <= 9; i++) if ($i == "" || $i < 0 || $i > 100) bad = 1
    for (i = 10; i <= 14; i++) if ($i !~ /^-?[0-9.]+$/) bad = 1
    for (i = 10; i <= 13; i++) if ($i > $14 + 1e-9) bad = 1
    if ($15 !~ /^[0-9.]+$/ || $16 != 1) bad = 1 } END { exit bad || NR != 7 }' "$csv"
check "results_by_seed.csv: every run with its seed" bash -c "[ \$(grep -c ',1,' '$WORK/study/results_by_seed.csv') = 6 ]"
check "the table is printed" grep -q '^every-recursive  *every' "$WORK/run.log"
check "each run logs its OpenBLAS kernel" bash -c "[ \$(grep -c 'blas: OpenBLAS' '$WORK/run.log') = 6 ]"
run "${tiny[@]}" >"$WORK/again.log" 2>&1
check "a second call repeats no run" bash -c "[ \$(grep -c 'done before' '$WORK/again.log') = 6 ]"
check "the spline variant removes age as a spline, refitted in evaluation mode" bash -c "grep -q 'age:spline4.1' '$WORK/study/last-spline-epoch-eval-s1/train.log' ||
    \"$DF\" info '$WORK/study/last-spline-epoch-eval-s1/checkpoint.h5' | grep -q 'mdn_fc1/knots'"
cfg="$WORK/study/every-pooled-agesite-shift-s1/config.ini"
check "the -shift variant trains with the shift augmentation and a slope of age per site in all four MDN layers" \
    bash -c "grep -q '^shift = 2' '$cfg' && [ \$(grep -c '^remove = age|site, *site' '$cfg') = 4 ] && [ \$(grep -c '^pool = channel' '$cfg') = 3 ]" ||
    grep -n 'shift\|remove\|pool' "$cfg"
cfg="$WORK/study/every-pooled-agesite-aug-fc1eval-s1/config.ini"
check "the -aug-fc1eval variant adds intensity and noise augmentation and refits fc1's beta in evaluation mode, the others' in training mode" \
    bash -c "grep -q '^shift = 2' '$cfg' && grep -q '^intensity_scale = 0.1' '$cfg' && grep -q '^intensity_shift = 0.1' '$cfg' &&
             grep -q '^noise = 0.1' '$cfg' && [ \$(grep -c '^eval_beta = epoch_eval' '$cfg') = 1 ] &&
             [ \$(grep -c '^eval_beta = epoch\$' '$cfg') = 3 ] &&
             awk '/^name = mdn_fc1/ { f = 1 } f && /^eval_beta/ { exit \$3 != \"epoch_eval\" }' '$cfg' &&
             [ \$(grep -c '^remove = age|site, *site' '$cfg') = 4 ]" ||
    grep -n 'shift\|intensity\|noise\|eval_beta\|remove' "$cfg"
# heldout.sh: the finished runs on a fresh cohort of the same generator and shape
DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/mdn-placement/heldout.sh" --n 40 --seed 9 \
    --variants "last every-pooled-agesite-shift" >"$WORK/heldout.log" 2>&1
check "heldout.sh exits 0" [ $? = 0 ] || cat "$WORK/heldout.log"
check "heldout_by_seed.csv: its columns, a line per run, dCor^2 numbers" awk -F, 'NR == 1 {
    bad = $0 != "variant,seed,n,dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1"; next }
    { if ($3 != 40 || $2 != 1) bad = 1; for (i = 4; i <= 7; i++) if ($i !~ /^-?[0-9.]+$/) bad = 1 }
    END { exit bad || NR != 3 }' "$WORK/study/heldout_by_seed.csv"
check "heldout.csv: the two variants, the largest at least each value" awk -F, 'NR > 1 {
    v = v " " $1; for (i = 3; i <= 6; i++) if ($i > $7 + 1e-9) bad = 1 } END { exit bad || v != " every-pooled-agesite-shift last" }' \
    "$WORK/study/heldout.csv"
check "heldout.sh: the held-out cohort has the runs' shape and its own seed" bash -c \
    "\"$DF\" info '$WORK/study/heldout-data-n40-seed9/shard-00000.h5' | grep -q '40 samples of shape (C,D,H,W) = (1,16,16,16)'"
DECONFOUND="$DF" OUT_DIR="$WORK/none" "$top_srcdir/pipelines/mdn-placement/heldout.sh" >"$WORK/bad4.log" 2>&1
check "heldout.sh without runs: status 2, named, by heldout.sh" bash -c "[ $? = 2 ] && grep -q '^heldout.sh: .*none' '$WORK/bad4.log'"
DECONFOUND="$WORK/nope" OUT_DIR="$WORK/x" "$top_srcdir/pipelines/mdn-placement/run.sh" --quick >"$WORK/bad.log" 2>&1
check "a missing binary: status 2, named" bash -c "[ $? = 2 ] && grep -q 'nope' '$WORK/bad.log'"
run --quick --variants "last every-pmdn" >"$WORK/bad2.log" 2>&1
check "an unknown variant: status 2, named" bash -c "[ $? = 2 ] && grep -q \"unknown variant 'every-pmdn'\" '$WORK/bad2.log'"
run --quick --epochs ten >"$WORK/bad3.log" 2>&1
check "epochs that are not a number: status 2" bash -c "[ $? = 2 ] && grep -q \"'ten' is not\" '$WORK/bad3.log'"
finish
