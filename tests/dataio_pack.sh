#!/usr/bin/env bash
# Data I/O end to end: `deconfound pack` under 1, 2 and 3 ranks writes the same bytes;
# bad inputs stop with one message naming the file and row, exit status 2, and no output
# directory; `info` describes NIfTI files; training reads a manifest and the new
# generators.
. "${top_srcdir:-.}/tests/lib.sh"


"$DF" synth mri3d --nifti --out "$WORK/nii" --n 14 --shape 12,12,12 --seed 4 >/dev/null || fail "synth --nifti"
# synth reads its options with [data]'s parser and defaults (data/synth_config.c)
"$DF" synth mdn2d --n 512 --out "$WORK/mdn" >"$WORK/mdn.txt" 2>&1
check "synth mdn2d --n 512 writes 512 samples" grep -q ': 512 samples of (C,D,H,W) = (1,1,32,32)' "$WORK/mdn.txt"
"$DF" synth video --n 8 --out "$WORK/vid" >"$WORK/vid.txt" 2>&1
check "synth video takes [data]'s default shape 8,32,32" grep -q '(C,D,H,W) = (3,8,32,32)' "$WORK/vid.txt"
"$DF" synth biased-fmnist --n 30 --n-test 12 --out "$WORK/bf" >"$WORK/bf.txt" 2>&1
check "synth biased-fmnist --n 30 --n-test 12 writes 42 images" grep -q ': 42 samples' "$WORK/bf.txt" || cat "$WORK/bf.txt"
M="$WORK/nii/subjects.csv"
OPTS="--shard-size 4 --spacing 2 --shape 10,10,10 --normalize zscore --quiet"

# Parallel pack equals serial pack, byte for byte.
"$DF" pack --manifest "$M" --out "$WORK/p1" $OPTS || fail "pack, 1 rank"
for np in 2 3; do
    mpi $np "$DF" pack --manifest "$M" --out "$WORK/p$np" $OPTS || fail "pack, $np ranks"
    same=1
    for f in "$WORK"/p1/shard-*.h5; do cmp -s "$f" "$WORK/p$np/$(basename "$f")" || same=0; done
    [ "$(ls "$WORK/p$np" | wc -l)" = 4 ] || same=0
    check "pack with $np ranks writes the same bytes as 1 rank" [ $same = 1 ]
done
"$DF" info "$WORK/p1/shard-00003.h5" --json | grep -q '"n": 2' && pass "last shard holds the remainder" || fail "last shard"
# Each sample's source and geometry: the source path, its grid, the packed grid's affine
# (tests/test_pack.c checks the affine voxel by voxel).
check "pack records each sample's source and affine" bash -c "'$DF' info '$WORK/p1/shard-00000.h5' --json | grep -q '\"geometry\": true' &&
    '$DF' info '$WORK/p1/shard-00000.h5' | grep -q '^geometry: .* from .*\.nii'"
check "pack records its steps" bash -c "'$DF' info '$WORK/p1/shard-00000.h5' | grep -qx 'preprocessing: reorient=1 spacing=2 shape=10,10,10 fit=crop normalize=zscore 4d=channels'"

# Packing without preprocessing keeps the synthetic cohort's values exactly.
"$DF" synth mri3d --out "$WORK/ref" --n 14 --shape 12,12,12 --seed 4 >/dev/null
"$DF" pack --manifest "$M" --out "$WORK/raw" --shard-size 100 --no-reorient --quiet || fail "pack raw"
if command -v h5dump >/dev/null; then
    h5dump -d images "$WORK/ref/shard-00000.h5" | tail -n +2 >"$WORK/a.txt"
    h5dump -d images "$WORK/raw/shard-00000.h5" | tail -n +2 >"$WORK/b.txt"
    check "NIfTI -> shard keeps the voxel values" cmp -s "$WORK/a.txt" "$WORK/b.txt"
else
    skip "h5dump (hdf5-tools) not installed: NIfTI -> shard value check"
fi

# Bad inputs.
sed 's|^sub-00003.nii.gz,|missing.nii.gz,|' "$M" >"$WORK/nii/bad.csv"
expect_fail "missing file (2 ranks)" "bad.csv:6: .*missing.nii.gz: cannot open" "$WORK/o" mpi 2 "$DF" pack --manifest "$WORK/nii/bad.csv" --out "$WORK/o"
cp "$M" "$WORK/bad2.csv"
sed -i '5s/,[0-9.]*,\([01]\),\([012]\)$/,old,\1,\2/' "$WORK/bad2.csv"
expect_fail "non-numeric value" "bad2.csv:5: age: 'old' is not a number" "$WORK/o" "$DF" pack --manifest "$WORK/bad2.csv" --out "$WORK/o"
cp "$WORK/nii/sub-00002.nii.gz" "$WORK/nii/trunc.nii.gz"
truncate -s 600 "$WORK/nii/trunc.nii.gz"
sed 's|^sub-00002.nii.gz,|trunc.nii.gz,|' "$M" >"$WORK/nii/trunc.csv"
expect_fail "truncated NIfTI (3 ranks)" "trunc.csv:5: .*trunc.nii.gz: .*(truncated|corrupt)" "$WORK/o" mpi 3 "$DF" pack --manifest "$WORK/nii/trunc.csv" --out "$WORK/o"
"$DF" synth mri3d --nifti --out "$WORK/nii8" --n 4 --shape 8,8,8 >/dev/null
sed 's|^sub-00001.nii.gz,|../nii8/sub-00001.nii.gz,|' "$M" >"$WORK/nii/mixed.csv"
expect_fail "mixed shapes without --shape" "mixed.csv:4: .*give --shape" "$WORK/o" "$DF" pack --manifest "$WORK/nii/mixed.csv" --out "$WORK/o"
expect_fail "existing output directory" "p1: already exists" "$WORK/nonexistent" "$DF" pack --manifest "$M" --out "$WORK/p1"
expect_fail "bad option" "pack: --shape needs 1 or 3 values" "$WORK/o" "$DF" pack --manifest "$M" --out "$WORK/o" --shape 1,2
"$DF" pack --help | grep -q "usage: deconfound pack" && pass "pack --help" || fail "pack --help"

# Volumes without a place in world space (tests/damage writes them; no Python in CI): an
# all-zero sform, one of rank 2, one with a NaN. pack crashed on the first and third (exit
# 139, its temporary directory left) and packed the second for export to refuse later; each
# is now one message naming the manifest row and the file, exit 2, nothing left.
DAMAGE="$top_builddir/tests/damage"
G="$WORK/geo"
mkdir -p "$G"
"$DAMAGE" "$G/ok.nii" affine 2 0 0 -8 0 2 0 -9 0 0 2 -10 || fail "damage affine"
"$DAMAGE" "$G/zero.nii" affine 0 0 0 0 0 0 0 0 0 0 0 0
"$DAMAGE" "$G/rank2.nii" affine 2 0 0 -8 0 2 0 -9 0 0 0 0
"$DAMAGE" "$G/nan.nii" affine nan 0 0 -8 0 2 0 -9 0 0 2 -10
"$DAMAGE" "$G/huge.nii" affine 1e30 0 0 0 0 1e30 0 0 0 0 1e30 0
"$DAMAGE" "$G/shifted.nii" affine 2 0 0 32 0 2 0 -9 0 0 2 -10  # ok.nii's grid 40 mm to the right
for f in zero rank2 nan; do printf 'path,label\nok.nii,0\n%s.nii,1\n' $f >"$G/$f.csv"; done
expect_fail "pack: an all-zero sform" "zero.csv:3: .*zero.nii: its voxel-to-world affine \(sform, else qform\) is singular$" \
    "$WORK/o" "$DF" pack --manifest "$G/zero.csv" --out "$WORK/o"
expect_fail "pack: a sform of rank 2 (2 ranks)" "rank2.csv:3: .*rank2.nii: its voxel-to-world affine .* is singular$" \
    "$WORK/o" mpi 2 "$DF" pack --manifest "$G/rank2.csv" --out "$WORK/o"
expect_fail "pack: a NaN in the sform (2 ranks)" "nan.csv:3: .*nan.nii: its voxel-to-world affine .* is not finite$" \
    "$WORK/o" mpi 2 "$DF" pack --manifest "$G/nan.csv" --out "$WORK/o" --no-reorient
# --spacing: the resampled grid is checked before anything is allocated (0.001 mm asked for
# 11.5e9 floats; a pixdim of 1e30 overflowed into a 1x1x1 sample)
printf 'path,label\nok.nii,0\n' >"$G/ok.csv"
printf 'path,label\nhuge.nii,0\n' >"$G/huge.csv"
expect_fail "pack --spacing 0.001" "ok.csv:2: .*ok.nii: resampling its 4x4x4 voxels \(D,H,W\) of 2x2x2 mm to spacing 0.001 mm gives 8000x8000x8000: more than 4096 voxels along an axis" \
    "$WORK/o" "$DF" pack --manifest "$G/ok.csv" --out "$WORK/o" --spacing 0.001
expect_fail "pack --spacing 1 of voxels of 1e30 mm (2 ranks)" "huge.csv:2: .*huge.nii: resampling .* of 1e\+30x1e\+30x1e\+30 mm .*: more than 4096 voxels" \
    "$WORK/o" mpi 2 "$DF" pack --manifest "$G/huge.csv" --out "$WORK/o" --spacing 1
# a mask of the image's dims but 40 mm away is not on its grid
printf 'path,label,mask\nok.nii,0,ok.nii\nok.nii,1,shifted.nii\n' >"$G/mask.csv"
expect_fail "pack: a mask on another grid" "mask.csv:3: .*shifted.nii: mask is not on the grid of .*ok.nii: their affines place a voxel 40 mm apart" \
    "$WORK/o" "$DF" pack --manifest "$G/mask.csv" --out "$WORK/o"
# an output directory that cannot be made is named as given, not as pack's temporary
expect_fail "pack: --out in a missing folder" "pack: $WORK/nodir/o: cannot create: No such file or directory$" \
    "$WORK/nodir/o" "$DF" pack --manifest "$G/ok.csv" --out "$WORK/nodir/o"
# vox_offset inside the header of a single-file NIfTI: the data would start at the extension bytes
"$DAMAGE" "$G/vo1.nii" voxoffset 0 1
"$DAMAGE" "$G/vo2.nii" voxoffset 540 2
expect_fail "info: NIfTI-1 vox_offset 0" "vo1.nii: header vox_offset = 0: the data of a single-file NIfTI-1 start at byte 352 or later" \
    "$WORK/o" "$DF" info "$G/vo1.nii"
printf 'path,label\nvo2.nii,0\n' >"$G/vo.csv"
expect_fail "pack: NIfTI-2 vox_offset 540" "vo.csv:2: .*vo2.nii: header vox_offset = 540: the data of a single-file NIfTI-2 start at byte 544" \
    "$WORK/o" "$DF" pack --manifest "$G/vo.csv" --out "$WORK/o"
# info: JSON has no NaN or infinity; they are null (a NaN in the affine; no finite voxel)
"$DAMAGE" "$G/allnan.nii" nifti all
"$DF" info "$G/nan.nii" --json >"$G/nan.json"; "$DF" info "$G/allnan.nii" --json >"$G/allnan.json"
check "info --json: a NaN affine entry is null" grep -q '"affine": \[\[null, 0, 0, -8\], \[0, 2, 0, -9\], \[0, 0, 2, -10\]\], "affine_problem": "is not finite"}$' "$G/nan.json"
check "info --json: no finite voxel gives null min, max, mean" grep -q '"min": null, "max": null, "mean": null, "nonfinite": 64,' "$G/allnan.json"
check "info --json: no bare nan or inf" bash -c "! sed 's/\"[^\"]*\"//g' '$G/nan.json' '$G/allnan.json' | grep -Eiq 'nan|inf'"
check "info: a singular affine is said" bash -c "'$DF' info '$G/rank2.nii' | grep -qx 'the voxel-to-world affine (sform, else qform) is singular: no place in world space (pack refuses it)'"

# info on NIfTI files.
"$DF" info "$WORK/nii/sub-00000.nii.gz" --json >"$WORK/info.json"
check "info --json on NIfTI" grep -q '"dims": \[12, 12, 12\], "pixdim": \[1.5, 1.5, 1.5\], "datatype": "float32"' "$WORK/info.json"
expect_fail "info on a truncated NIfTI" "trunc.nii.gz: .*(truncated|corrupt)" "$WORK/o" "$DF" info "$WORK/nii/trunc.nii.gz"

# Training straight from the manifest, and from the packed directory, on 2 ranks.
cat >"$WORK/m.ini" <<INI
[data]
source = $M
shape = 8,8,8
spacing = 2
normalize = zscore
val_fraction = 0.25
[train]
epochs = 1
batch = 4
out_dir = $WORK/run_m
[conv3d]
out = 2
[relu]
[global_avgpool]
[linear]
out = 2
INI
mpi 2 "$DF" train "$WORK/m.ini" >"$WORK/m.log" 2>&1 && grep -q "final:" "$WORK/m.log" && pass "train from a manifest (2 ranks)" || { fail "train from a manifest"; cat "$WORK/m.log"; }
sed "s|^source = .*|source = $WORK/p1|; /^shape/d; /^spacing/d; /^normalize/d; s|run_m|run_p|" "$WORK/m.ini" >"$WORK/p.ini"
"$DF" train "$WORK/p.ini" >"$WORK/p.log" 2>&1 && grep -q "14 samples" "$WORK/p.log" && pass "train from a directory of shards" || { fail "train from shards"; cat "$WORK/p.log"; }
sed "s|^source = .*|source = synth:mdn2d\nn = 40|; /^shape/d; /^spacing/d; /^normalize/d; s|run_m|run_d|; s|^\[conv3d\]|[conv3d]\nkernel = 1,3,3|" "$WORK/m.ini" >"$WORK/d.ini"
"$DF" train "$WORK/d.ini" >"$WORK/d.log" 2>&1 && grep -q "(1,1,32,32)" "$WORK/d.log" && pass "train on synth:mdn2d" || { fail "train on mdn2d"; cat "$WORK/d.log"; }
# HDF5 video clips (written with h5import from hdf5-tools, as (T,H,W,C) uint8): parallel
# pack equals serial pack; bad clips name the manifest row and the file.
if command -v h5import >/dev/null; then
    mkdir -p "$WORK/clips"
    printf 'PATH video\nINPUT-CLASS TEXTIN\nINPUT-SIZE 32\nRANK 4\nDIMENSION-SIZES 6 6 5 3\nOUTPUT-CLASS UIN\nOUTPUT-SIZE 8\n' >"$WORK/clips/c.cfg"
    printf 'PATH video\nINPUT-CLASS TEXTIN\nINPUT-SIZE 32\nRANK 3\nDIMENSION-SIZES 6 6 5\nOUTPUT-CLASS UIN\nOUTPUT-SIZE 8\n' >"$WORK/clips/r3.cfg"
    echo "path,label,group" >"$WORK/clips/clips.csv"
    for i in 0 1 2 3 4; do
        awk -v s=$i 'BEGIN { for (k = 0; k < 540; k++) print (k * 7 + s * 31) % 256 }' >"$WORK/clips/c$i.txt"
        h5import "$WORK/clips/c$i.txt" -c "$WORK/clips/c.cfg" -o "$WORK/clips/c$i.h5" || fail "h5import"
        echo "c$i.h5:video,$((i % 2)),g$((i % 3))" >>"$WORK/clips/clips.csv"
    done
    head -n 180 "$WORK/clips/c0.txt" >"$WORK/clips/r3.txt"
    h5import "$WORK/clips/r3.txt" -c "$WORK/clips/r3.cfg" -o "$WORK/clips/r3.h5" || fail "h5import rank 3"
    COPTS="--shard-size 2 --shape 4,4,4 --quiet"
    "$DF" pack --manifest "$WORK/clips/clips.csv" --out "$WORK/cl1" $COPTS || fail "pack clips, 1 rank"
    "$DF" info "$WORK/cl1/shard-00000.h5" --json | grep -q '"shape": \[3, 4, 4, 4\]' && pass "clips packed as (C=3, D=T, H, W)" || { fail "clip shard shape"; "$DF" info "$WORK/cl1/shard-00000.h5" --json; }
    for np in 2 3; do
        mpi $np "$DF" pack --manifest "$WORK/clips/clips.csv" --out "$WORK/cl$np" $COPTS || fail "pack clips, $np ranks"
        same=1
        for f in "$WORK"/cl1/shard-*.h5; do cmp -s "$f" "$WORK/cl$np/$(basename "$f")" || same=0; done
        check "clip pack with $np ranks writes the same bytes as 1 rank" [ $same = 1 ]
    done
    sed '4s|^c2.h5:video|r3.h5:video|' "$WORK/clips/clips.csv" >"$WORK/clips/bad.csv"
    expect_fail "clip of rank 3 (2 ranks)" "bad.csv:4: .*r3.h5: video: a 3-D array \(6x6x5\); a clip must be 4-D" "$WORK/o" mpi 2 "$DF" pack --manifest "$WORK/clips/bad.csv" --out "$WORK/o" $COPTS
    sed '5s|^c3.h5:video|c3.h5:frames|' "$WORK/clips/clips.csv" >"$WORK/clips/bad2.csv"
    expect_fail "clip with a missing dataset (3 ranks)" "bad2.csv:5: .*c3.h5: no dataset 'frames'" "$WORK/o" mpi 3 "$DF" pack --manifest "$WORK/clips/bad2.csv" --out "$WORK/o" $COPTS
    expect_fail "clip read in the wrong layout" "clips.csv:2: .*c0.h5: video: 6x6x5x3 read as CTHW gives 6 colour planes" "$WORK/o" "$DF" pack --manifest "$WORK/clips/clips.csv" --out "$WORK/o" --clip-layout CTHW --shape 4,4,4
    # [data] clip_layout reaches the reader when training straight from a clip manifest.
    sed "s|^source = .*|source = $WORK/clips/clips.csv\nclip_layout = CTHW|; s|^shape = .*|shape = 4,4,4|; /^spacing/d; s|run_m|run_c|" "$WORK/m.ini" >"$WORK/c.ini"
    expect_fail "[data] clip_layout" "clips.csv:2: .*c0.h5: video: 6x6x5x3 read as CTHW" "$WORK/run_c" mpi 2 "$DF" train "$WORK/c.ini"
else
    skip "h5import (hdf5-tools) not installed: HDF5 clip pack tests"
fi

# Subject selection: pack --subjects LIST; an id the manifest lacks names the list and line.
printf '# two subjects\nsub-00003\nsub-00007\n' >"$WORK/keep.txt"
"$DF" pack --manifest "$M" --out "$WORK/sel" --subjects "$WORK/keep.txt" --quiet || fail "pack --subjects"
"$DF" info "$WORK/sel/shard-00000.h5" --json | grep -q '"n": 2' && pass "pack --subjects keeps the listed subjects" || fail "pack --subjects count"
printf 'sub-00003\nsub-00099\n' >"$WORK/keep2.txt"
sed "s|^source = .*|source = $M\nsubjects = $WORK/keep2.txt|; s|run_m|run_k|" "$WORK/m.ini" >"$WORK/k.ini"
expect_fail "unknown subject in [data] subjects" "keep2.txt:2: subject 'sub-00099' is not in" "$WORK/run_k" "$DF" train "$WORK/k.ini"
expect_fail "unknown subject in --subjects (2 ranks)" "keep2.txt:2: subject 'sub-00099' is not in .*subjects.csv" "$WORK/o" mpi 2 "$DF" pack --manifest "$M" --out "$WORK/o" --subjects "$WORK/keep2.txt"

# A fixed split from a file ([data] split_file): 14 subjects of p1, 4 in validation.
{ echo "subject,split"; for i in $(seq 0 13); do s=$(printf 'sub-%05d' $i); if [ $i -lt 4 ]; then echo "$s,val"; else echo "$s,train"; fi; done; } >"$WORK/split.csv"
sed "s|^val_fraction = .*|split_file = $WORK/split.csv|; s|run_p|run_s|" "$WORK/p.ini" >"$WORK/s.ini"
mpi 2 "$DF" train "$WORK/s.ini" >"$WORK/s.log" 2>&1 && grep -q "10 train, 4 validation" "$WORK/s.log" && pass "train with split_file (2 ranks)" || { fail "train with split_file"; cat "$WORK/s.log"; }
grep -v '^sub-00005,' "$WORK/split.csv" >"$WORK/split2.csv"
sed "s|split.csv|split2.csv|; s|run_s|run_s2|" "$WORK/s.ini" >"$WORK/s2.ini"
expect_fail "data subject missing from the split file" "split2.csv: subject 'sub-00005' of the data \(sample 5 of .*\) is not in the split file" "$WORK/run_s2" mpi 2 "$DF" train "$WORK/s2.ini"
{ cat "$WORK/split.csv"; echo "sub-00042,test"; } >"$WORK/split3.csv"
sed "s|split.csv|split3.csv|; s|run_s|run_s3|" "$WORK/s.ini" >"$WORK/s3.ini"
expect_fail "split-file subject not in the data" "split3.csv:16: subject 'sub-00042' is not in the data" "$WORK/run_s3" "$DF" train "$WORK/s3.ini"
sed "s|run_s|run_s4|; s|^split_file|val_fraction = 0.3\nsplit_file|" "$WORK/s.ini" >"$WORK/s4.ini"
expect_fail "split_file with val_fraction" "s4.ini:[0-9]+: \[data\] val_fraction has no effect with split_file" "$WORK/run_s4" "$DF" train "$WORK/s4.ini"
finish
