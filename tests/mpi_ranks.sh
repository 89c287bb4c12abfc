#!/usr/bin/env bash
# The same global batch gives the same training at 1, 2 and 3 ranks: every epoch's train and
# validation loss (metrics.json, 9 significant digits) agree to 1e-5 relative. BatchNorm
# statistics are global; a global batch of 10 over 3 ranks is split unevenly (3/3/4), and
# the last batch of each epoch is partial (8).
. "${top_srcdir:-.}/tests/lib.sh"
cfg="$top_srcdir/pipelines/quickstart.ini"
args=(--set data.n=64 --set data.shape=16,16,16 --set train.epochs=3 --set train.batch=10)
for np in 1 2 3; do
    mpi $np "$DF" train "$cfg" "${args[@]}" --set "train.out_dir=$WORK/np$np" >"$WORK/np$np.log" 2>&1
    check "train at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/np$np.log"
    grep -o '"\(train\|val\)_loss": [-0-9.e]*' "$WORK/np$np/metrics.json" | awk '{print $2}' >"$WORK/np$np.txt"
done
echo "losses at 1 rank:"; paste -sd' ' "$WORK/np1.txt"
same() {
    paste "$WORK/np1.txt" "$WORK/np$1.txt" | awk '
        { d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1
          if (d > 1e-5 * a) { print "differs: " $1 " vs " $2; bad = 1 } }
        END { exit bad || NR != 6 }'
}
check "2 ranks match 1 rank" same 2
check "3 ranks (uneven split) match 1 rank" same 3
finish
