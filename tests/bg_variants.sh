#!/usr/bin/env bash
# `deconfound variants` end to end on synthetic video clips with masks: the four shards keep
# labels, metadata and masks, `original` is the input's data, the mixed ones differ in their
# images only; a model trained on other clips evaluates on each (the BG-gap's inputs); the same
# seed writes the same bytes.
. "${top_srcdir:-.}/tests/lib.sh"
"$DF" synth video --out "$WORK/train" --n 48 --shape 4,16,16 --rho 0.99 --seed 1 >/dev/null &&
    "$DF" synth video --out "$WORK/test" --n 40 --shape 4,16,16 --rho 0.1 --seed 2 >/dev/null
check "synth video: train and test clips" [ $? = 0 ]
test_shard="$WORK/test/shard-00000.h5"
"$DF" variants "$test_shard" --out "$WORK/v" --seed 3 >"$WORK/variants.log"
check "variants exits 0" [ $? = 0 ] || cat "$WORK/variants.log"
check "variants: four shards" bash -c "ls '$WORK/v' | paste -sd' ' | grep -qx 'mixed-rand.h5 mixed-same.h5 only-bg.h5 original.h5'"
check "original: the input's data" h5diff -q "$test_shard" "$WORK/v/original.h5"
for v in mixed-same mixed-rand only-bg; do
    same=1
    for d in /labels /meta /masks; do h5diff -q "$test_shard" "$WORK/v/$v.h5" $d || same=0; done
    check "$v: labels, metadata and masks kept" [ $same = 1 ]
    check "$v: other images" bash -c "! h5diff -q '$test_shard' '$WORK/v/$v.h5' /images"
done
check "mixed-same: backgrounds from the same class" grep -q 'mixed-same.h5: 40 samples; background from another class for 0$' "$WORK/variants.log"
"$DF" variants "$test_shard" --out "$WORK/v2" --seed 3 --only mixed-rand >/dev/null
check "the same seed, the same bytes" cmp -s "$WORK/v/mixed-rand.h5" "$WORK/v2/mixed-rand.h5" ||
    h5diff -q "$WORK/v/mixed-rand.h5" "$WORK/v2/mixed-rand.h5"
"$DF" variants "$test_shard" --out "$WORK/v3" --seed 4 --only mixed-rand >/dev/null
check "another seed, other pairs" bash -c "! h5diff -q '$WORK/v/mixed-rand.h5' '$WORK/v3/mixed-rand.h5' /images"
# synthetic MRI with brain masks: the same volumes as without, and their variants
"$DF" synth mri3d --out "$WORK/mri" --n 12 --shape 12 --masks 1 >/dev/null &&
    "$DF" synth mri3d --out "$WORK/mri0" --n 12 --shape 12 >/dev/null
check "synth mri3d --masks 1: the same volumes" h5diff -q "$WORK/mri/shard-00000.h5" "$WORK/mri0/shard-00000.h5" /images
check "synth mri3d --masks 1: brain masks" bash -c "'$DF' info '$WORK/mri/shard-00000.h5' | grep -q masks"
"$DF" variants "$WORK/mri/shard-00000.h5" --out "$WORK/mv" >/dev/null
check "variants of MRI volumes" [ -s "$WORK/mv/mixed-rand.h5" ]

cat >"$WORK/video.ini" <<INI
[data]
source = $WORK/train/shard-00000.h5
val_fraction = 0.25
[train]
epochs = 2
batch = 12
lr = 0.01
out_dir = $WORK/run
[conv3d]
out = 4
kernel = 3
[relu]
[global_avgpool]
[linear]
name = fc
out = 4
INI
mpi 2 "$DF" train "$WORK/video.ini" >"$WORK/train.log" 2>&1
check "train a video model" [ $? = 0 ] || tail -5 "$WORK/train.log"
for v in original mixed-same mixed-rand only-bg; do
    mpi 2 "$DF" eval "$WORK/video.ini" --checkpoint "$WORK/run/checkpoint.h5" --data "$WORK/v/$v.h5" --features fc \
        --out "$WORK/$v-feats.h5" --accuracy-by background >"$WORK/eval-$v.log" 2>&1
    check "eval on $v, with its accuracy" grep -q 'accuracy' "$WORK/eval-$v.log" || cat "$WORK/eval-$v.log"
done
# the video pipeline config trains as committed (smaller), with its scene report
mpi 2 "$DF" train "$top_srcdir/pipelines/video.ini" --set data.n=64 --set data.shape=4,16,16 --set train.epochs=1 \
    --set "train.out_dir=$WORK/pv" >"$WORK/pv.log" 2>&1
check "pipelines/video.ini trains" [ $? = 0 ] || tail -5 "$WORK/pv.log"
check "pipelines/video.ini: scene-aligned and -conflicting accuracy, dCor with the scene" \
    bash -c "grep -q '(aligned [0-9.]*, conflicting [0-9.]*)' '$WORK/pv.log' && grep -q '^  background ' '$WORK/pv.log'"
finish
