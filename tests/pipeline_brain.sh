#!/usr/bin/env bash
# pipelines/brain/run.sh end to end, small (48 subjects, 2 seeds, 2 epochs): the cohort made
# and packed from BIDS once, both arms trained under mpirun, compared and asked where they
# look; results.csv has the study's columns, one row per arm, figures in range; a second
# call repeats nothing; DECONFOUND and OUT_DIR are honoured; bad arguments stop with status 2.
# Skipped without Debian's mricron-data.
. "${top_srcdir:-.}/tests/lib.sh"
[ -f /usr/share/mricron/templates/ch2.nii.gz ] || { echo "SKIP: mricron-data not installed"; exit 77; }
run() { DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/brain/run.sh" "$@"; }
run --seeds "1 2" --n 48 --epochs 2 >"$WORK/run.log" 2>&1
check "run.sh exits 0" [ $? = 0 ] || cat "$WORK/run.log"
csv="$WORK/study/results.csv"
check "results.csv: the study's columns" bash -c "head -1 '$csv' | grep -qx 'method,runs,val_acc_mean,val_acc_sd,val_bal_acc_mean,val_bal_acc_sd,val_worst_group_acc_mean,val_worst_group_acc_sd,val_auc_mean,val_auc_sd,dcor2\[age\]_mean,dcor2\[age\]_sd,dcor2\[site\]_mean,dcor2\[site\]_sd,dcor2\[sex\]_mean,dcor2\[sex\]_sd,saliency_in_regions_mean,saliency_in_regions_sd'"
check "results.csv: both arms over 2 seeds, accuracies in [0, 1], a saliency ratio" awk -F, 'NR > 1 {
    if ($2 != 2) bad = 1
    for (i = 3; i <= 9; i += 2) if ($i < 0 || $i > 1) bad = 1
    if ($17 !~ /^[0-9.]+$/) bad = 1 } END { exit bad || NR != 3 }' "$csv"
check "results_by_seed.csv: 4 runs" bash -c "[ \$(tail -n +2 '$WORK/study/results_by_seed.csv' | wc -l) = 4 ]"
check "compare.md: the paired test over the seeds" grep -q 'over the seeds both ran' "$WORK/study/compare.md"
run --seeds "1 2" --n 48 --epochs 2 >"$WORK/again.log" 2>&1
check "a second call trains nothing again" bash -c "! grep -q '^== ' '$WORK/again.log'"
run --seeds x >"$WORK/bad.log" 2>&1
check "bad --seeds: status 2" bash -c "[ $? = 2 ] && grep -q 'not a non-negative integer' '$WORK/bad.log'"
finish
