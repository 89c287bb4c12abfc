#!/usr/bin/env bash
# pipelines/mdn-variants/run.sh end to end on a few images: two kernels at one global batch
# on 1 and 2 ranks; results.csv has the columns, one line per run, accuracies in
# [0, 100] and dCor^2 numbers with the maximum over the second half no smaller than the
# last readings, and 1 and 2 ranks agree: the global batch is the same, the sums' order is
# not, and its rounding grows over the steps (tests/lib.sh, losses_match), so accuracy to
# one point (a sample or so of the 128 validation images) and dCor^2 to 5e-3 (measured:
# 0.05 points and 2e-4 after 10 epochs); a second call repeats nothing; DECONFOUND and
# OUT_DIR are honoured; bad arguments stop with status 2.
. "${top_srcdir:-.}/tests/lib.sh"
tiny=(--data mdn2d --kernels "batch penalty" --batches 32 --ranks "1 2" --set data.n=256 --set train.epochs=2)
run() { DECONFOUND="$DF" OUT_DIR="$WORK/study" "$top_srcdir/pipelines/mdn-variants/run.sh" "$@"; }
run "${tiny[@]}" >"$WORK/run.log" 2>&1
check "run.sh exits 0" [ $? = 0 ] || cat "$WORK/run.log"
csv="$WORK/study/results.csv"
check "results.csv: the issue's columns" \
    bash -c "head -1 '$csv' | grep -qx 'data,kernel,batch,ranks,val_acc,dcor2_u_class0,dcor2_u_class1,dcor2_u_max'"
check "results.csv: every run" bash -c "tail -n +2 '$csv' | cut -d, -f1-4 | paste -sd' ' | \
    grep -qx 'mdn2d,batch,32,1 mdn2d,batch,32,2 mdn2d,penalty,32,1 mdn2d,penalty,32,2'"
check "results.csv: accuracy in [0, 100], dCor^2 numbers, the maximum at least the last" awk -F, 'NR > 1 {
    if ($5 == "" || $5 < 0 || $5 > 100) bad = 1
    for (i = 6; i <= 8; i++) if ($i !~ /^-?[0-9.]+$/) bad = 1
    if ($6 > $8 + 1e-9 || $7 > $8 + 1e-9) bad = 1 } END { exit bad || NR != 5 }' "$csv"
check "1 and 2 ranks agree" awk -F, 'NR > 1 { k = $1 "," $2 "," $3
    if (k in acc) { d = acc[k] - $5; if (d > 1 || d < -1) bad = 1
                    for (i = 6; i <= 8; i++) { d = v[k, i] - $i; if (d > 5e-3 || d < -5e-3) bad = 1 } }
    acc[k] = $5; for (i = 6; i <= 8; i++) v[k, i] = $i } END { exit bad }' "$csv"
check "each run logs its OpenBLAS kernel" bash -c "[ \$(grep -c 'blas: OpenBLAS' '$WORK/run.log') = 4 ]"
run "${tiny[@]}" >"$WORK/again.log" 2>&1
check "a second call repeats no run" bash -c "[ \$(grep -c 'done before' '$WORK/again.log') = 4 ]"
DECONFOUND="$WORK/nope" OUT_DIR="$WORK/x" "$top_srcdir/pipelines/mdn-variants/run.sh" --quick >"$WORK/bad.log" 2>&1
check "a missing binary: status 2, named" bash -c "[ $? = 2 ] && grep -q 'nope' '$WORK/bad.log'"
run --quick --kernels "dataset ridge" >"$WORK/bad2.log" 2>&1
check "an unknown kernel: status 2, named" bash -c "[ $? = 2 ] && grep -q \"unknown kernel 'ridge'\" '$WORK/bad2.log'"
run --quick --batches "16 0" >"$WORK/bad3.log" 2>&1
check "a batch of 0: status 2" bash -c "[ $? = 2 ] && grep -q \"'0' is not a positive integer\" '$WORK/bad3.log'"
finish
