#!/usr/bin/env bash
# Data I/O end to end: `deconfound pack` under 1, 2 and 3 ranks writes the same bytes;
# bad inputs stop with one message naming the file and row, exit status 2, and no output
# directory; `info` describes NIfTI files; training reads a manifest and the new
# generators.
. "${top_srcdir:-.}/tests/lib.sh"

# expect_fail NAME PATTERN OUTDIR CMD...: exit status 2, one stderr line matching PATTERN,
# OUTDIR absent afterwards and no temporary directory beside it.
expect_fail() {
    local name=$1 pattern=$2 out=$3; shift 3
    local err="$WORK/err.txt" status
    "$@" >"$WORK/out.txt" 2>"$err"; status=$?
    if [ "$status" != 2 ]; then fail "$name: exit status $status, expected 2"; cat "$err"; return; fi
    if ! grep -Eq -- "$pattern" "$err"; then fail "$name: message does not match /$pattern/:"; cat "$err"; return; fi
    if [ "$(grep -c . "$err")" != 1 ]; then fail "$name: expected exactly one message line"; cat "$err"; return; fi
    if [ -e "$out" ] || ls -a "$(dirname "$out")" | grep -q '\.tmp\.'; then fail "$name: left output behind"; return; fi
    pass "$name"
}

"$DF" synth mri3d --nifti --out "$WORK/nii" --n 14 --shape 12,12,12 --seed 4 >/dev/null || fail "synth --nifti"
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

# Packing without preprocessing keeps the synthetic cohort's values exactly.
"$DF" synth mri3d --out "$WORK/ref" --n 14 --shape 12,12,12 --seed 4 >/dev/null
"$DF" pack --manifest "$M" --out "$WORK/raw" --shard-size 100 --no-reorient --quiet || fail "pack raw"
if command -v h5dump >/dev/null; then
    h5dump -d images "$WORK/ref/shard-00000.h5" | tail -n +2 >"$WORK/a.txt"
    h5dump -d images "$WORK/raw/shard-00000.h5" | tail -n +2 >"$WORK/b.txt"
    check "NIfTI -> shard keeps the voxel values" cmp -s "$WORK/a.txt" "$WORK/b.txt"
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
"$DF" synth mri3d --nifti --out "$WORK/nii8" --n 2 --shape 8,8,8 >/dev/null
sed 's|^sub-00001.nii.gz,|../nii8/sub-00001.nii.gz,|' "$M" >"$WORK/nii/mixed.csv"
expect_fail "mixed shapes without --shape" "mixed.csv:4: .*give --shape" "$WORK/o" "$DF" pack --manifest "$WORK/nii/mixed.csv" --out "$WORK/o"
expect_fail "existing output directory" "p1: already exists" "$WORK/nonexistent" "$DF" pack --manifest "$M" --out "$WORK/p1"
expect_fail "bad option" "pack: --shape 1,2: expected D,H,W" "$WORK/o" "$DF" pack --manifest "$M" --out "$WORK/o" --shape 1,2
"$DF" pack --help | grep -q "usage: deconfound pack" && pass "pack --help" || fail "pack --help"

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
finish
