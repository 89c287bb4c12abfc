#!/usr/bin/env bash
# pipelines/background/run.sh end to end on a few volumes and clips: every method trains
# under mpirun and is evaluated on the four test variants; results.csv has the columns the
# study names, one line per data set and method, accuracies in [0, 100] and BG-gap =
# mixed-same - mixed-rand; results_by_seed.csv has every run; a second call repeats nothing;
# DECONFOUND and OUT_DIR are honoured; bad arguments stop with status 2.
. "${top_srcdir:-.}/tests/lib.sh"
tiny=(--quick --datasets "mri video-0.9" --n 160 --n-test 24 --epochs 1 --set train.batch=16)
run() { DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/background/run.sh" "$@"; }
run "${tiny[@]}" >"$WORK/run.log" 2>&1
check "run.sh exits 0" [ $? = 0 ] || cat "$WORK/run.log"
csv="$WORK/study/results.csv"
check "results.csv: the study's columns" \
    bash -c "head -1 '$csv' | grep -qx 'dataset,method,original_acc,mixed_same_acc,mixed_rand_acc,only_bg_acc,bg_gap,dcor2_u'"
check "results.csv: every data set and method" bash -c "cut -d, -f1,2 '$csv' | tail -n +2 | paste -sd' ' | \
    grep -qx 'mri,baseline mri,clad mri,end mri,mdn video-0.9,baseline video-0.9,clad video-0.9,end video-0.9,mdn'"
check "results.csv: accuracies in [0, 100], the gap their difference, dCor^2 a number" awk -F, 'NR > 1 {
    for (i = 3; i <= 6; i++) if ($i == "" || $i < 0 || $i > 100) bad = 1
    d = $4 - $5 - $7; if (d > 0.011 || d < -0.011) bad = 1
    if ($8 !~ /^-?[0-9.e-]+$/) bad = 1 } END { exit bad || NR != 9 }' "$csv"
check "results_by_seed.csv: every run with its seed" bash -c "[ \$(grep -c ',1,' '$WORK/study/results_by_seed.csv') = 8 ]"
check "the table is printed" grep -q '^video-0.9  *mdn' "$WORK/run.log"
check "each run logs its OpenBLAS kernel" bash -c "[ \$(grep -c 'blas: OpenBLAS' '$WORK/run.log') = 8 ]"
check "the variants were written once per data set" bash -c "ls '$WORK/study'/test-*/mixed-rand.h5 | wc -l | grep -qx 2"
run "${tiny[@]}" >"$WORK/again.log" 2>&1
check "a second call repeats no run" bash -c "[ \$(grep -c 'done before' '$WORK/again.log') = 8 ]"
DECONFOUND="$WORK/nope" OUT_DIR="$WORK/x" "$top_srcdir/pipelines/background/run.sh" --quick >"$WORK/bad.log" 2>&1
check "a missing binary: status 2, named" bash -c "[ $? = 2 ] && grep -q 'nope' '$WORK/bad.log'"
run --quick --methods "baseline rebias" >"$WORK/bad2.log" 2>&1
check "an unknown method: status 2, named" bash -c "[ $? = 2 ] && grep -q \"unknown method 'rebias'\" '$WORK/bad2.log'"
run --quick --n ten >"$WORK/bad3.log" 2>&1
check "a size that is not a number: status 2" bash -c "[ $? = 2 ] && grep -q \"'ten' is not\" '$WORK/bad3.log'"
finish
