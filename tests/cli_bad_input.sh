#!/usr/bin/env bash
# Bad input gets one clear message naming the file (and line), exit status 2, and nothing
# written. Also: every command answers --help.
. "${top_srcdir:-.}/tests/lib.sh"

# expect_fail NAME PATTERN CMD...: exit status 2, stderr matches PATTERN, out dir not created.
expect_fail() {
    local name=$1 pattern=$2; shift 2
    local err="$WORK/err.txt" status
    "$@" >"$WORK/out.txt" 2>"$err"; status=$?
    if [ "$status" != 2 ]; then fail "$name: exit status $status, expected 2"; cat "$err"; return; fi
    if ! grep -Eq -- "$pattern" "$err"; then fail "$name: message does not match /$pattern/:"; cat "$err"; return; fi
    if [ "$(grep -c . "$err")" != 1 ]; then fail "$name: expected exactly one message line"; cat "$err"; return; fi
    if [ -e "$WORK/runs" ]; then fail "$name: wrote output despite the error"; rm -rf "$WORK/runs"; return; fi
    if ls -a "$WORK" | grep -Eq "$tmp_names"; then fail "$name: left a temporary behind: $(ls -a "$WORK" | grep -E "$tmp_names")"; return; fi
    pass "$name"
}

good="$WORK/good.ini"
cat >"$good" <<INI
[data]
source = synth:mri3d
n = 16
shape = 8,8,8
[train]
epochs = 1
batch = 4
out_dir = $WORK/runs
[conv3d]
out = 2
kernel = 3
[relu]
[global_avgpool]
[linear]
out = 2
INI

sed 's/^kernel = 3$/kernal = 3/' "$good" >"$WORK/unknown_key.ini"
expect_fail "unknown key" "unknown_key.ini:11: unknown key 'kernal' in \[conv3d\]" "$DF" train "$WORK/unknown_key.ini"

sed 's/^kernel = 3$/kernel = 9/' "$good" >"$WORK/shape.ini"
expect_fail "impossible shape" "shape.ini:1[01]: .*(output|kernel|shape)" "$DF" train "$WORK/shape.ini"

sed '/^\[train\]$/,/^out_dir/d' "$good" >"$WORK/no_train.ini"
expect_fail "missing section" "no_train.ini: missing \[train\] section" "$DF" train "$WORK/no_train.ini"

sed 's/^\[relu\]$/[relu/' "$good" >"$WORK/header.ini"
expect_fail "malformed header" "header.ini:12: malformed section header" "$DF" train "$WORK/header.ini"

(cat "$good"; printf '[data]\nn = 32\n') >"$WORK/twice.ini"
expect_fail "a section given twice" "twice.ini:16: section \[data\] given twice \(first at line 1\)$" "$DF" train "$WORK/twice.ini"

sed 's/^\[relu\]$/[relux]/' "$good" >"$WORK/layer.ini"
expect_fail "unknown layer" "layer.ini:12: unknown section \[relux\]" "$DF" train "$WORK/layer.ini"

sed 's/^batch = 4$/batch = four/' "$good" >"$WORK/number.ini"
expect_fail "not a number" "number.ini:7: \[train\] batch = 'four' is not an integer" "$DF" train "$WORK/number.ini"

sed 's/^out = 2$/out = 0/' "$good" >"$WORK/range.ini"
expect_fail "out of range" "range.ini:(10|15): .*out" "$DF" train "$WORK/range.ini"

printf '[data]\nsource = %s/missing.h5\n[train]\nout_dir = %s/runs\n[linear]\nout = 2\n' "$WORK" "$WORK" >"$WORK/nodata.ini"
expect_fail "missing shard" "missing.h5" "$DF" train "$WORK/nodata.ini"
# a shard listed twice (itself and through its folder, or a symbolic link to it): refused on
# every rank alike, naming it, by train, predict/eval --data and residualize; an empty item or
# an empty list names the config's key
"$DF" synth mri3d --out "$WORK/dup" --n 16 --shape 8,8,8 >/dev/null
ln -s "$WORK/dup/shard-00000.h5" "$WORK/dup-link.h5"
expect_fail "a shard listed twice" "nodata.ini: --set data.source: \[data\] source: $WORK/dup/shard-00000.h5: this shard is listed twice" \
    mpi 2 "$DF" train "$WORK/nodata.ini" --set "data.source=$WORK/dup/shard-00000.h5,$WORK/dup"
expect_fail "a shard listed twice, through a symbolic link" "$WORK/dup/shard-00000.h5: this shard is listed twice .*dup-link.h5" \
    "$DF" train "$WORK/nodata.ini" --set "data.source=$WORK/dup,$WORK/dup-link.h5"
expect_fail "a shard listed twice, predict" "shard-00000.h5: this shard is listed twice" \
    "$DF" predict "$WORK/nodata.ini" --checkpoint "$WORK/none.h5" --data "$WORK/dup,$WORK/dup/../dup/shard-00000.h5" --out "$WORK/runs"
expect_rewrite_error dup_residualize "shard-00000.h5: this shard is listed twice" 2 residualize \
    --train "$WORK/dup,$WORK/dup-link.h5" --remove site
expect_fail "an empty item in the shards" "nodata.ini: --set data.source: \[data\] source: .*item 2 of the list of shards is empty" \
    "$DF" train "$WORK/nodata.ini" --set "data.source=$WORK/dup,,$WORK/missing.h5"
sed 's|^source = .*|source =|' "$WORK/nodata.ini" >"$WORK/nosource.ini"
expect_fail "an empty source" "nosource.ini:2: \[data\] source: no shards named" "$DF" train "$WORK/nosource.ini"

# a field of 5000 characters: the message keeps the file and line, and the problem at its end
long=$(head -c 5000 /dev/zero | tr '\0' 7)
sed "s/^batch = 4\$/batch = x$long/" "$good" >"$WORK/long.ini"
expect_fail "a 5000-character value" "long.ini:7: \[train\] batch = 'x7+ .*characters left out.* 7+' is not an integer$" "$DF" train "$WORK/long.ini"
printf 'path,label\n%s.nii.gz,1\nb.nii.gz,0\n' "$long" >"$WORK/long.csv"
expect_fail "a 5000-character path in a manifest" "^deconfound: pack: .*long.csv:2: .*/7+ .*\[[0-9]+ characters left out\].* 7+\.nii\.gz: cannot open: File name too long$" \
    "$DF" pack --manifest "$WORK/long.csv" --out "$WORK/runs"
expect_fail "missing config" "nope.ini: cannot open" "$DF" train "$WORK/nope.ini"
# a folder where a text file belongs: every reader says so (base/common.c, df_read_text_file)
mkdir -p "$WORK/dir.ini" "$WORK/dir.csv" "$WORK/bidsdir/participants.tsv"
expect_fail "config is a folder" "dir.ini: cannot read: Is a directory \(expected a file\)$" "$DF" train "$WORK/dir.ini"
expect_fail "manifest is a folder" "dir.csv: cannot read: Is a directory \(expected a file\)$" "$DF" pack --manifest "$WORK/dir.csv" --out "$WORK/runs"
expect_fail "participants.tsv is a folder" "participants.tsv: cannot read: Is a directory \(expected a file\)$" \
    "$DF" pack --bids "$WORK/bidsdir" --label group --out "$WORK/runs"
expect_fail "bad --set" "--set.*expected section.key=value" "$DF" train "$good" --set nodot
expect_fail "--set unknown section" "no section or layer named 'bogus'" "$DF" train "$good" --set bogus.x=1
expect_fail "--set unknown key" "unknown key 'epochz'" "$DF" train "$good" --set train.epochz=3
expect_fail "--set a section type given three times" \
    "--set 'conv3d.out=5': .*quickstart.ini has 3 \[conv3d\] sections \(lines [0-9, ]+\): name the layer meant, e.g. --set conv1.out=5" \
    "$DF" train "$top_srcdir/pipelines/quickstart.ini" --set conv3d.out=5
expect_fail "a number too close to 0 for a double" "good.ini: --set train.lr: \[train\] lr = 1e-320 is out of range: too close to 0" \
    "$DF" train "$good" --set train.lr=1e-320
expect_fail "unknown option" "unknown option '--frobnicate'" "$DF" train "$good" --frobnicate
expect_fail "unknown command" "unknown command 'trian'" "$DF" trian
expect_fail "predict without checkpoint" "missing --checkpoint" "$DF" predict "$good" --data x.h5 --out "$WORK/p.h5"
expect_fail "synth bad n" "synth: --n = 'abc' is not an integer" "$DF" synth mri3d --out "$WORK/s" --n abc
# [debias]: each mistake stops before training, naming file, line and problem
debias() { (cat "$good"; printf '[debias]\nmethod = %s\nlayer = %s\nbias = %s\n' "$1" "$2" "$3") >"$WORK/debias.ini"; }
debias end global_avgpool1 scanner
expect_fail "debias: no such bias column" "debias.ini:19: \[debias\] bias = scanner: the data have no such column \(columns: age, sex, site\)" \
    "$DF" train "$WORK/debias.ini"
debias mi fc9 site
# MDN: a removed column built from the label would hand the label to evaluation
expect_fail "mdn: age|label removed" "\[mdn\] mdn_fc1: 'age\|label' cannot be removed: the removed part is subtracted in evaluation too" \
    "$DF" train "$top_srcdir/pipelines/mdn-mri3d.ini" --set 'mdn_fc1.remove=age|label,site' \
    --set data.n=64 --set "train.out_dir=$WORK/runs/agelabel"
expect_fail "debias: no such layer" "debias.ini:18: \[debias\] layer = fc9: the network has no layer of that name" "$DF" train "$WORK/debias.ini"
debias end linear1 site
expect_fail "debias: a layer the loss cannot act after" "debias.ini:18: .*that is the network's output" "$DF" train "$WORK/debias.ini"
debias mi global_avgpool1 age
expect_fail "debias: continuous bias without bins" "debias.ini:19: .*age is continuous: give bins" "$DF" train "$WORK/debias.ini"
debias end global_avgpool1 label
expect_fail "debias: the label as the bias" "debias.ini:19: .*not the class label" "$DF" train "$WORK/debias.ini"
debias mdn global_avgpool1 site
expect_fail "debias: unknown method" "debias.ini:17: .*method = 'mdn' is not one of: end, mi" "$DF" train "$WORK/debias.ini"
# CLAD on data without foreground masks (the synthetic volumes write them only with masks = 1)
(cat "$good"; printf '[debias]\nmethod = clad\nlayer = global_avgpool1\n') >"$WORK/clad.ini"
expect_fail "debias: CLAD without masks" "clad.ini:17: \[debias\] method = clad: .* synth:mri3d has no foreground masks" \
    mpi 2 "$DF" train "$WORK/clad.ini"
(cat "$good"; printf '[debias]\nmethod = clad\nlayer = global_avgpool1\nbias = site\n') >"$WORK/clad.ini"
expect_fail "debias: CLAD takes no bias column" "clad.ini:19: unknown key 'bias'" "$DF" train "$WORK/clad.ini" --set data.masks=1
debias end global_avgpool1 scanner
expect_fail "debias: collective under mpirun" "debias.ini:19: .*no such column" mpi 2 "$DF" train "$WORK/debias.ini"
echo "not hdf5" >"$WORK/fake.h5"
expect_fail "info on a non-HDF5 file" "fake.h5" "$DF" info "$WORK/fake.h5"
expect_fail "errors are collective under mpirun" "unknown_key.ini:11: unknown key" mpi 2 "$DF" train "$WORK/unknown_key.ini"
# variants: a test shard without masks, a class too small for mixed-same, a variant file that
# exists (checked before any file is written)
"$DF" synth mri3d --out "$WORK/nomask" --n 4 --shape 8,8,8 >/dev/null
expect_fail "variants: shard without masks" "nomask/shard-00000.h5 has no /masks" "$DF" variants "$WORK/nomask/shard-00000.h5" --out "$WORK/runs"
"$DF" synth video --out "$WORK/clips" --n 5 --classes 4 --shape 4,8,8 >/dev/null  # with seed 1, one of the 4 classes has a single clip
expect_fail "variants: a class of one sample" "clips/shard-00000.h5: mixed-same: class '[0-9]+' has a single sample" \
    "$DF" variants "$WORK/clips/shard-00000.h5" --out "$WORK/runs"
expect_fail "variants: unknown variant" "--only: unknown variant 'mixed'" "$DF" variants "$WORK/clips/shard-00000.h5" --out "$WORK/runs" --only mixed
mkdir -p "$WORK/vout" && touch "$WORK/vout/only-bg.h5"
expect_fail "variants: an existing file" "vout/only-bg.h5 already exists" "$DF" variants "$WORK/clips/shard-00000.h5" --out "$WORK/vout" --only original,only-bg
check "variants: nothing written beside the existing file" test ! -e "$WORK/vout/original.h5"
# --fill must be a value a shard can hold: finite, within a float's range
for v in nan inf -inf; do
    expect_fail "variants: --fill $v" "--fill: $v is not a finite number" "$DF" variants "$WORK/clips/shard-00000.h5" --out "$WORK/runs" --fill $v
done
expect_fail "variants: --fill beyond a float" "--fill: 1e39 is out of range for a float32" \
    "$DF" variants "$WORK/clips/shard-00000.h5" --out "$WORK/runs" --fill 1e39

# A full disk (a 64 KB tmpfs; needs root): one message naming the file and "No space left on
# device", exit 2, no file and no temporary left. The shard sizes sweep where the disk fills:
# in a dataset's data, at its close, and at the file's last metadata (HDF5 1.10 crashed at
# exit after a failed file close before h5util.c emptied such a file first).
full="$WORK/full"
mkdir -p "$full"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=64k tmpfs "$full" 2>/dev/null; then
    skip "full disk: needs root to mount a 64 KB tmpfs"
else
    trap 'umount "$full"; cleanup_work' EXIT
    # disk_full NAME FILE CMD...: exit 2, one line naming FILE and the reason, nothing left in $full
    disk_full() {
        local name=$1 file=$2; shift 2
        "$@" >/dev/null 2>"$WORK/err.txt"; local st=$?
        check "full disk, $name: exit 2 (got $st)" [ $st = 2 ] || cat "$WORK/err.txt"
        check "full disk, $name: one message naming $file and the reason" \
            bash -c "[ \$(grep -c . '$WORK/err.txt') = 1 ] && grep -qF '$full/$file: ' '$WORK/err.txt' && grep -q ': No space left on device\$' '$WORK/err.txt'" ||
            cat "$WORK/err.txt"
        check "full disk, $name: nothing half-written" [ -z "$(find "$full" -type f)" ] || find "$full" -type f
        rm -rf "${full:?}"/*
    }
    disk_full "shard" s/shard-00000.h5 "$DF" synth mri3d --out "$full/s" --n 64 --shape 16,16,16
    for n in 18 19 20 21 22 24 26; do  # small enough that some fit: a shard written whole, or not at all
        "$DF" synth mri3d --out "$full/s" --n $n --shape 8,8,8 --masks 1 >/dev/null 2>"$WORK/err.txt"; st=$?
        if [ $st = 0 ]; then check "full disk, shard of $n: fits, written whole" bash -c "\"$DF\" info $full/s/shard-00000.h5 >/dev/null"
        else check "full disk, shard of $n: exit 2, the reason, nothing left (got $st)" \
            bash -c "[ $st = 2 ] && grep -q 'shard-00000.h5: .*No space left on device\$' '$WORK/err.txt' && [ -z \"\$(find '$full' -type f)\" ]" ||
            cat "$WORK/err.txt"
        fi
        rm -rf "${full:?}"/*
    done
    disk_full "NIfTI volumes" n/sub-00004.nii.gz "$DF" synth mri3d --nifti --out "$full/n" --n 64 --shape 16,16,16
    # export at 2 ranks: the ranks agree on the failure (one message, the failing rank's, naming
    # the file under --out, not the temporary folder), and the temporary folder is removed
    "$DF" synth mri3d --out "$WORK/exsrc" --n 64 --shape 16,16,16 >/dev/null
    mpi 2 "$DF" export "$WORK/exsrc" --out "$full/e" >/dev/null 2>"$WORK/err.txt"; st=$?
    check "full disk, export at 2 ranks: exit 2 (got $st)" [ $st = 2 ] || cat "$WORK/err.txt"
    check "full disk, export at 2 ranks: one message naming the file in --out and the reason" \
        bash -c "[ \$(grep -c . '$WORK/err.txt') = 1 ] && grep -q '^deconfound: export: $full/e/sample-[0-9]*.nii.gz: write failed: No space left on device\$' '$WORK/err.txt'" ||
        cat "$WORK/err.txt"
    check "full disk, export at 2 ranks: nothing left" [ -z "$(ls -A "$full")" ] || ls -A "$full"
    rm -rf "${full:?}"/*
    # pack writes into a temporary directory beside --out: the message names --out's shard
    "$DF" synth mri3d --nifti --out "$WORK/nii16" --n 16 --shape 16,16,16 >/dev/null
    disk_full "pack" p/shard-00000.h5 "$DF" pack --manifest "$WORK/nii16/subjects.csv" --out "$full/p" --quiet
    # a run directory on a disk 16 KB from full: config.ini, run.json and log.txt fit, the
    # epoch's metrics (stdio, df_write_file_atomic) do not
    head -c $((48 * 1024)) /dev/zero >"$WORK/filler" && cp "$WORK/filler" "$full/filler"
    "$DF" train "$good" --set "train.out_dir=$full/runs" --quiet >/dev/null 2>"$WORK/err.txt"; st=$?
    check "full disk, training: exit 2 (got $st)" [ $st = 2 ] || cat "$WORK/err.txt"
    check "full disk, training: names the file and the reason" \
        grep -q "^deconfound: $full/runs/[a-z.]*: write failed: No space left on device\$" "$WORK/err.txt" || cat "$WORK/err.txt"
    check "full disk, training: no temporary file left" [ -z "$(find "$full/runs" -name '.*.tmp.*')" ]
    umount "$full"; trap cleanup_work EXIT
fi
# ---- bad values in the data (issue 19) ----
# Shards packed by the program, then damaged in place by tests/damage (HDF5 C API; no Python in
# CI). Each stops with status 2 and one message naming the file, the sample (index and subject)
# and the column, before anything is written: no run directory, no checkpoint, no output.
DAMAGE="$top_builddir/tests/damage"
# 2 ranks, bounded: ranks that disagree about a failure would wait for each other forever
MPI2=(timeout 120 "$MPIEXEC" $MPI_FLAGS -np 2)
mkdir -p "$WORK/vals"
(echo "path,label,subject,age,site:categorical"
 for i in 0 1 2 3 4 5 6 7; do
     "$DAMAGE" "$WORK/vals/v$i.nii" nifti -1 || echo "damage failed" >&2
     echo "v$i.nii,$([ $((i % 2)) = 0 ] && echo AD || echo CN),sub-0$i,$((40 + i)),S$((i % 3))"
 done) >"$WORK/vals/m.csv"
"$DF" pack --manifest "$WORK/vals/m.csv" --out "$WORK/vals/packed" --quiet >/dev/null
good_shard="$WORK/vals/packed/shard-00000.h5"
# damaged NAME ARGS...: a copy of the good shard as $WORK/vals/NAME.h5, damaged by ARGS
damaged() { local name=$1; shift; cp "$good_shard" "$WORK/vals/$name.h5" && "$DAMAGE" "$WORK/vals/$name.h5" "$@"; }
# shard_ini SHARD: a training on SHARD, its run directory $WORK/runs
shard_ini() { sed "s|^source = .*|source = $1\nval_fraction = 0.25|; /^n = /d; /^shape = /d" "$good" >"$WORK/vals/t.ini"; }
shard_ini "$good_shard"
check "values: the good shard trains" "$DF" train "$WORK/vals/t.ini" --quiet --set "train.out_dir=$WORK/vals/run"
ckpt="$WORK/vals/run/checkpoint.h5"
# predict/eval: --out one of the inputs (the shard, the checkpoint, CONFIG), however spelt or
# through a symlink, is refused before any work, and the input stays as it was
cp "$good_shard" "$WORK/vals/s.h5" && cp "$ckpt" "$WORK/vals/ck.h5" && ln -sf s.h5 "$WORK/vals/link.h5"
expect_fail "predict: --out the shard" "predict: --out .*/vals/\.\./vals/s\.h5: the output would overwrite an input, .*/vals/s\.h5 \(choose another --out\)" \
    "${MPI2[@]}" "$DF" predict "$WORK/vals/t.ini" --checkpoint "$WORK/vals/ck.h5" --data "$WORK/vals/s.h5" --out "$WORK/vals/../vals/s.h5"
expect_fail "predict: --out the checkpoint" "predict: --out .*ck\.h5: the output would overwrite an input, .*/vals/ck\.h5" \
    "$DF" predict "$WORK/vals/t.ini" --checkpoint "$WORK/vals/ck.h5" --data "$good_shard" --out "$WORK/vals/ck.h5"
expect_fail "eval: --out a symlink to the shard" "eval: --out .*link\.h5: the output would overwrite an input, .*/vals/s\.h5" \
    "$DF" eval "$WORK/vals/t.ini" --checkpoint "$WORK/vals/ck.h5" --data "$WORK/vals/s.h5" --features linear1 --out "$WORK/vals/link.h5"
expect_fail "eval --split: --out CONFIG" "eval: --out .*t\.ini: the output would overwrite an input" \
    "$DF" eval "$WORK/vals/t.ini" --checkpoint "$WORK/vals/ck.h5" --split val --features linear1 --out "$WORK/vals/t.ini"
check "predict/eval: the inputs named by --out untouched" bash -c \
    "cmp -s '$good_shard' '$WORK/vals/s.h5' && cmp -s '$ckpt' '$WORK/vals/ck.h5' && [ -L '$WORK/vals/link.h5' ] && grep -q '^\[conv3d\]' '$WORK/vals/t.ini'"
# predict/eval read CONFIG as train does: a key nothing reads is refused; and the network must
# be the checkpoint's (its /config), settings without parameters too -- the tensors would
# still fit and the outputs silently change. [train] and [data] may differ.
expect_fail "predict: an unknown layer key" "t.ini: --set conv3d.strde: unknown key 'strde' in \[conv3d\]" \
    "$DF" predict "$WORK/vals/t.ini" --checkpoint "$ckpt" --data "$good_shard" --out "$WORK/runs" --set conv3d.strde=2
expect_fail "eval: an unknown layer key" "t.ini: --set linear.bogus: unknown key 'bogus' in \[linear\]" \
    "$DF" eval "$WORK/vals/t.ini" --checkpoint "$ckpt" --data "$good_shard" --features linear1 --out "$WORK/runs" --set linear.bogus=1
# accuracy_by: aligned means the column's value is the sample's class; a continuous column
# (age) never is, and reported NaN
expect_fail "train: accuracy_by a continuous column" "t.ini: --set train.accuracy_by: .*accuracy_by = age: a continuous column" \
    "$DF" train "$WORK/vals/t.ini" --set train.accuracy_by=age --set "train.out_dir=$WORK/runs"
expect_fail "eval: --accuracy-by a continuous column" "eval: --accuracy-by age: a continuous column" \
    "$DF" eval "$WORK/vals/t.ini" --checkpoint "$ckpt" --data "$good_shard" --features linear1 --out "$WORK/runs" --accuracy-by age
expect_fail "eval --split: an unknown [data] key" "t.ini: --set data.bogus: unknown key 'bogus' in \[data\]" \
    "$DF" eval "$WORK/vals/t.ini" --checkpoint "$ckpt" --split val --features linear1 --out "$WORK/runs" --set data.bogus=1
sed 's/^\[relu\]$/[tanh]/' "$WORK/vals/t.ini" >"$WORK/vals/tanh.ini"
expect_fail "predict: [tanh] where the checkpoint has [relu]" \
    "tanh.ini:[0-9]+: the network differs from the one .*checkpoint.h5 was trained with: layer \[tanh\] where it has \[relu\]" \
    "${MPI2[@]}" "$DF" predict "$WORK/vals/tanh.ini" --checkpoint "$ckpt" --data "$good_shard" --out "$WORK/runs"
expect_fail "predict: another stride" "t.ini: --set conv3d.stride: \[conv3d\] stride = 2, but .*checkpoint.h5 was trained with" \
    "$DF" predict "$WORK/vals/t.ini" --checkpoint "$ckpt" --data "$good_shard" --out "$WORK/runs" --set conv3d.stride=2
expect_fail "eval: another pad" "t.ini: --set conv3d.pad: \[conv3d\] pad = 1, but .*checkpoint.h5 was trained with" \
    "$DF" eval "$WORK/vals/t.ini" --checkpoint "$ckpt" --data "$good_shard" --features linear1 --out "$WORK/runs" --set conv3d.pad=1
"$DF" predict "$WORK/vals/t.ini" --checkpoint "$ckpt" --data "$good_shard" --out "$WORK/vals/p.h5" --set train.lr=0.5 \
    --set train.epochs=9 --set data.val_fraction=0.5 >"$WORK/out.txt" 2>&1
check "predict: [train] and [data] may differ from the checkpoint's" [ $? = 0 ] || cat "$WORK/out.txt"

# 1. a NaN or infinite voxel: found as the loader reads the sample, in memory or from disk
# (pread or MPI-IO), on one rank or two; the run directory the run made is removed
damaged voxel voxel 5 27 nan
shard_ini "$WORK/vals/voxel.h5"
want='voxel.h5: sample 5 \(subject sub-05\), images: channel 0 voxel \(d 1, h 2, w 3\) is NaN'
expect_fail "values: NaN voxel (in memory)" "$want" "$DF" train "$WORK/vals/t.ini"
expect_fail "values: NaN voxel (read from disk)" "$want" "$DF" train "$WORK/vals/t.ini" --set data.cache=disk
expect_fail "values: NaN voxel, 2 ranks" "$want" "${MPI2[@]}" "$DF" train "$WORK/vals/t.ini" --set data.cache=disk
expect_fail "values: NaN voxel, 2 ranks, MPI-IO" "$want" "${MPI2[@]}" "$DF" train "$WORK/vals/t.ini" --set data.read=mpiio
damaged inf voxel 2 0 -inf
shard_ini "$WORK/vals/inf.h5"
expect_fail "values: infinite voxel" "inf.h5: sample 2 \(subject sub-02\), images: channel 0 voxel \(d 0, h 0, w 0\) is infinite" \
    "$DF" train "$WORK/vals/t.ini"
expect_fail "values: NaN voxel, predict" "predict: .*$want" "${MPI2[@]}" "$DF" predict "$WORK/vals/t.ini" --checkpoint "$ckpt" \
    --data "$WORK/vals/voxel.h5" --out "$WORK/runs"
expect_fail "values: NaN voxel, eval" "eval: .*$want" "$DF" eval "$WORK/vals/t.ini" --checkpoint "$ckpt" \
    --data "$WORK/vals/voxel.h5" --features global_avgpool1 --out "$WORK/runs"
# pack refuses a NIfTI file with a NaN voxel (inside a mask or outside: trilinear resampling
# would spread it), naming the manifest line and the file
"$DAMAGE" "$WORK/vals/nan.nii" nifti 21
sed 's/^v3\.nii,/nan.nii,/' "$WORK/vals/m.csv" >"$WORK/vals/nan.csv"
expect_fail "values: pack, a NIfTI with a NaN voxel" "nan.csv:5: .*nan.nii: voxel 21 is NaN or infinite" \
    "$DF" pack --manifest "$WORK/vals/nan.csv" --out "$WORK/runs"

# export reads every shard before it makes --out: a file that is not a shard, a damaged one,
# a sample whose packed grid has no place in space (a singular /affine) -- one message, at 1
# and 2 ranks, no folder and no temporary one
no_tmp() { check "$1: no temporary folder left" bash -c "! ls -d '$WORK'/runs.tmp-* 2>/dev/null"; }
expect_fail "export: not an HDF5 file" "^deconfound: export: .*vals/v0.nii: not an HDF5 file" \
    "$DF" export "$WORK/vals/v0.nii" --out "$WORK/runs"
no_tmp "export: not an HDF5 file"
head -c 3000 "$good_shard" >"$WORK/vals/trunc.h5"
expect_fail "export: a truncated shard, 2 ranks" "^deconfound: export: .*vals/trunc.h5: " \
    "${MPI2[@]}" "$DF" export "$WORK/vals/trunc.h5" --out "$WORK/runs"
no_tmp "export: a truncated shard"
damaged affine grid 1 1 1 0
expect_fail "export: a singular affine, 2 ranks" \
    "^deconfound: export: .*vals/affine.h5: sample 1 \(subject sub-01\): the packed grid's affine \(/affine\) is singular" \
    "${MPI2[@]}" "$DF" export "$WORK/vals/affine.h5" --out "$WORK/runs"
no_tmp "export: a singular affine"
expect_fail "export: --out in a missing folder, named as given" "^deconfound: export: $WORK/nowhere/ex: cannot create: No such file or directory\$" \
    "$DF" export "$good_shard" --out "$WORK/nowhere/ex"
# saliency --region needs the packed grid's place in space: data not packed from NIfTI (here
# synthetic) is refused before any map is written, at 1 and 2 ranks alike (no MPI_ABORT)
"$DF" synth mri3d --out "$WORK/vals/nogeo" --n 16 --shape 8,8,8 >/dev/null
check "a network trained on synthetic data" "$DF" train "$good" --set "train.out_dir=$WORK/vals/nogeo-run" --quiet
for np in 1 2; do
    expect_fail "saliency --region on data without geometry, $np rank(s)" \
        "^deconfound: saliency: --region: .*vals/nogeo was not packed from NIfTI files" \
        timeout 120 "$MPIEXEC" $MPI_FLAGS -np $np "$DF" saliency "$good" --checkpoint "$WORK/vals/nogeo-run/checkpoint.h5" \
        --data "$WORK/vals/nogeo" --region "$WORK/vals/v0.nii" --out "$WORK/runs" --quiet
    no_tmp "saliency --region on data without geometry, $np rank(s)"
done

# 2. metadata: NaN, and categorical values that are not level numbers (with and without names)
damaged meta meta 3 0 nan
shard_ini "$WORK/vals/meta.h5"
expect_fail "values: NaN metadata" "meta.h5: sample 3 \(subject sub-03\), meta column 'age': NaN" "$DF" train "$WORK/vals/t.ini"
for v in 7.5 -3 1e12 3; do
    damaged code meta 6 1 $v
    shard_ini "$WORK/vals/code.h5"
    expect_fail "values: categorical value $v (3 level names)" \
        "code.h5: sample 6 \(subject sub-06\), meta column 'site': $(printf %.15g $v) is not a level number of the column \(an integer 0..2" \
        "${MPI2[@]}" "$DF" train "$WORK/vals/t.ini"
done
"$DF" synth mri3d --out "$WORK/vals/synth" --n 16 --shape 8,8,8 >/dev/null  # categorical sex and site, no level names
for v in 7.5 -3 1e12; do
    cp "$WORK/vals/synth/shard-00000.h5" "$WORK/vals/code.h5" && "$DAMAGE" "$WORK/vals/code.h5" meta 9 2 $v
    shard_ini "$WORK/vals/code.h5"
    expect_fail "values: categorical value $v (no level names)" \
        "code.h5: sample 9, meta column 'site': $(printf %.15g $v) is not a level number \(categorical values are whole numbers" \
        "$DF" train "$WORK/vals/t.ini"
done
expect_fail "values: predict reads the metadata too" "code.h5: sample 9, meta column 'site'" \
    "$DF" predict "$WORK/vals/t.ini" --checkpoint "$ckpt" --data "$WORK/vals/code.h5" --out "$WORK/runs"

# 3. column names: empty or repeated
damaged cols columns "age,age"
shard_ini "$WORK/vals/cols.h5"
expect_fail "values: a column name twice" "cols.h5: meta: column name 'age' is given twice \(columns 1 and 2\)" "$DF" train "$WORK/vals/t.ini"
damaged cols columns ",site"
expect_fail "values: an empty column name" "cols.h5: meta: column 1 has an empty name" "$DF" train "$WORK/vals/t.ini"

# 4. labels: negative, beyond the class names, beyond the network's outputs
damaged label label 4 -1
shard_ini "$WORK/vals/label.h5"
expect_fail "values: a negative label" "label.h5: sample 4 \(subject sub-04\): label -1 is not a class index" "$DF" train "$WORK/vals/t.ini"
damaged label label 4 2
expect_fail "values: a label beyond the class names" "label.h5: sample 4 \(subject sub-04\): label 2, but the labels name only 2 classes" \
    "${MPI2[@]}" "$DF" train "$WORK/vals/t.ini"
cp "$WORK/vals/synth/shard-00000.h5" "$WORK/vals/label.h5" && "$DAMAGE" "$WORK/vals/label.h5" label 11 2
expect_fail "values: a label beyond the network's outputs" \
    "label.h5: sample 11: label 2, but the network of .*t.ini has 2 outputs \(classes 0..1\)" "$DF" train "$WORK/vals/t.ini"
# [loss] type = bce_logits: one output, labels 0 or 1 (docs/config.md), checked before training
(cat "$WORK/vals/t.ini"; printf '[loss]\ntype = bce_logits\n') >"$WORK/vals/bce.ini"
expect_fail "values: bce_logits, a label not 0 or 1" \
    "label.h5: sample 11: label 2, but \[loss\] type = bce_logits of .*bce.ini takes binary labels \(0 or 1\)" \
    "${MPI2[@]}" "$DF" train "$WORK/vals/bce.ini" --set linear.out=1
expect_fail "bce_logits: a last layer with out = 2" \
    "bce.ini:[0-9]+: \[linear\] linear1: 2 outputs, but \[loss\] type = bce_logits takes one .*the last layer needs out = 1" \
    "$DF" train "$WORK/vals/bce.ini" --set "data.source=$WORK/vals/synth/shard-00000.h5"

expect_fail "bench --vs-1-thread on one thread" "--vs-1-thread needs --threads 2 or more \(this rank has 1\)" \
    "$DF" bench brnet3d --threads 1 --vs-1-thread
expect_fail "bench --vs-1-thread with --vs-torch" "--vs-1-thread runs alone" \
    "$DF" bench brnet3d --threads 2 --vs-1-thread --vs-torch
# the alternating rounds on a small batch: four rounds, each with its ratio, and their median
"$DF" bench brnet3d --threads 2 --vs-1-thread --batch 2 --steps 1 >"$WORK/vs1.txt" 2>&1
check "bench --vs-1-thread prints 4 rounds" test "$(grep -c '^round [1-4] (.*): samples/s .* at 1 thread, .* at 2: ' "$WORK/vs1.txt")" = 4
check "bench --vs-1-thread prints their median" grep -Eq '2 threads against 1 in one process, batch 2, 4 rounds of 1 steps each: median [0-9.]+x' "$WORK/vs1.txt"
check "bench --vs-1-thread --json" bash -c "'$DF' bench brnet3d --threads 2 --vs-1-thread --batch 2 --steps 1 --json | grep -Eq '\"median_speedup\": [0-9.]+\}\$'"
for c in train predict synth info bench eval dcor pack variants plot; do
    check "$c --help" bash -c "'$DF' $c --help | grep -q '^usage: deconfound $c'"
done
expect_fail "plot: not a run directory" "runs: No such file or directory \(expected a run directory\)" "$DF" plot "$WORK/runs"
check "deconfound --help" bash -c "'$DF' --help | grep -q 'commands:'"
finish
