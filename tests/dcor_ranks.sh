#!/usr/bin/env bash
# deconfound dcor / eval under mpirun: 1, 2 and 3 ranks give the same statistics (1e-10
# relative) and the same p-value; the tile size does not change them; eval and predict write
# the same bytes at any rank count and batch size, in input order across two shards; dcor
# reads eval's file with
# --y FILE:meta:age, --given, --by labels; bad input ends with one message and status 2;
# the training report's row gather puts every row on every rank at 2 and 3 ranks.
. "${top_srcdir:-.}/tests/lib.sh"

# Compares every numeric key of two one-line JSON objects (except seconds) to 1e-10 relative.
same_json() {
    awk -v A="$(cat "$1")" -v B="$(cat "$2")" '
        function parse(s, arr,   n, i, kv) {
            gsub(/[{}"]/, "", s); n = split(s, kv, ", ")
            for (i = 1; i <= n; i++) { split(kv[i], p, ": "); if (p[1] != "seconds") arr[p[1]] = p[2] }
        }
        BEGIN {
            parse(A, a); parse(B, b); bad = 0; cnt = 0
            for (k in a) {
                cnt++
                if (!(k in b)) { print "missing " k; bad = 1; continue }
                if (a[k] == b[k]) continue
                d = a[k] - b[k]; if (d < 0) d = -d; m = a[k] < 0 ? -a[k] : a[k]
                if (a[k] == "null" || b[k] == "null" || d > 1e-10 * m) { print k ": " a[k] " vs " b[k]; bad = 1 }
            }
            exit bad || cnt < 5
        }'
}

# ---- ranks and tiles on generated data (no files) ------------------------------------
for np in 1 2 3; do
    for t in 64 700; do
        mpi $np "$DF" dcor --random 700,9 --tile $t --permutations 19 --json >"$WORK/r$np-$t.json" 2>"$WORK/err"
        check "dcor --random at $np rank(s), tile $t exits 0" [ $? = 0 ] || cat "$WORK/err"
    done
    mpi $np "$DF" dcor --random 900,1 --permutations 19 --unbiased --json >"$WORK/o$np.json"
done
cat "$WORK/r1-700.json"
check "2 ranks match 1 rank" same_json "$WORK/r1-700.json" "$WORK/r2-700.json"
check "3 ranks match 1 rank" same_json "$WORK/r1-700.json" "$WORK/r3-700.json"
check "tile 64 matches one tile (1 rank)" same_json "$WORK/r1-700.json" "$WORK/r1-64.json"
check "tile 64 at 3 ranks matches" same_json "$WORK/r1-700.json" "$WORK/r3-64.json"
check "1-D path: 3 ranks match 1 rank" same_json "$WORK/o1.json" "$WORK/o3.json"
check "dependent data: smallest p-value" grep -q '"p_value": 0.050000000000000003' "$WORK/r3-64.json"

# Discrete data (a one-hot site against sex): many replicates equal the observed statistic
# and are summed in other orders by other tiles and ranks; the tie margin (nn/dcor.h) gives
# the same p-value at every rank count and tile size.
"$DF" synth mri3d --out "$WORK/tie" --n 24 --seed 1 --shape 8 >/dev/null
tie="$WORK/tie/shard-00000.h5"
for np in 1 2 3; do
    for t in 5 512; do
        mpi $np "$DF" dcor --x "$tie:meta:site" --y "$tie:meta:sex" --permutations 199 --tile $t --json --quiet |
            grep -o '"p_value": [0-9.e-]*'
    done
done >"$WORK/tie-p.txt"
check "ties: one p-value at 1-3 ranks, tiles 5 and 512 ($(sort -u "$WORK/tie-p.txt" | tr '\n' ' '))" \
    eval '[ "$(wc -l <"$WORK/tie-p.txt")" = 6 ] && [ "$(sort -u "$WORK/tie-p.txt" | wc -l)" = 1 ]'
# A whole /meta (age, sex, site): its categorical columns one-hot coded in place, as a
# picked one is: 1 + 2 + 3 columns.
"$DF" dcor --x "$tie:meta" --y "$tie:labels" --json --quiet >"$WORK/meta.json"
check "a whole /meta: sex and site one-hot coded (d_x 6)" grep -q '"d_x": 6,' "$WORK/meta.json"

# ---- eval -> dcor --------------------------------------------------------------------
cfg="$top_srcdir/pipelines/quickstart.ini"
small=(--set data.n=64 --set data.shape=16,16,16)
"$DF" train "$cfg" "${small[@]}" --set train.epochs=1 --set "train.out_dir=$WORK/run" >"$WORK/train.log" 2>&1
check "train a small checkpoint" [ -s "$WORK/run/checkpoint.h5" ] || cat "$WORK/train.log"
"$DF" synth mri3d --out "$WORK/a" --n 30 --seed 5 --shape 16,16,16 >/dev/null
"$DF" synth mri3d --out "$WORK/b" --n 17 --seed 6 --shape 16,16,16 >/dev/null
shards="$WORK/a/shard-00000.h5,$WORK/b/shard-00000.h5"
# A sample's features are the same bits whatever the batch size and the rank count
# (per-sample GEMMs in eval mode; docs/distributed.md): compared exactly, no tolerance.
for run in "1 4" "1 1" "1 47" "2 4" "3 4" "3 1"; do
    set -- $run
    mpi $1 "$DF" eval "$cfg" "${small[@]}" --checkpoint "$WORK/run/checkpoint.h5" --data "$shards" \
        --features conv3,fc --batch $2 --out "$WORK/f$1-$2.h5" >"$WORK/eval$1-$2.log" 2>&1
    check "eval at $1 rank(s), batch $2 exits 0" [ $? = 0 ] || cat "$WORK/eval$1-$2.log"
done
cat "$WORK/eval1-4.log"
for run in 1-1 1-47 2-4 3-4 3-1; do
    check "eval: $run (ranks-batch) writes the same bytes as 1 rank, batch 4" h5diff "$WORK/f1-4.h5" "$WORK/f$run.h5"
done
cp "$WORK/f1-4.h5" "$WORK/f1.h5"
for run in "1 1" "1 47" "3 4"; do
    set -- $run
    mpi $1 "$DF" predict "$cfg" "${small[@]}" --checkpoint "$WORK/run/checkpoint.h5" --data "$WORK/b/shard-00000.h5" \
        --batch $2 --out "$WORK/p$1-$2.h5" >"$WORK/pred$1-$2.log" 2>&1
    check "predict at $1 rank(s), batch $2 exits 0" [ $? = 0 ] || cat "$WORK/pred$1-$2.log"
done
check "predict: 1 rank batch 47 = batch 1 (exactly)" h5diff "$WORK/p1-1.h5" "$WORK/p1-47.h5"
check "predict: 3 ranks batch 4 = 1 rank batch 1 (exactly)" h5diff "$WORK/p1-1.h5" "$WORK/p3-4.h5"
fc_rows() { h5dump -d "$2" -w 0 -y "$1" | sed -n '/DATA {/,/}/p' | grep -o '[-0-9.e]\+' ; }
export -f fc_rows  # for the checks' bash -c
check "predict's logits are eval's fc features, rows of shard b" \
    bash -c "diff <(fc_rows '$WORK/f1.h5' features/fc | tail -n 34) <(fc_rows '$WORK/p1-1.h5' logits) >/dev/null"
labels_of() { h5dump -d labels -y -w 0 "$1" | sed -n '/DATA {/{n;p}' | tr -d ' '; }
export -f labels_of
check "eval: labels of both shards in input order" \
    [ "$(labels_of "$WORK/f1.h5")" = "$(labels_of "$WORK/a/shard-00000.h5"),$(labels_of "$WORK/b/shard-00000.h5")" ]
check "eval: features/fc is [47, 2]" bash -c "h5dump -H -d features/fc '$WORK/f1.h5' | grep -q '( 47, 2 )'"
check "eval: no temporary files left" bash -c "! ls -a '$WORK' | grep -q tmp"

# --split: one split of the config's own data, as training split it. The validation
# split's logits give training's own final validation accuracy (its loader path, not
# this one); train and val together are every sample of the same data given as a shard,
# each split's rows in data order; 3 ranks write the bytes of 1.
"$DF" synth mri3d --out "$WORK/all" --n 64 --seed 7 --shape 16,16,16 >/dev/null
for s in val train; do
    for np in 1 3; do
        mpi $np "$DF" predict "$cfg" "${small[@]}" --checkpoint "$WORK/run/checkpoint.h5" --split $s --batch 5 \
            --out "$WORK/ps-$s-$np.h5" >"$WORK/ps.log" 2>&1
        check "predict --split $s at $np rank(s) exits 0" [ $? = 0 ] || cat "$WORK/ps.log"
    done
    check "predict --split $s: 3 ranks = 1 rank (exactly)" h5diff "$WORK/ps-$s-1.h5" "$WORK/ps-$s-3.h5"
done
"$DF" predict "$cfg" "${small[@]}" --checkpoint "$WORK/run/checkpoint.h5" --data "$WORK/all/shard-00000.h5" \
    --out "$WORK/ps-all.h5" >"$WORK/ps.log" 2>&1
# "logit0 logit1 label" per line of a predictions file.
rows_of() { paste -d' ' <(fc_rows "$1" logits | paste -d' ' - -) <(h5dump -d labels -y -w 0 "$1" | sed -n '/DATA {/{n;p}' | tr ',' '\n' | tr -d ' ' | grep .); }
export -f rows_of
acc=$(rows_of "$WORK/ps-val-1.h5" | awk '{ n++; if (($2 > $1) == ($3 == 1)) c++ } END { printf "%.3f", c / n }')
final=$(grep -o 'validation accuracy [0-9.]*' "$WORK/train.log" | awk '{ print $3 }')
check "predict --split val: accuracy $acc = training's final validation accuracy $final" eval '[ -n "$final" ] && [ "$acc" = "$final" ]'
n_val=$(rows_of "$WORK/ps-val-1.h5" | wc -l) n_train=$(rows_of "$WORK/ps-train-1.h5" | wc -l)
check "--split: train ($n_train) + val ($n_val) = the 64 samples" eval '[ $((n_train + n_val)) = 64 ] && [ "$n_val" -lt 64 ]'
# Each split's rows, in order, are a subsequence of the shard's rows: the rows of the whole
# shard minus the val rows (kept in order) are the train rows.
check "--split: val and train rows interleave into the whole data's, each in data order" bash -c \
    "diff <(awk 'NR == FNR { v[\$0]++; next } (\$0 in v) && v[\$0]-- > 0 { next } { print }' <(rows_of '$WORK/ps-val-1.h5') <(rows_of '$WORK/ps-all.h5')) \
          <(rows_of '$WORK/ps-train-1.h5') >/dev/null && \
     diff <(rows_of '$WORK/ps-val-1.h5') <(grep -Fx -f <(rows_of '$WORK/ps-val-1.h5') <(rows_of '$WORK/ps-all.h5')) >/dev/null"
mpi 2 "$DF" eval "$cfg" "${small[@]}" --checkpoint "$WORK/run/checkpoint.h5" --split val --features fc \
    --out "$WORK/fs.h5" >"$WORK/fs.log" 2>&1
rc=$?
check "eval --split val: features/fc are predict's logits, labels beside them" bash -c \
    "[ $rc = 0 ] && diff <(fc_rows '$WORK/fs.h5' features/fc) <(fc_rows '$WORK/ps-val-1.h5' logits) >/dev/null && \
     [ \"\$(labels_of '$WORK/fs.h5')\" = \"\$(labels_of '$WORK/ps-val-1.h5')\" ]"
expect_fail "--split with --data" "exclude each other" "$WORK/x.h5" "$DF" eval "$cfg" --checkpoint "$WORK/run/checkpoint.h5" \
    --split val --data "$shards" --features fc --out "$WORK/x.h5"
expect_fail "--split nonsense" "expected train, val or test" "$WORK/x.h5" "$DF" predict "$cfg" \
    --checkpoint "$WORK/run/checkpoint.h5" --split validation --out "$WORK/x.h5"
expect_fail "--split test of a config without one" "test split of \[data\] is empty" "$WORK/x.h5" "$DF" predict "$cfg" \
    "${small[@]}" --checkpoint "$WORK/run/checkpoint.h5" --split test --out "$WORK/x.h5"

f="$WORK/f1.h5"
for np in 1 2 3; do
    mpi $np "$DF" dcor --x "$f:features/conv3" --y "$f:meta:age" --given "$f:meta:site" --by "$f:labels" \
        --tile 16 --json >"$WORK/d$np.json" 2>"$WORK/err"
    check "dcor on eval features at $np rank(s)" [ $? = 0 ] || cat "$WORK/err"
done
cat "$WORK/d1.json"
check "dcor: keys n, dcov2, dcor2, dcor2_u, pdcor2_u, groups" \
    bash -c "grep -q '\"n\": 47, \"dcov2\": .*\"dcor2\": .*\"dcor2_u\": .*\"pdcor2_u\": .*\"groups\": {\"0\": {\"n\": ' '$WORK/d1.json'"
check "dcor on eval features: 2 ranks match 1" same_json "$WORK/d1.json" "$WORK/d2.json"
check "dcor on eval features: 3 ranks match 1" same_json "$WORK/d1.json" "$WORK/d3.json"
"$DF" dcor --x "$f:features/fc" --y "$f:meta:1" >"$WORK/table.txt"
check "dcor prints a table" grep -q 'dCor^2_u (bias-corrected)' "$WORK/table.txt"
# A categorical column of eval's /meta (its `kinds` say so) is one-hot coded, as the training
# report codes it; a continuous one is its value; --by keeps the codes.
"$DF" dcor --x "$f:features/fc" --y "$f:meta:site" --by "$f:meta:site" --json >"$WORK/site.json" 2>"$WORK/err"
sites=$(grep -o '"[0-9]*": {"n": ' "$WORK/site.json" | wc -l)  # --by's groups: the sites seen
check "dcor --y FILE:meta:site: one-hot, one column per site ($sites, grouped by --by's codes)" \
    bash -c "[ $sites -ge 2 ] && grep -q '\"d_y\": $sites[,}]' '$WORK/site.json'" || cat "$WORK/site.json" "$WORK/err"
"$DF" dcor --x "$f:features/fc" --y "$f:meta:age" --json >"$WORK/age.json"
check "dcor --y FILE:meta:age: continuous, one column" grep -q '"d_y": 1[,}]' "$WORK/age.json"

# ---- the training report's gather (mpi/comm.c dist_share_rows_f32) -------------------
# Every rank gets every row of the (n, d) float matrix, bit for bit, from the interleaved,
# uneven, sometimes empty row ranges the loader gives the ranks (tests/test_share_rows; at
# 1 rank it runs as a check program). The report's figures at 1, 2, 3 ranks: tests/mpi_ranks.sh.
for np in 2 3; do
    timeout 120 "$MPIEXEC" $MPI_FLAGS -np $np "$top_builddir/tests/test_share_rows" >"$WORK/share$np.log" 2>&1
    st=$?
    check "share rows: every row on every rank at $np ranks (status $st)" [ $st = 0 ] || tail -n 20 "$WORK/share$np.log"
done

# ---- bad input: one message, status 2 ------------------------------------------------
bad() {  # bad WHAT EXPECTED-TEXT ARGS...
    local what=$1 text=$2; shift 2
    mpi 2 "$DF" "$@" >"$WORK/out" 2>"$WORK/err"
    local st=$?
    check "$what: status 2" [ $st = 2 ] || cat "$WORK/err"
    check "$what: one message naming '$text'" bash -c "[ \$(grep -c . '$WORK/err') = 1 ] && grep -q \"$text\" '$WORK/err'" || cat "$WORK/err"
}
bad "missing dataset" "no dataset 'feat'" dcor --x "$f:feat" --y "$f:labels"
bad "missing file" "nothere.h5" dcor --x "$WORK/nothere.h5:x" --y "$f:labels"
bad "unknown column" "no column named 'weight'" dcor --x "$f:features/fc" --y "$f:meta:weight"
bad "sample counts differ" "has 30 samples but --x" dcor --x "$f:features/fc" --y "$WORK/a/shard-00000.h5:labels"
bad "n < 4 with --unbiased" "at least 4" dcor --random 3,2 --unbiased
cp "$tie" "$WORK/inf.h5" && "$top_builddir/tests/damage" "$WORK/inf.h5" meta 3 0 inf &&
    cp "$tie" "$WORK/nan.h5" && "$top_builddir/tests/damage" "$WORK/nan.h5" meta 5 2 nan
bad "an infinite value: the file, dataset, column and sample" "inf.h5:meta:age: sample 3 is inf" \
    dcor --x "$WORK/inf.h5:meta:age" --y "$WORK/inf.h5:labels"
bad "an infinite value in a whole dataset: its column" "inf.h5:meta: sample 3, column 0 is inf" \
    dcor --x "$WORK/inf.h5:labels" --y "$WORK/inf.h5:meta"
bad "a NaN group code" "by .*nan.h5:meta:site: sample 5 is nan" \
    dcor --x "$WORK/nan.h5:meta:age" --y "$WORK/nan.h5:labels" --by "$WORK/nan.h5:meta:site"
bad "eval: unknown layer" "no layer named 'fc9'" eval "$cfg" "${small[@]}" --checkpoint "$WORK/run/checkpoint.h5" \
    --data "$shards" --features fc9 --out "$WORK/x.h5"
check "eval: nothing written on error" [ ! -e "$WORK/x.h5" ]
check "dcor --help" bash -c "'$DF' dcor --help | grep -q -- '--permutations'"
check "eval --help" bash -c "'$DF' eval --help | grep -q -- '--features'"
finish
