#!/usr/bin/env bash
# `deconfound harmonize` under mpirun: sva::ComBat's output (tests/ref/combat.txt, case 2)
# through shards at 2 ranks; the same outputs at 1, 2 and 3 ranks, in one chunk of voxels per
# rank or several (--memory of a few kB: some ranks' last chunk empty); a model saved at 2
# ranks and applied later at 3, in one chunk or several, gives the fit's own outputs; and the
# input errors: exit status 2, one message naming the site, the column or the file, nothing
# written.
. "${top_srcdir:-.}/tests/lib.sh"
T="$top_builddir/tests/test_harmonize"
"$T" write "$WORK" >"$WORK/write.log" 2>&1
check "inputs written (sva's case 2 in three shards)" [ $? = 0 ] || { cat "$WORK/write.log"; finish; }
train="$WORK/train1.h5,$WORK/train2.h5"

# run NAME NP ARGS...: harmonize into $WORK/NAME.
run() {
    local name=$1 np=$2; shift 2
    mkdir -p "$WORK/$name"
    timeout 120 "$MPIEXEC" $MPI_FLAGS -np "$np" "$DF" harmonize --out "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1
    local status=$?
    check "$name: $np rank(s) exit 0 (status $status)" [ $status = 0 ] || tail -n 5 "$WORK/$name.log"
}
run sva 2 --train "$train,$WORK/apply.h5" --site site --keep age,sex
"$T" check "$WORK" "$WORK/sva" >"$WORK/sva.check" 2>&1
check "2 ranks: sva::ComBat's output (to 2 float ulps)" [ $? = 0 ] || cat "$WORK/sva.check"
for np in 1 2 3; do
    run "r$np" $np --train "$train" --apply "$WORK/apply.h5" --site site --keep age,sex --model "$WORK/model$np.h5"
done
for np in 2 3; do
    "$T" same "$WORK/r1" "$WORK/r$np" >"$WORK/same$np.log" 2>&1
    check "$np ranks give 1 rank's outputs (to 2 float ulps: sums over voxels in another order)" [ $? = 0 ] ||
        cat "$WORK/same$np.log"
done
# 1.7 kB per rank: chunks of 3 voxels for 34 training subjects (514 bytes a column with the
# fit's scratch); 20 voxels are 4 chunks per rank at 2 ranks, 3 at 3 (shares 6, 7, 7: rank 0's
# last chunk is empty, and it still makes every collective)
for np in 2 3; do
    run "c$np" $np --train "$train" --apply "$WORK/apply.h5" --site site --keep age,sex --memory 0.0017
    want=$([ $np = 2 ] && echo "in 4 chunks of 3" || echo "in 3 chunks of 3")
    check "c$np: the plan says $want" grep -qF "$want" "$WORK/c$np.log" || head -n 3 "$WORK/c$np.log"
    "$T" same "$WORK/r1" "$WORK/c$np" >"$WORK/chunks$np.log" 2>&1
    check "$np ranks in chunks give 1 rank's one-chunk outputs (to 2 float ulps)" [ $? = 0 ] || cat "$WORK/chunks$np.log"
done
run later 3 --model "$WORK/model2.h5" --apply "$WORK/apply.h5" --apply "$train"
"$T" same "$WORK/r2" "$WORK/later" >"$WORK/later.check" 2>&1
check "the model saved at 2 ranks, applied at 3, gives the fit's outputs" [ $? = 0 ] || cat "$WORK/later.check"
run later_chunks 3 --model "$WORK/model2.h5" --apply "$WORK/apply.h5" --apply "$train" --memory 0.0017
"$T" same "$WORK/r2" "$WORK/later_chunks" >"$WORK/later_chunks.check" 2>&1
check "the model applied at 3 ranks in chunks gives the fit's outputs" [ $? = 0 ] || cat "$WORK/later_chunks.check"
grep -q "applying a saved model fitted on 34 training subjects" "$WORK/later.log"
check "the applying run says what the model was fitted on" [ $? = 0 ] || head -n 2 "$WORK/later.log"

expect_rewrite_error nosite "missing --site COL" 1 harmonize --train "$train"
expect_rewrite_error labelsite "--site cannot be the class label" 2 harmonize --train "$train" --site label
expect_rewrite_error contsite "--site age is a continuous column" 2 harmonize --train "$train" --site age
expect_rewrite_error keepsite "--keep names the site column 'site'" 2 harmonize --train "$train" --site site --keep age,site
expect_rewrite_error priors "--nonparametric and --no-eb exclude each other" 1 harmonize --train "$train" --site site --nonparametric --no-eb
expect_rewrite_error nomodel "nothing.h5" 2 harmonize --model "$WORK/nothing.h5" --apply "$WORK/apply.h5"
expect_rewrite_error memory "--memory expects megabytes > 0, got '0'" 2 harmonize --train "$train" --site site --memory 0
expect_rewrite_error budget "cannot hold one voxel column of 34 subjects" 2 harmonize --train "$train" --site site --memory 0.0001
expect_rewrite_error unseen "unseen.h5: column 'site' has level 'Siemens-7'" 2 harmonize --train "$train" --site site \
    --apply "$WORK/unseen.h5"
# --out the inputs' own folder, spelt otherwise ("." from inside it): refused (tests/lib.sh).
own_folder_refused harmonize --site site
finish
