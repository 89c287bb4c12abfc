#!/usr/bin/env bash
# pipelines/mdn-video/run.sh end to end on a few clips: both data sets (the scene, the
# brightness) and the three methods train under mpirun; results.csv has the study's columns,
# one line per (data, method), accuracies in [0, 100] (the conflicting one NA for the
# brightness data), dCor^2 numbers with the classes' largest at least their mean and the
# maximum over the second half at least the last; results_by_seed.csv has every run; a
# second call repeats nothing; DECONFOUND and OUT_DIR are honoured; bad arguments stop with
# status 2.
. "${top_srcdir:-.}/tests/lib.sh"
tiny=(--seeds 1 --epochs 2 --set data.n=96)
run() { DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/mdn-video/run.sh" "$@"; }
run "${tiny[@]}" >"$WORK/run.log" 2>&1
check "run.sh exits 0" [ $? = 0 ] || cat "$WORK/run.log"
csv="$WORK/study/results.csv"
check "results.csv: the study's columns" bash -c "head -1 '$csv' | grep -qx \
    'data,method,val_acc,val_acc_conflicting,dcor2_u_all,dcor2_u_class_mean,dcor2_u_class_max,dcor2_u_max,seeds'"
check "results.csv: every data set and method" bash -c "tail -n +2 '$csv' | cut -d, -f1-2 | paste -sd' ' | grep -qx \
    'scene,baseline scene,mdn-feat scene,mdn-every brightness,baseline brightness,mdn-feat brightness,mdn-every'"
check "results.csv: accuracies in [0, 100], NA for brightness, dCor^2 numbers in order" awk -F, 'NR > 1 {
    if ($3 == "" || $3 < 0 || $3 > 100) bad = 1
    if ($1 == "scene" && ($4 == "NA" || $4 < 0 || $4 > 100)) bad = 1
    if ($1 == "brightness" && $4 != "NA") bad = 1
    for (i = 5; i <= 8; i++) if ($i !~ /^-?[0-9.]+$/) bad = 1
    if ($7 < $6 - 1e-9 || $8 < $7 - 1e-9 || $9 != 1) bad = 1 } END { exit bad || NR != 7 }' "$csv"
check "the dCor report is on the removed column" bash -c "grep -q '^  brightness ' '$WORK/study/brightness-mdn-every-s1/train.log' &&
    grep -q '^  background ' '$WORK/study/scene-mdn-feat-s1/train.log'"
check "results_by_seed.csv: every run with its seed" bash -c "[ \$(grep -c ',1,' '$WORK/study/results_by_seed.csv') = 6 ]"
check "each run logs its OpenBLAS kernel" bash -c "[ \$(grep -c 'blas: OpenBLAS' '$WORK/run.log') = 6 ]"
run "${tiny[@]}" >"$WORK/again.log" 2>&1
check "a second call repeats no run" bash -c "[ \$(grep -c 'done before' '$WORK/again.log') = 6 ]"
DECONFOUND="$WORK/nope" OUT_DIR="$WORK/x" "$top_srcdir/pipelines/mdn-video/run.sh" --quick >"$WORK/bad.log" 2>&1
check "a missing binary: status 2, named" bash -c "[ $? = 2 ] && grep -q 'nope' '$WORK/bad.log'"
run --quick --methods "baseline mdn-all" >"$WORK/bad2.log" 2>&1
check "an unknown method: status 2, named" bash -c "[ $? = 2 ] && grep -q \"unknown method 'mdn-all'\" '$WORK/bad2.log'"
run --quick --data "scenes" >"$WORK/bad3.log" 2>&1
check "unknown data: status 2, named" bash -c "[ $? = 2 ] && grep -q \"unknown data 'scenes'\" '$WORK/bad3.log'"
finish
