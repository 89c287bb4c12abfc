#!/usr/bin/env bash
# `deconfound pack --bids` (data/bids.c) on BIDS trees built here from the NIfTI files of
# `deconfound synth mri3d --nifti` (and nibabel's test files, when python3-nibabel is
# installed): participants.tsv and .json (ages in months converted to years, Levels),
# sessions with sessions.tsv ages overriding the participant's, --session, missing data
# reported in one message or dropped with --drop-missing, ambiguous runs, bad files; the
# shards record their source and are the same bytes on 1 and 2 ranks; [data] source =
# bids:DIR trains.
. "${top_srcdir:-.}/tests/lib.sh"

# info_has SHARD TEXT: `info --json` of the shard contains TEXT.
info_has() { "$DF" info "$1" --json | grep -qF -- "$2" || { echo "  info --json $1:"; "$DF" info "$1" --json; return 1; }; }

"$DF" synth mri3d --nifti --out "$WORK/nii" --n 12 --shape 10,10,10 --seed 3 >/dev/null || fail "synth --nifti"
# image SUB [SES] [ENTITIES]: links synthetic volume k (k counts the images made) as that
# subject's (and session's) T1w image.
k=0
image() {
    local sub=$1 ses=${2:-} ent=${3:-} dir name
    if [ -n "$ses" ]; then dir="$DS/sub-$sub/ses-$ses/anat"; name="sub-${sub}_ses-${ses}${ent}_T1w.nii.gz"
    else dir="$DS/sub-$sub/anat"; name="sub-${sub}${ent}_T1w.nii.gz"; fi
    mkdir -p "$dir"
    ln -s "$WORK/nii/$(printf 'sub-%05d' $((k % 12))).nii.gz" "$dir/$name"
    k=$((k + 1))
}
tsv() { printf '%s\n' "$@" | tr '|' '\t'; }

# ---- plain: three subjects, age in months, sex with Levels ---------------------------------
DS="$WORK/plain"
mkdir -p "$DS"
tsv "participant_id|group|age|sex" "sub-01|AD|840|F" "sub-02|CN|780|M" "sub-03|AD|900|M" >"$DS/participants.tsv"
cat >"$DS/participants.json" <<'JSON'
{
  "group": {"Description": "diagnosis", "Levels": {"AD": "Alzheimer's disease", "CN": "cognitively normal"}},
  "age": {"Description": "age at the scan", "Units": "months"},
  "sex": {"Levels": {"F": "female", "M": "male"}}
}
JSON
for s in 01 02 03; do image $s; done
"$DF" pack --bids "$DS" --label group --confounders age,sex --out "$WORK/p" --quiet >"$WORK/p.txt" || { fail "pack --bids plain"; cat "$WORK/p.txt"; }
check "plain: 3 samples, 2 classes" grep -q 'wrote .*: 3 samples .* labels 0: 2 1: 1; columns age (continuous) sex (categorical)' "$WORK/p.txt"
check "plain: the summary says age was converted" grep -q 'age: months in participants.json, converted to years' "$WORK/p.txt"
check "plain: ages 840, 780, 900 months are 70, 65, 75 years" \
    info_has "$WORK/p/shard-00000.h5" '{"name": "age", "kind": "continuous", "mean": 70, "sd": 4.08248, "min": 65, "max": 75}'
check "plain: sex is categorical (Levels), 1 F and 2 M" info_has "$WORK/p/shard-00000.h5" '{"name": "sex", "kind": "categorical", "mean": 0.666667'
check "plain: the shard records its BIDS source" \
    info_has "$WORK/p/shard-00000.h5" "\"source\": \"bids:$DS suffix=T1w session=all label=group confounders=age,sex\""
check "plain: info prints the source" bash -c "'$DF' info '$WORK/p/shard-00000.h5' | grep -q '^source: bids:'"
"$DF" export "$WORK/p" --out "$WORK/p-nii" >/dev/null 2>&1
check "plain: each sample goes back to its BIDS image (export: named by participant, the image's dims)" bash -c "
    [ \"\$(ls '$WORK/p-nii' | tr '\n' ' ')\" = 'sub-01.nii.gz sub-02.nii.gz sub-03.nii.gz ' ] &&
    [ \"\$('$DF' info '$WORK/p-nii/sub-02.nii.gz' --json | grep -o '\"dims\": [^]]*]')\" = \"\$('$DF' info \$(ls '$DS'/sub-02/anat/*T1w.nii.gz) --json | grep -o '\"dims\": [^]]*]')\" ]"

# ---- sessions: sessions.tsv ages override the participant's -------------------------------
DS="$WORK/ses"
mkdir -p "$DS"
tsv "participant_id|group|age|site" "sub-01|1|70|A" "sub-02|0|60|B" "sub-03|1|50|A" "sub-04|0|55|B" >"$DS/participants.tsv"
for s in 01 02 03 04; do image $s 1; image $s 2; done
tsv "session_id|age" "ses-1|70" "ses-2|72" >"$DS/sub-01/sub-01_sessions.tsv"
tsv "session_id|acq_time|age" "ses-1|2020-01-01T10:00:00|720" "ses-2|2021-01-01T10:00:00|732" >"$DS/sub-02/sub-02_sessions.tsv"
echo '{"age": {"Units": "months"}}' >"$DS/sub-02/sub-02_sessions.json"
tsv "session_id|age" "ses-2|56" >"$DS/sub-04/sub-04_sessions.tsv"   # ses-1 not listed: the participant's 55
OPTS="--label group --confounders age,site --shard-size 3 --quiet"
"$DF" pack --bids "$DS" $OPTS --out "$WORK/s1" >"$WORK/s1.txt" || { fail "pack --bids sessions"; cat "$WORK/s1.txt"; }
check "sessions: 8 images in 3 shards" grep -q ': 8 samples .* in 3 shards' "$WORK/s1.txt"
# ages 70 72 | 60 61 | 50 50 | 55 56: sessions.tsv's (months -> years) where given
"$DF" pack --bids "$DS" $OPTS --shard-size 8 --out "$WORK/s8" >/dev/null
check "sessions: per-session ages (sessions.json months converted)" \
    info_has "$WORK/s8/shard-00000.h5" '{"name": "age", "kind": "continuous", "mean": 59.25, "sd": 7.75806, "min": 50, "max": 72}'
check "sessions: 4 subjects for 8 images" info_has "$WORK/s8/shard-00000.h5" '"subjects": 4'
mpi 2 "$DF" pack --bids "$DS" $OPTS --out "$WORK/s2" >/dev/null || fail "pack --bids sessions, 2 ranks"
same=1
for f in "$WORK"/s1/shard-*.h5; do cmp -s "$f" "$WORK/s2/$(basename "$f")" || same=0; done
[ "$(ls "$WORK/s2" | wc -l)" = 3 ] || same=0
check "sessions: 2 ranks write the same bytes as 1 rank" [ $same = 1 ]
"$DF" pack --bids "$DS" $OPTS --session 2 --out "$WORK/one" >"$WORK/one.txt" || { fail "pack --session 2"; cat "$WORK/one.txt"; }
"$DF" pack --bids "$DS" $OPTS --session ses-2 --shard-size 8 --out "$WORK/one8" >/dev/null
check "--session 2: one image per participant, that session's age" \
    info_has "$WORK/one8/shard-00000.h5" '"n": 4, "shape": [1, 10, 10, 10], "labels": {"0": 2, "1": 2}, "columns": [{"name": "age", "kind": "continuous", "mean": 59.75, "sd": 8.07388, "min": 50, "max": 72}'
check "--session 2: recorded in the source" info_has "$WORK/one8/shard-00000.h5" "session=ses-2"
expect_fail "--session that no subject has" "ses: no images sub-\*/ses-3/anat/sub-\*_T1w.nii\[.gz\]" "$WORK/o" \
    "$DF" pack --bids "$DS" $OPTS --session 3 --out "$WORK/o"

# ---- runs: several images of one subject and session ----------------------------------------
image 03 2 _run-2
expect_fail "two runs of one session" "ses: 2 T1w images of sub-03 ses-2: sub-03/ses-2/anat/sub-03_ses-2_T1w.nii.gz, sub-03/ses-2/anat/sub-03_ses-2_run-2_T1w.nii.gz; pack takes one image per subject and session" \
    "$WORK/o" "$DF" pack --bids "$DS" $OPTS --out "$WORK/o"
rm "$DS/sub-03/ses-2/anat/sub-03_ses-2_run-2_T1w.nii.gz"

# ---- missing data ------------------------------------------------------------------------------
DS="$WORK/miss"
mkdir -p "$DS"
tsv "participant_id|group|age|sex" "sub-01|AD|71|F" "sub-02|CN|n/a|M" "sub-03|n/a|66|M" "sub-04|CN|80|F" \
    "sub-05|AD|75|F" "sub-06|CN|62|M" >"$DS/participants.tsv"
for s in 01 02 03 05 06 09; do image $s; done   # sub-04 has no image; sub-09 no participants.tsv row
expect_fail "missing data: one message naming every kind" \
    "miss: missing data: 1 participant of participants.tsv without a T1w image: sub-04; 1 T1w image without a participants.tsv row: sub-09; 2 images with n/a in the label or a confounder: sub-02 \(age\), sub-03 \(group\) -- drop them with --drop-missing" \
    "$WORK/o" mpi 2 "$DF" pack --bids "$DS" --label group --confounders age,sex --out "$WORK/o"
"$DF" pack --bids "$DS" --label group --confounders age,sex --drop-missing --out "$WORK/d" >"$WORK/d.txt" || { fail "--drop-missing"; cat "$WORK/d.txt"; }
check "--drop-missing lists the participant without an image" grep -qx ".*miss: dropped 1 participant of participants.tsv without a T1w image: sub-04" "$WORK/d.txt"
check "--drop-missing lists the image without a row" grep -qx ".*miss: dropped 1 T1w image without a participants.tsv row: sub-09" "$WORK/d.txt"
check "--drop-missing lists the n/a rows" grep -qx ".*miss: dropped 2 images with n/a in the label or a confounder: sub-02 (age), sub-03 (group)" "$WORK/d.txt"
check "--drop-missing packs the 3 complete rows" info_has "$WORK/d/shard-00000.h5" '"n": 3,'
check "--drop-missing is recorded in the source" info_has "$WORK/d/shard-00000.h5" "drop_missing\""
# --subjects: missing data of the participants not listed does not matter
printf 'sub-01\nsub-05\n' >"$WORK/keep.txt"
"$DF" pack --bids "$DS" --label group --confounders age,sex --subjects "$WORK/keep.txt" --out "$WORK/k" --quiet >/dev/null \
    && info_has "$WORK/k/shard-00000.h5" '"n": 2,' && pass "--subjects: only the listed participants' missing data counts" || fail "--subjects with --bids"
# a dangling symbolic link (a DataLad/git-annex file not fetched) is no missing image: an error
# even with --drop-missing, on every rank; a participant --subjects leaves out may have one
mkdir -p "$DS/sub-04/anat" && ln -s /nonexistent/annex/objects/x.nii.gz "$DS/sub-04/anat/sub-04_T1w.nii.gz"
expect_fail "an image not fetched (a broken symbolic link), --drop-missing" \
    "miss/sub-04/anat/sub-04_T1w.nii.gz: the image is a broken symbolic link \(to '/nonexistent/annex/objects/x.nii.gz'\): .*datalad get" \
    "$WORK/o" mpi 2 "$DF" pack --bids "$DS" --label group --confounders age,sex --drop-missing --out "$WORK/o"
"$DF" pack --bids "$DS" --label group --confounders age,sex --subjects "$WORK/keep.txt" --out "$WORK/k2" --quiet >/dev/null \
    && info_has "$WORK/k2/shard-00000.h5" '"n": 2,' && pass "--subjects: a participant left out may have an image not fetched" ||
    fail "--subjects with an unfetched image of another participant"
ln -s /nonexistent/participants.json "$DS/participants.json"
expect_fail "a sidecar not fetched" "miss/participants.json: the sidecar is a broken symbolic link" \
    "$WORK/o" "$DF" pack --bids "$DS" --label group --confounders age,sex --subjects "$WORK/keep.txt" --out "$WORK/o"
rm "$DS/participants.json" "$DS/sub-04/anat/sub-04_T1w.nii.gz"
printf 'sub-01\nsub-09\n' >"$WORK/keep2.txt"
expect_fail "--subjects: an id participants.tsv lacks" "keep2.txt:2: subject 'sub-09' is not in .*miss/participants.tsv" "$WORK/o" \
    "$DF" pack --bids "$DS" --label group --confounders age,sex --subjects "$WORK/keep2.txt" --out "$WORK/o"

# ---- bad files ---------------------------------------------------------------------------------
DS="$WORK/bad"
mkdir -p "$DS"
image 01; image 02
expect_fail "no participants.tsv" "bad/participants.tsv: missing" "$WORK/o" "$DF" pack --bids "$DS" --label group --out "$WORK/o"
expect_fail "not a folder" "nowhere: not a folder" "$WORK/o" "$DF" pack --bids "$WORK/nowhere" --label group --out "$WORK/o"
tsv "participant_id|group|sex" "sub-01|0|F" "sub-02|1" >"$DS/participants.tsv"
expect_fail "a short TSV row" "participants.tsv:3: 2 fields, but the header has 3 columns" "$WORK/o" "$DF" pack --bids "$DS" --label group --out "$WORK/o"
tsv "subject|group|sex" "sub-01|0|F" "sub-02|1|M" >"$DS/participants.tsv"
expect_fail "first column not participant_id" "participants.tsv: the first column must be participant_id \(found 'subject'\)" "$WORK/o" \
    "$DF" pack --bids "$DS" --label group --out "$WORK/o"
tsv "participant_id|group|sex" "sub-01|0|F" "sub-02|1|X" >"$DS/participants.tsv"
expect_fail "an unknown column" "participants.tsv: the confounders names column 'age', which neither it nor a sessions.tsv has \(its columns: group, sex\)" \
    "$WORK/o" "$DF" pack --bids "$DS" --label group --confounders age --out "$WORK/o"
printf '{"sex": {"Levels": {"F": "female", "M": "male"},}}\n' >"$DS/participants.json"
expect_fail "a trailing comma in participants.json" "participants.json:1:49: a trailing comma" "$WORK/o" \
    "$DF" pack --bids "$DS" --label group --confounders sex --out "$WORK/o"
printf '{"sex": {"Levels": {"F": "female", "M": "male"}}}\n' >"$DS/participants.json"
expect_fail "a value not among the Levels" "participants.tsv:3: sex: 'X' is not one of the Levels .*participants.json gives \(F, M\)" "$WORK/o" \
    "$DF" pack --bids "$DS" --label group --confounders sex --out "$WORK/o"
printf '{"sex": {"Units": ["years"]}}\n' >"$DS/participants.json"
expect_fail "Units not a string" "participants.json:1:19: sex: Units is an array; it must be a string" "$WORK/o" \
    "$DF" pack --bids "$DS" --label group --confounders sex --out "$WORK/o"
mkdir -p "$WORK/trunc/sub-01/anat" "$WORK/trunc/sub-02/anat"
cp "$WORK/nii/sub-00000.nii.gz" "$WORK/trunc/sub-01/anat/sub-01_T1w.nii.gz"
head -c 600 "$WORK/nii/sub-00001.nii.gz" >"$WORK/trunc/sub-02/anat/sub-02_T1w.nii.gz"
tsv "participant_id|group" "sub-01|0" "sub-02|1" >"$WORK/trunc/participants.tsv"
expect_fail "a truncated image (2 ranks)" "trunc/participants.tsv:3: .*trunc/sub-02/anat/sub-02_T1w.nii.gz: .*(truncated|corrupt)" "$WORK/o" \
    mpi 2 "$DF" pack --bids "$WORK/trunc" --label group --out "$WORK/o"
expect_fail "--label without --bids" "pack: --label goes with --bids" "$WORK/o" "$DF" pack --manifest x.csv --label group --out "$WORK/o"
expect_fail "--bids without --label" "pack: --bids needs --label" "$WORK/o" "$DF" pack --bids "$DS" --out "$WORK/o"
expect_fail "--bids and --manifest" "pack: --manifest and --bids: give one" "$WORK/o" "$DF" pack --bids "$DS" --manifest x.csv --label g --out "$WORK/o"
"$DF" pack --help | grep -q -- "--drop-missing" && pass "pack --help describes --bids" || fail "pack --help"

# ---- nibabel's files: .nii, .nii.gz and NIfTI-2 under BIDS names ------------------------------
NIB=/usr/lib/python3/dist-packages/nibabel/tests/data
if [ -d "$NIB" ]; then
    DS="$WORK/nib"
    mkdir -p "$DS/sub-a/anat" "$DS/sub-b/anat" "$DS/sub-c/anat"
    ln -s "$NIB/anatomical.nii" "$DS/sub-a/anat/sub-a_T1w.nii"
    ln -s "$NIB/standard.nii.gz" "$DS/sub-b/anat/sub-b_T1w.nii.gz"
    ln -s "$NIB/example_nifti2.nii.gz" "$DS/sub-c/anat/sub-c_T1w.nii.gz"
    tsv "participant_id|dx|age" "sub-a|patient|30.5" "sub-b|control|41" "sub-c|patient|n/a" >"$DS/participants.tsv"
    "$DF" pack --bids "$DS" --label dx --confounders age --drop-missing --shape 8,8,8 --out "$WORK/nb" >"$WORK/nb.txt" \
        && grep -q ': 2 samples of shape (C,D,H,W) = (1,8,8,8)' "$WORK/nb.txt" && pass "nibabel's files under BIDS names" \
        || { fail "nibabel's files"; cat "$WORK/nb.txt"; }
else
    skip "python3-nibabel's test data not installed: $NIB"
fi

# ---- training straight from a BIDS dataset ([data] source = bids:DIR) -------------------------
cat >"$WORK/b.ini" <<INI
[data]
source = bids:$WORK/ses
label = group
confounders = age,site
bids_session = 1
shape = 8,8,8
val_fraction = 0.5
[train]
epochs = 1
batch = 2
out_dir = $WORK/run_b
[conv3d]
out = 2
[relu]
[global_avgpool]
[linear]
out = 2
INI
mpi 2 "$DF" train "$WORK/b.ini" >"$WORK/b.log" 2>&1 && grep -q "final:" "$WORK/b.log" && pass "train from bids:DIR (2 ranks)" \
    || { fail "train from bids:DIR"; cat "$WORK/b.log"; }
sed "s|^label = .*|label = diagnosis|; s|run_b|run_b2|" "$WORK/b.ini" >"$WORK/b2.ini"
expect_fail "[data] label naming no column" "ses/participants.tsv: the label names column 'diagnosis'" "$WORK/run_b2" "$DF" train "$WORK/b2.ini"
sed "s|^source = .*|source = $WORK/nii/subjects.csv|; s|run_b|run_b3|" "$WORK/b.ini" >"$WORK/b3.ini"
expect_fail "BIDS keys with a CSV source" "b3.ini:[0-9]+: unknown key '(label|confounders|bids_session)' in \[data\]" "$WORK/run_b3" "$DF" train "$WORK/b3.ini"
finish
