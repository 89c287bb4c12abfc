#!/usr/bin/env bash
# `deconfound residualize` under mpirun: the same outputs as LAPACK's serial least squares
# (tests/test_residualize checks them) at 1, 2, 3 and 4 ranks, on the default 1 x P grid and
# on 2x2 and 4x1 grids with small row blocks and a 1 MB budget (several voxel chunks); and the
# input errors: exit status 2, one message naming the column or the file, no output written.
. "${top_srcdir:-.}/tests/lib.sh"
T="$top_builddir/tests/test_residualize"
"$T" write "$WORK" >"$WORK/write.log" 2>&1
check "inputs written" [ $? = 0 ] || { cat "$WORK/write.log"; finish; }
train="$WORK/train1.h5,$WORK/train2.h5"

# run NAME NP ARGS...: residualize into $WORK/NAME (the rest of the options fixed).
run() {
    local name=$1 np=$2; shift 2
    mkdir -p "$WORK/$name"
    timeout 120 "$MPIEXEC" $MPI_FLAGS -np "$np" "$DF" residualize --train "$train" --apply "$WORK/apply.h5" \
        --remove age,sex,site --out "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1
}
for cfg in "1" "2" "3" "4 --grid 2x2 --block 5 --memory 0.25" "4 --grid 4x1 --block 8" "3 --grid 1x3 --memory 1 --mask MASK"; do
    set -- $cfg
    np=$1; shift
    args=("$@")
    masked=0
    for i in "${!args[@]}"; do [ "${args[$i]}" = MASK ] && args[$i]="$WORK/mask.nii" && masked=1; done
    name="r$np$(echo "${args[*]}" | tr -cd 'a-z0-9')"
    run "$name" "$np" --keep label "${args[@]}"
    status=$?
    check "$np rank(s) ${args[*]}: exit 0 (status $status)" [ $status = 0 ] || tail -n 5 "$WORK/$name.log"
    "$T" check "$WORK" "$WORK/$name" label $masked >"$WORK/$name.check" 2>&1
    check "$np rank(s) ${args[*]}: outputs equal LAPACK's (to 2 float ulps)" [ $? = 0 ] || cat "$WORK/$name.check"
done
# a folder of shards, as training takes them
mkdir -p "$WORK/trainset" && ln -s "$WORK/train1.h5" "$WORK/train2.h5" "$WORK/trainset/"
mkdir -p "$WORK/folder"
timeout 120 "$MPIEXEC" $MPI_FLAGS -np 2 "$DF" residualize --train "$WORK/trainset" --apply "$WORK/apply.h5" \
    --remove age,sex,site --keep label --out "$WORK/folder" >"$WORK/folder.log" 2>&1
check "--train a folder of shards: exit 0" [ $? = 0 ] || tail -n 3 "$WORK/folder.log"
"$T" check "$WORK" "$WORK/folder" label 0 >"$WORK/folder.check" 2>&1
check "--train a folder of shards: the outputs of naming them" [ $? = 0 ] || cat "$WORK/folder.check"
run nokeep 2
"$T" check "$WORK" "$WORK/nokeep" none 0 >"$WORK/nokeep.check" 2>&1
check "2 ranks without --keep: LAPACK's outputs, residuals orthogonal to the design" [ $? = 0 ] || cat "$WORK/nokeep.check"
# Too little memory for 256 voxel columns of every subject on one rank: more process rows.
run autogrid 4 --keep label --memory 0.2
grep -q "2x2 process grid" "$WORK/autogrid.log"
check "4 ranks, 0.2 MB: a 2x2 grid chosen, and printed" [ $? = 0 ] || head -n 2 "$WORK/autogrid.log"
"$T" check "$WORK" "$WORK/autogrid" label 0 >"$WORK/autogrid.check" 2>&1
check "4 ranks on the chosen 2x2 grid: outputs equal LAPACK's" [ $? = 0 ] || cat "$WORK/autogrid.check"
grep -q "[2-9] chunks" "$WORK/r4grid2x2block5memory025.log"
check "a 0.25 MB budget splits the voxels into chunks" [ $? = 0 ] || head -n 3 "$WORK/r4grid2x2block5memory025.log"

expect_rewrite_error onesite "column 'site' has one level ('A')" 2 residualize --train "$WORK/onesite.h5" \
    --remove age,site
expect_rewrite_error unseen "unseen.h5: column 'site' has level 'D'" 2 residualize --train "$train" --apply "$WORK/unseen.h5" \
    --remove age,sex,site --keep label
expect_rewrite_error unknown "the data have no column 'age2'" 1 residualize --train "$train" --remove age,age2
expect_rewrite_error collinear "design column 'dose' is a linear combination of the columns before it" 3 residualize --train "$train" \
    --remove age,dose
expect_rewrite_error grid "--grid 3x3 does not use the 2 ranks" 2 residualize --train "$train" --remove age --grid 3x3
expect_rewrite_error noremove "missing --remove" 1 residualize --train "$train"
expect_rewrite_error badmask "apply.h5" 1 residualize --train "$train" --remove age --mask "$WORK/apply.h5"
# --out the inputs' own folder, spelt otherwise ("." from inside it): refused (tests/lib.sh).
own_folder_refused residualize --remove age,sex,site
# a held-out set's output in place of a training shard (--out holds a symlink to it)
mkdir -p "$WORK/cross" && ln -s "$WORK/train1.h5" "$WORK/cross/apply.h5" && cp "$WORK/train1.h5" "$WORK/train1.orig"
timeout 120 "$MPIEXEC" $MPI_FLAGS -np 2 "$DF" residualize --train "$train" --apply "$WORK/apply.h5" --remove age,sex,site \
    --out "$WORK/cross" >"$WORK/cross.log" 2>&1
status=$?
check "an output onto another set's input: exit status 2 (got $status)" [ $status = 2 ]
check "an output onto another set's input: the message names it" \
    grep -qF "cross/apply.h5: the output would overwrite an input, $WORK/train1.h5" "$WORK/cross.log" || cat "$WORK/cross.log"
check "an output onto another set's input: the input untouched, nothing written" bash -c \
    "cmp -s '$WORK/train1.h5' '$WORK/train1.orig' && [ \$(ls -A '$WORK/cross' | wc -l) = 1 ]"
finish
