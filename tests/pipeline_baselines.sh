#!/usr/bin/env bash
# pipelines/baselines/run.sh end to end on a small cohort (96 subjects of 16^3): the NIfTI
# cohort packed, residualised, harmonised and both, then every arm trains under mpirun;
# results.csv has the study's columns, one line per arm, accuracies in [0, 100] and dCor^2
# numbers with the maximum over the second half at least the last ones; the rewritten
# shards say how they were made; a second call repeats nothing; DECONFOUND and OUT_DIR are
# honoured; bad arguments stop with status 2.
. "${top_srcdir:-.}/tests/lib.sh"
tiny=(--seeds 1 --epochs 2 --cohort 96,16)
run() { DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/baselines/run.sh" "$@"; }
run "${tiny[@]}" >"$WORK/run.log" 2>&1
check "run.sh exits 0" [ $? = 0 ] || cat "$WORK/run.log"
csv="$WORK/study/results.csv"
check "results.csv: the study's columns" bash -c "head -1 '$csv' | grep -qx \
    'arm,input,ranks,val_acc,val_acc_last5,train_acc,dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1,dcor2_u_max,seeds'"
check "results.csv: every arm, on its input" bash -c "tail -n +2 '$csv' | cut -d, -f1-2 | paste -sd' ' | grep -qx \
    'baseline,raw resid,resid combat,combat combat-resid,combat-resid mdn,raw'"
check "results.csv: accuracies in [0, 100], dCor^2 numbers, the maximum at least the last" awk -F, 'NR > 1 {
    for (i = 4; i <= 6; i++) if ($i == "" || $i < 0 || $i > 100) bad = 1
    for (i = 7; i <= 11; i++) if ($i !~ /^-?[0-9.]+$/) bad = 1
    for (i = 7; i <= 10; i++) if ($11 < $i - 1e-9) bad = 1
    if ($12 != 1) bad = 1 } END { exit bad || NR != 6 }' "$csv"
for d in resid combat combat-resid; do
    h5dump -a derived_by "$WORK/study/data/$d/val.h5" 2>/dev/null | grep -q "deconfound $( [ $d = combat ] && echo harmonize || echo residualize)"
    check "data/$d/val.h5 records how its images were made" [ $? = 0 ]
done
check "results_by_seed.csv: every run with its seed" bash -c "[ \$(grep -c ',1,' '$WORK/study/results_by_seed.csv') = 5 ]"
check "each run logs its OpenBLAS kernel" bash -c "[ \$(grep -c 'blas: OpenBLAS' '$WORK/run.log') = 5 ]"
run "${tiny[@]}" >"$WORK/again.log" 2>&1
check "a second call repeats no run" bash -c "[ \$(grep -c 'done before' '$WORK/again.log') = 5 ]"
DECONFOUND="$WORK/nope" OUT_DIR="$WORK/x" "$top_srcdir/pipelines/baselines/run.sh" --quick >"$WORK/bad.log" 2>&1
check "a missing binary: status 2, named" bash -c "[ $? = 2 ] && grep -q 'nope' '$WORK/bad.log'"
run --quick --arms "baseline combat2" >"$WORK/bad2.log" 2>&1
check "an unknown arm: status 2, named" bash -c "[ $? = 2 ] && grep -q \"unknown arm 'combat2'\" '$WORK/bad2.log'"
run --cohort 96 >"$WORK/bad3.log" 2>&1
check "a bad --cohort: status 2, named" bash -c "[ $? = 2 ] && grep -q \"cohort\" '$WORK/bad3.log'"
finish
