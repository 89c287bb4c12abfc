#!/usr/bin/env bash
# pipelines/bfmnist/run.sh end to end on a few images: every method trains under mpirun,
# results.csv has the columns the study names and one line per run, with accuracies in [0, 1];
# results_by_class.csv has the dCor^2 of each class; a second call repeats nothing;
# DECONFOUND and OUT_DIR are honoured.
. "${top_srcdir:-.}/tests/lib.sh"
fm=/usr/share/datasets/fashion-mnist
if [ ! -e "$fm/train-images-idx3-ubyte.gz" ] && [ ! -e "$fm/train-images-idx3-ubyte" ]; then
    skip "no Fashion-MNIST (install dataset-fashion-mnist)"
    finish
fi
tiny=(--quick --set data.n=40 --set data.n_test=30 --set train.batch=20 --set train.epochs=1)
DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/bfmnist/run.sh" "${tiny[@]}" >"$WORK/run.log" 2>&1
check "run.sh exits 0" [ $? = 0 ] || cat "$WORK/run.log"
csv="$WORK/study/results.csv"
check "results.csv: the study's columns" bash -c "head -1 '$csv' | grep -qx 'method,rho,unbiased_acc,conflicting_acc,aligned_acc,dcor2_u'"
check "results.csv: baseline, end, mi, mdn at rho 0.997" bash -c "cut -d, -f1,2 '$csv' | tail -n +2 | paste -sd' ' | grep -qx 'baseline,0.997 end,0.997 mi,0.997 mdn,0.997'"
# (NA: a group with no test image -- possible for the aligned ones among 30)
check "results.csv: accuracies in [0, 1] or NA, dCor^2 a number" awk -F, 'NR > 1 { for (i = 3; i <= 5; i++) if ($i != "NA" && ($i == "" || $i < 0 || $i > 1)) bad = 1
    if ($6 !~ /^-?[0-9.e-]+$/) bad = 1 } END { exit bad || NR != 5 }' "$csv"
check "results_by_class.csv: ten classes per run" bash -c "[ \$(tail -n +2 '$WORK/study/results_by_class.csv' | wc -l) = 40 ]"
check "the table is printed" grep -q '^mdn  *0.997' "$WORK/run.log"
check "each run logs its OpenBLAS kernel" bash -c "[ \$(grep -c 'blas: OpenBLAS' '$WORK/run.log') = 4 ]"
DECONFOUND="$DF" OUT_DIR="$WORK/study" RANKS=2 "$top_srcdir/pipelines/bfmnist/run.sh" "${tiny[@]}" >"$WORK/again.log" 2>&1
check "a second call repeats no run" bash -c "[ \$(grep -c 'done before' '$WORK/again.log') = 4 ]"
DECONFOUND="$WORK/nope" OUT_DIR="$WORK/x" "$top_srcdir/pipelines/bfmnist/run.sh" --quick >"$WORK/bad.log" 2>&1
check "a missing binary: status 2, named" bash -c "[ $? = 2 ] && grep -q 'nope' '$WORK/bad.log'"
finish
