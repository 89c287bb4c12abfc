#!/usr/bin/env bash
# `deconfound plot` on hand-written run directories (two classification runs with confounder
# groups and dCor reports, one regression run without): a PNG of the right size for one run
# and for several; bad input exits 2 naming the file and writes nothing; without gnuplot it
# exits 1 saying how to get it and writes nothing. The positive checks skip when gnuplot is
# not installed; the others run everywhere.
. "${top_srcdir:-.}/tests/lib.sh"

# classification_run DIR SPEED: 12 epochs of a binary classification run: groups of site and
# sex (the worst group quoted, as a CSV writer may), loss-term columns, and a dCor report on
# two layers with other scopes, a missing epoch and an empty value.
classification_run() {
    mkdir -p "$1"
    awk -v k="$2" 'BEGIN {
        printf "epoch,lr,seconds,samples_per_s,train_loss,train_acc,train_bal_acc,val_loss,val_acc,val_bal_acc,"
        printf "val_auc,val_acc_aligned,val_acc_conflicting,val_worst_group,val_worst_group_acc,"
        print "val_acc[site=A],val_acc[site=B],val_acc[sex=F],val_acc[sex=M],end(feat),end(feat).R_perp,train_eval_gap(mdn1)"
        for (e = 1; e <= 12; e++) {
            d = exp(-e * k / 4)
            tl = 0.25 + 0.45 * d; vl = tl + 0.04 + 0.004 * e * (1 - k)
            ta = 0.97 - 0.4 * d; va = ta - 0.05 - 0.03 * (1 - k); vb = va - 0.02
            a = va + 0.04; b = va - 0.12 * (1.2 - k); f = va + 0.01; m = va - 0.015
            worst = b < m ? "site=B" : "sex=M"; wacc = b < m ? b : m
            printf "%d,0.001,%.2f,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,\"%s\",%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n",
                e, 10 + e / 10, 400 - e, tl, ta, ta - 0.01, vl, va, vb, va + 0.03, va + 0.05, va - 0.1, worst, wacc,
                a, b, f, m, 0.1 * d, 0.02 * d, 0.01 * e * (1 - k)
        }
    }' >"$1/metrics.csv"
    awk -v k="$2" 'BEGIN {
        print "epoch,layer,column,scope,dcor2_u"
        for (e = 1; e <= 12; e++) {
            if (e == 5) continue
            for (l = 1; l <= 2; l++) {
                layer = l == 1 ? "feat" : "conv3"
                age = 0.02 + 0.08 * exp(-e * k / 3) / l; site = 0.01 + 0.05 * exp(-e * k / 5) / l
                printf "%d,%s,age,all,%.5f\n%d,%s,age,class=0,%.5f\n", e, layer, age, e, layer, age * 1.1
                printf "%d,%s,age,given_label,%.5f\n", e, layer, age * 0.9
                printf "%d,%s,site,all,%s\n%d,%s,site,class=1,\n", e, layer, e == 7 ? "" : sprintf("%.5f", site), e, layer
            }
        }
    }' >"$1/dcor.csv"
    echo '{}' >"$1/run.json"
    echo 'epoch 12/12 done' >"$1/log.txt"
}
# regression_run DIR: 6 epochs of a regression run: empty accuracy cells, no groups, no dcor.csv
regression_run() {
    mkdir -p "$1"
    {
        printf 'epoch,lr,seconds,samples_per_s,train_loss,train_acc,train_bal_acc,val_loss,val_acc,val_bal_acc,'
        printf 'val_auc,val_acc_aligned,val_acc_conflicting,val_worst_group,val_worst_group_acc,end(feat)\n'
        for e in 1 2 3 4 5 6; do printf '%d,0.01,3.5,900,%s,,,%s,,,,,,,,0.0%d\n' $e "$((30 / e)).5" "$((32 / e)).25" $e; done
    } >"$1/metrics.csv"
}
classification_run "$WORK/baseline" 0.7
classification_run "$WORK/mdn" 1.0
regression_run "$WORK/regression"

# png_ok FILE: a PNG (magic bytes) of 1400 x 1000 pixels (IHDR), more than 20 kB (not blank)
png_ok() {
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || { echo "$1: not a PNG"; return 1; }
    local size
    size=$(od -An -tu1 -j16 -N8 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4, $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }')
    [ "$size" = "1400 1000" ] || { echo "$1: $size pixels"; return 1; }
    [ "$(wc -c <"$1")" -gt 20000 ] || { echo "$1: $(wc -c <"$1") bytes"; return 1; }
}
# no_leftovers DIR: no temporary PNG or script folder left in DIR
no_leftovers() { ! ls -a "$1" | grep -Eq "^\.plot\.|$tmp_names"; }

if command -v "${DECONFOUND_GNUPLOT:-gnuplot}" >/dev/null; then
    "$DF" plot "$WORK/baseline" >"$WORK/one.log" 2>&1
    check "one run: exit 0" [ $? = 0 ] || cat "$WORK/one.log"
    check "one run: RUNDIR/plot.png, a 1400x1000 PNG" png_ok "$WORK/baseline/plot.png"
    check "one run: nothing else left in the run directory" no_leftovers "$WORK/baseline"
    "$DF" plot "$WORK/baseline" "$WORK/mdn/" "$WORK/regression" --out "$WORK/three.png" >"$WORK/three.log" 2>&1
    check "three runs with --out: exit 0" [ $? = 0 ] || cat "$WORK/three.log"
    check "three runs: a 1400x1000 PNG" png_ok "$WORK/three.png"
    check "three runs: nothing else left beside it" no_leftovers "$WORK"
    "$DF" plot "$WORK/regression" >"$WORK/reg.log" 2>&1
    check "a regression run without dcor.csv: exit 0" [ $? = 0 ] || cat "$WORK/reg.log"
    check "a regression run: a 1400x1000 PNG" png_ok "$WORK/regression/plot.png"
    mkdir -p "$WORK/b"
    cp -r "$WORK/baseline" "$WORK/b/"
    "$DF" plot "$WORK/baseline" "$WORK/b/baseline" "$WORK/baseline" --out "$WORK/same.png" >"$WORK/same.log" 2>&1
    check "runs sharing a basename, one given twice: exit 0" [ $? = 0 ] || cat "$WORK/same.log"
    mpi 2 "$DF" plot "$WORK/mdn" --out "$WORK/ranks.png" >"$WORK/ranks.log" 2>&1
    status=$?
    check "on 2 ranks: exit 0, one line, the PNG" bash -c "[ $status = 0 ] && [ \$(grep -c . '$WORK/ranks.log') = 1 ]" ||
        cat "$WORK/ranks.log"
    check "on 2 ranks: a 1400x1000 PNG" png_ok "$WORK/ranks.png"
else
    skip "gnuplot not installed (apt-get install gnuplot-nox): the plots themselves"
fi

# expect_status NAME STATUS PATTERN OUT CMD...: exit STATUS, one message matching PATTERN,
# and OUT neither created nor changed.
expect_status() {
    local name=$1 want=$2 pattern=$3 out=$4; shift 4
    local before=absent
    [ -e "$out" ] && before=$(cksum <"$out")
    "$@" >"$WORK/err.txt" 2>&1
    local status=$?
    check "$name: exit status $want (got $status)" [ "$status" = "$want" ]
    check "$name: one message matching /$pattern/" bash -c "[ \$(grep -c . '$WORK/err.txt') = 1 ] && grep -Eq -- \"$pattern\" '$WORK/err.txt'" ||
        cat "$WORK/err.txt"
    local after=absent
    [ -e "$out" ] && after=$(cksum <"$out")
    check "$name: $(basename "$out") untouched" [ "$before" = "$after" ]
    check "$name: no temporary files" no_leftovers "$(dirname "$out")"
}

mkdir -p "$WORK/empty"
expect_status "missing folder" 2 "nowhere: No such file or directory" "$WORK/x.png" "$DF" plot "$WORK/nowhere" --out "$WORK/x.png"
expect_status "no metrics.csv" 2 "empty/metrics.csv: .*not a run directory" "$WORK/empty/plot.png" "$DF" plot "$WORK/empty"
classification_run "$WORK/typo" 0.8
sed -i '5s/^\([^,]*,[^,]*,[^,]*,[^,]*\),[0-9.]*,/\1,0.4O1,/' "$WORK/typo/metrics.csv"
expect_status "a malformed number" 2 "typo/metrics.csv:5: train_loss: '0.4O1' is not a number" "$WORK/typo/plot.png" \
    "$DF" plot "$WORK/typo"
classification_run "$WORK/frac" 0.8
sed -i '3s/"site=B",[0-9.]*/"site=B",1.25/' "$WORK/frac/metrics.csv"
expect_status "an accuracy above 1" 2 "frac/metrics.csv:3: val_worst_group_acc: 1.25 is outside \[0, 1\]" "$WORK/frac/plot.png" \
    "$DF" plot "$WORK/frac"
classification_run "$WORK/big" 0.8
sed -i '3s/^[0-9]*,/1e300,/' "$WORK/big/metrics.csv"
expect_status "an epoch of 1e300" 2 "big/metrics.csv:3: epoch: 1e300 is outside \\[1, 1e\\+09\\]" "$WORK/big/plot.png" \
    "$DF" plot "$WORK/big"
classification_run "$WORK/dc" 0.8
echo '13,feat,age,all,high' >>"$WORK/dc/dcor.csv"
expect_status "a malformed dcor.csv" 2 "dc/dcor.csv:[0-9]+: dcor2_u: 'high' is not a number" "$WORK/dc/plot.png" "$DF" plot "$WORK/dc"
expect_status "a bad run among good ones" 2 "typo/metrics.csv:5" "$WORK/mixed.png" \
    "$DF" plot "$WORK/mdn" "$WORK/typo" --out "$WORK/mixed.png"
expect_status "several runs without --out" 2 "several run directories need --out" "$WORK/mdn/plot.png" \
    "$DF" plot "$WORK/mdn" "$WORK/baseline"
# A failure keeps an existing image as it was.
printf 'an earlier plot\n' >"$WORK/old.png"
expect_status "bad input over an existing image" 2 "typo/metrics.csv:5" "$WORK/old.png" "$DF" plot "$WORK/typo" --out "$WORK/old.png"

# No gnuplot: named by DECONFOUND_GNUPLOT, or none on PATH (under mpirun, which needs its own
# PATH to start; the program gets the empty one).
mkdir -p "$WORK/nobin"
expect_status "DECONFOUND_GNUPLOT=/nonexistent" 1 "gnuplot.*apt-get install gnuplot-nox" "$WORK/mdn/plot.png" \
    env DECONFOUND_GNUPLOT=/nonexistent "$DF" plot "$WORK/mdn"
expect_status "no gnuplot on PATH" 1 "cannot run gnuplot .*apt-get install gnuplot-nox" "$WORK/mdn/plot.png" \
    mpi 1 -x PATH="$WORK/nobin" -x DECONFOUND_GNUPLOT= "$DF" plot "$WORK/mdn"
expect_status "a gnuplot that fails" 1 "gnuplot \('false'\) failed with status 1.*gnuplot-nox" "$WORK/old.png" \
    env DECONFOUND_GNUPLOT=false "$DF" plot "$WORK/mdn" --out "$WORK/old.png"
expect_status "a gnuplot that writes nothing" 1 "wrote no PNG" "$WORK/old.png" \
    env DECONFOUND_GNUPLOT=true "$DF" plot "$WORK/mdn" --out "$WORK/old.png"
check "plot --help" bash -c "'$DF' plot --help | grep -q '^usage: deconfound plot'"
finish
