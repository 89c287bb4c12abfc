#!/usr/bin/env bash
# synth brain (data/synth_brain.c) on Debian's mricron-data Colin27 template at quarter scale:
# the files and each site's header; the same bytes for a seed at 1 and 2 ranks; the columns'
# distributions; the label effect inside label_region.nii.gz and nowhere else (counterfactual
# pairs); pack bringing every site to one grid; a short training run that learns the label
# effect; bad input. Skipped without the templates (package mricron-data).
. "${top_srcdir:-.}/tests/lib.sh"
TPL=/usr/share/mricron/templates
if [ ! -e "$TPL/ch2.nii.gz" ]; then skip "no $TPL/ch2.nii.gz (install mricron-data)"; finish; fi
G=(--template "$TPL/ch2.nii.gz" --brain-mask "$TPL/ch2bet.nii.gz" --atlas "$TPL/aal.nii.gz" --quiet)
Q=("${G[@]}" --scale 0.25)

# ---- files, headers, determinism -------------------------------------------------------------
"$DF" synth brain "${Q[@]}" --n 12 --seed 7 --out "$WORK/c1" >"$WORK/c1.log" 2>&1 || { fail "synth brain"; cat "$WORK/c1.log"; }
for f in participants.tsv participants.json dataset_description.json subjects.csv label_region.nii.gz; do
    check "writes $f" [ -s "$WORK/c1/$f" ]
done
check "12 BIDS-named T1w files" [ "$(ls "$WORK"/c1/sub-00*/anat/sub-00*_T1w.nii.gz | wc -l)" = 12 ]
check "no temporary folder left" bash -c "! ls -a '$WORK' | grep -q tmp"
check "participants.tsv: its header and 12 tab-separated rows of 5 values, none n/a" awk -F'\t' '
    NR == 1 { ok = $0 == "participant_id\tlabel\tage\tsex\tsite" } NR > 1 && (NF != 5 || /n\/a/) { ok = 0 }
    END { exit !(ok && NR == 13) }' "$WORK/c1/participants.tsv"
check "participants.json: age in years" grep -q '"age": {"Description": "age at the scan", "Units": "years"}' "$WORK/c1/participants.json"
check "subjects.csv holds participants.tsv's rows" bash -c "diff <(awk -F'\t' 'NR > 1 { print \$1 \"/anat/\" \$1 \"_T1w.nii.gz,\" \$2 \",\" \$1 \",\" \$3 \",\" \$4 \",\" \$5 }' '$WORK/c1/participants.tsv') <(grep -v '^#' '$WORK/c1/subjects.csv' | tail -n +2)"
# Each site's voxel size (1, 1.2, 1.5 model voxels of 4 mm), orientation and grid on a
# field of view of 192 x 216 x 192 mm.
want=("RAS 4 4 4 48 54 48" "LAS 4.8 4.8 4.8 40 45 40" "LPI 6 6 6 32 36 32")
bad=0; seen=""
while IFS=$'\t' read -r id label age sex site; do
    got=$("$DF" info "$WORK/c1/$id/anat/${id}_T1w.nii.gz" --json | sed -n 's/.*"dims": \[\([0-9]*\), \([0-9]*\), \([0-9]*\)\], "pixdim": \[\([0-9.]*\), \([0-9.]*\), \([0-9.]*\)\].*"orientation": "\([A-Z]*\)".*/\7 \4 \5 \6 \1 \2 \3/p')
    awk -v a="$got" -v b="${want[$site]}" 'BEGIN { n = split(a, x, " "); split(b, y, " "); if (n != 7 || x[1] != y[1]) exit 1
        for (i = 2; i <= 7; i++) if (x[i] - y[i] > 1e-4 || y[i] - x[i] > 1e-4) exit 1 }' || { echo "  $id (site $site): $got, expected ${want[$site]}"; bad=1; }
    seen="$seen$site"
done < <(tail -n +2 "$WORK/c1/participants.tsv")
check "every subject's header has its site's orientation, voxel size and grid" [ $bad = 0 ]
check "the 12 subjects cover the 3 sites" bash -c "[[ '$seen' == *0* && '$seen' == *1* && '$seen' == *2* ]]"
"$DF" info "$WORK/c1/label_region.nii.gz" --json >"$WORK/region.json"
check "label_region.nii.gz: RAS, 4 mm, the model grid" grep -q '"dims": \[48, 54, 48\], "pixdim": \[4, 4, 4\], "datatype": "uint8".*"orientation": "RAS"' "$WORK/region.json"

sleep 1  # a file recording the time would now differ
"$DF" synth brain "${Q[@]}" --n 12 --seed 7 --out "$WORK/c2" >/dev/null 2>&1
mpi 2 "$DF" synth brain "${Q[@]}" --n 12 --seed 7 --out "$WORK/c3" >/dev/null 2>&1
"$DF" synth brain "${Q[@]}" --n 12 --seed 8 --out "$WORK/c4" >/dev/null 2>&1
check "same seed: the same bytes" diff -r "$WORK/c1" "$WORK/c2"
check "2 ranks: the same bytes as 1 rank" diff -r "$WORK/c1" "$WORK/c3"
check "another seed: other images" bash -c "! cmp -s '$WORK/c1/sub-0001/anat/sub-0001_T1w.nii.gz' '$WORK/c4/sub-0001/anat/sub-0001_T1w.nii.gz'"

# ---- pack: every site onto one grid --------------------------------------------------------
# 8 mm divides every site's field of view, so the sites come out alike without --shape.
"$DF" pack --manifest "$WORK/c1/subjects.csv" --out "$WORK/p1" --reorient --spacing 8 --quiet >"$WORK/p1.log" 2>&1
check "pack --reorient --spacing 8 without --shape: every sample 24x27x24" grep -q '12 samples of shape (C,D,H,W) = (1,24,27,24)' "$WORK/p1.log" || cat "$WORK/p1.log"
mpi 2 "$DF" pack --manifest "$WORK/c1/subjects.csv" --out "$WORK/p2" --reorient --spacing 6 --shape 30,34,30 --normalize zscore --quiet >"$WORK/p2.log" 2>&1
check "pack --spacing 6 --shape 30,34,30 (2 ranks)" grep -q '12 samples of shape (C,D,H,W) = (1,30,34,30).*columns age (continuous) sex (categorical) site (categorical)' "$WORK/p2.log" || cat "$WORK/p2.log"

# ---- the columns ----------------------------------------------------------------------------
# 2000 subjects at scale 0.05 (20 mm voxels: the draws are what is checked) give the
# proportions to about +-0.02 (binomial sd at n = 1000 per label <= 0.016); the tolerances
# are 0.05, and 0.04 for the correlation of age with the label (sd ~0.01).
"$DF" synth brain "${G[@]}" --scale 0.05 --n 2000 --seed 3 --out "$WORK/k1" >/dev/null 2>&1
"$DF" synth brain "${G[@]}" --scale 0.05 --n 2000 --seed 3 --sites 4 --site-rho 0.9 --out "$WORK/k2" >/dev/null 2>&1
columns() {  # FILE K RHO: checks, prints what it measured
    awk -F'\t' -v K="$2" -v rho="$3" '
        NR > 1 { n++; y = $2; a = $3; ny[y]++; sa += a; saa += a * a; sy += y; say += a * y; m += $4 == "M"
                 cnt[y, $5]++; if (a < 20 || a >= 80.05) bad = "age " a }
        function near(x, want, tol) { if (x < want - tol || x > want + tol) bad = bad sprintf(" %.3f (expected %.3f)", x, want) }
        END { r = (say / n - sa / n * sy / n) / sqrt((saa / n - (sa / n) ^ 2) * (sy / n - (sy / n) ^ 2))
              printf "  labels %d/%d, corr(age, label) %.3f, male %.3f, P(site | label 0):", ny[0], ny[1], r, m / n
              for (k = 0; k < K; k++) printf " %.3f", cnt[0, k] / ny[0]
              printf ", P(site | label 1):"; for (k = 0; k < K; k++) printf " %.3f", cnt[1, k] / ny[1]; print ""
              if (ny[0] != n / 2) bad = bad " unbalanced labels"
              near(r, 0.756, 0.04); near(m / n, 0.5, 0.05)
              for (k = 0; k < K; k++) {
                  p0 = rho < 0 ? (K - k) / (K * (K + 1) / 2) : (k == 0 ? rho : (1 - rho) / (K - 1))
                  p1 = rho < 0 ? (k + 1) / (K * (K + 1) / 2) : (k == K - 1 ? rho : (1 - rho) / (K - 1))
                  near(cnt[0, k] / ny[0], p0, 0.05); near(cnt[1, k] / ny[1], p1, 0.05) }
              if (bad != "") { print "  off:" bad; exit 1 } }' "$1"
}
check "columns: balanced labels, age ~ label (corr 0.756), sex 1/2, P(site | label) the ramp 1/2 1/3 1/6" columns "$WORK/k1/participants.tsv" 3 -1
check "columns with --sites 4 --site-rho 0.9: the label's own site 90%" columns "$WORK/k2/participants.tsv" 4 0.9

# ---- the label effect is in label_region.nii.gz ---------------------------------------------
# Counterfactual pairs: --effect-label 0 and 1 with one seed differ by the label effect alone
# (same draws, same noise). One region only, the left hippocampus (AAL 37), so that a
# left-right flip in some site's affine would show. Packed at 4 mm with the region mask.
values() { h5dump -d images -w 0 "$1" | sed -n 's/^ *([0-9,]*): //p' | tr ',' '\n' | tr -d ' ' | grep .; }
effect_map() {  # TAG N SITES SYNTH-OPTIONS...: $WORK/TAG.txt, per subject: mean |difference|
    # inside the region and outside it, their ratio, and the distance (mm) from the region's
    # centroid to the |difference|-weighted centroid
    local tag=$1 n=$2 sites=$3; shift 3
    local E=("${Q[@]}" --regions 37 --n $n --sites $sites --seed 5 "$@") P=(--reorient --spacing 4 --shape 48,54,48 --quiet) x
    for x in 0 1; do
        "$DF" synth brain "${E[@]}" --effect-label $x --out "$WORK/$tag$x" >/dev/null 2>&1
        "$DF" pack --manifest "$WORK/$tag$x/subjects.csv" --out "$WORK/p$tag$x" "${P[@]}" >/dev/null
        values "$WORK/p$tag$x/shard-00000.h5" >"$WORK/v$x.txt"
    done
    check "$tag: the counterfactual pair has the same columns, and $sites sites" bash -c "cmp -s '$WORK/${tag}0/participants.tsv' \
        '$WORK/${tag}1/participants.tsv' && [ \$(cut -f5 '$WORK/${tag}0/participants.tsv' | tail -n +2 | sort -u | wc -l) = $sites ]"
    printf 'path,label\nlabel_region.nii.gz,0\n' >"$WORK/${tag}0/region.csv"
    "$DF" pack --manifest "$WORK/${tag}0/region.csv" --out "$WORK/pr$tag" "${P[@]}" >/dev/null
    values "$WORK/pr$tag/shard-00000.h5" >"$WORK/r.txt"
    awk -v V=124416 -v nx=48 -v ny=54 -v mm=4 '
        function x(v) { return v % nx } function y(v) { return int(v / nx) % ny } function z(v) { return int(v / (nx * ny)) }
        FILENAME == ARGV[1] { R[FNR - 1] = $1; if ($1 >= 0.5) { nin++; cx += x(FNR - 1); cy += y(FNR - 1); cz += z(FNR - 1) }; next }
        FILENAME == ARGV[2] { A[FNR - 1] = $1; next }
        { i = FNR - 1; s = int(i / V); v = i % V; d = $1 - A[i]; if (d < 0) d = -d
          if (R[v] >= 0.5) di[s] += d; else dout[s] += d
          wx[s] += d * x(v); wy[s] += d * y(v); wz[s] += d * z(v); tot[s] += d; ns = s + 1 }
        END { cx /= nin; cy /= nin; cz /= nin
              for (s = 0; s < ns; s++) {
                  mi = di[s] / nin; mo = dout[s] / (V - nin)
                  dist = mm * sqrt((wx[s] / tot[s] - cx) ^ 2 + (wy[s] / tot[s] - cy) ^ 2 + (wz[s] / tot[s] - cz) ^ 2)
                  printf "%d %.3f %.5f %.0f %.1f\n", s, mi, mo, (mo > 0 ? mi / mo : 1e9), dist } }' \
        "$WORK/r.txt" "$WORK/v0.txt" "$WORK/v1.txt" >"$WORK/$tag.txt"
    echo "  $tag: subject, mean |difference| inside, outside, ratio, centroid distance (mm):"
    sed 's/^/    /' "$WORK/$tag.txt"
}
# Deformed as usual. Measured (seed 5): inside 69-161, outside 0.08-0.18, ratio 380-1100,
# distance 3.6-9.6 mm: the difference follows the subject's pose and deformation (~6 mm RMS
# in 3-D), so part of it lands beside the template-space mask. Thresholds: ratio > 50 (the
# mask is 0.1% of the volume), distance < 20 mm (the right hippocampus, where a left-right
# flip would put it, is 54 mm away), and a difference at all (inside > 10).
effect_map deformed 6 3
check "deformed: the label effect inside the region (ratio > 50, centroid within 20 mm), every subject" \
    awk '!($2 > 10 && $4 > 50 && $5 < 20) { bad = 1 } END { exit bad || NR != 6 }' "$WORK/deformed.txt"
# Undeformed (--deform 0: no pose or warp) and unaged (no ventricle widening), all 6 sites
# (--site-rho 1/6: uniform; seed 5 covers them in 12 subjects): the template's
# geometry but for the sex's head size (+-2.5%, ~1 mm here), so every site's affine and pack's
# reorientation must put the difference on the mask. Measured: 0.6-2.0 mm (the head size:
# ~0.7 mm for women, ~1.7 mm for men), ratio 1100-2800. Threshold: one 4 mm voxel.
effect_map undeformed 12 6 --deform 0 --age-effect 0 --site-rho 0.1667
check "undeformed: the difference's centroid within 4 mm of the region's, every subject and site" \
    awk '!($2 > 10 && $4 > 50 && $5 < 4) { bad = 1 } END { exit bad || NR != 12 }' "$WORK/undeformed.txt"

# ---- a short training run learns the label effect ---------------------------------------------
# The label effect alone: no ageing in the images and sites independent of the label
# (--site-rho 1/3 with 3 sites), the strongest effect (--label-effect 1) in the default
# medial temporal regions. 240 subjects, 8 mm, 60 for validation.
"$DF" synth brain "${Q[@]}" --n 240 --seed 5 --label-effect 1 --age-effect 0 --site-rho 0.3333 --out "$WORK/t" >/dev/null 2>&1
"$DF" pack --manifest "$WORK/t/subjects.csv" --out "$WORK/pt" --reorient --spacing 8 --shape 24,28,24 --normalize zscore --quiet >/dev/null
cat >"$WORK/t.ini" <<INI
[data]
source = $WORK/pt
val_fraction = 0.25
[train]
epochs = 30
batch = 16
optimizer = adam
lr = 0.002
weight_decay = 0.0001
schedule = cosine
seed = 1
out_dir = $WORK/run
[loss]
type = cross_entropy
[conv3d]
out = 8
kernel = 3
pad = 1
[batchnorm3d]
[relu]
[maxpool3d]
kernel = 2
[conv3d]
out = 16
kernel = 3
pad = 1
[batchnorm3d]
[relu]
[maxpool3d]
kernel = 2
[flatten]
[linear]
out = 2
INI
mpi 2 "$DF" train "$WORK/t.ini" >"$WORK/train.log" 2>&1
check "train on the packed cohort (2 ranks) exits 0" [ $? = 0 ] || tail "$WORK/train.log"
acc=$(sed -n 's/^final: train accuracy [0-9.]*, validation accuracy \([0-9.]*\).*/\1/p' "$WORK/train.log")
# Measured: 0.95. On 1 rank at 20 epochs, seeds 3-7 gave 0.63-1.0, and the 0.63 one 0.92 at 30
# epochs; the same run with --label-effect 0 (nothing to learn): 0.45. Chance is 0.5 with sd 0.065
# over 60 samples: > 0.7 is 3 sd above it, and well below what was measured.
check "the label effect is learnt: validation accuracy ${acc:-none} > 0.7" awk -v a="${acc:-0}" 'BEGIN { exit !(a > 0.7) }'

# ---- the whole path, BIDS in: pack --bids, MDN with the dCor report, on 2 ranks ----------------------
"$DF" pack --bids "$WORK/t" --label label --confounders age,sex,site --reorient --spacing 8 --shape 24,28,24 --normalize zscore \
    --out "$WORK/pb" --quiet >"$WORK/pb.log" 2>&1
check "pack --bids of the cohort: the manifest's samples, with each one's source geometry" bash -c "grep -q '240 samples of shape (C,D,H,W) = (1,24,28,24)' '$WORK/pb.log' &&
    '$DF' info '$WORK/pb/shard-00000.h5' --json | grep -q '\"geometry\": true'"
mpi 2 "$DF" train "$top_srcdir/pipelines/brain-mdn.ini" --set "data.source=$WORK/pb" --set "train.out_dir=$WORK/mdn" --set train.epochs=2 \
    --quiet >"$WORK/mdn.log" 2>&1
check "train with MDN on it (2 ranks): dCor of age, site and sex reported" bash -c "grep -q '^final:' '$WORK/mdn.log' &&
    [ \"\$(grep ',fc1_relu,[a-z]*,all,' '$WORK/mdn/dcor.csv' | cut -d, -f1,3 | tr '\n' ' ')\" = '2,age 2,site 2,sex ' ]"

# ---- the trained network looks where the label lives -------------------------------------------
# deconfound saliency over the packed cohort, the label regions (label_region.nii.gz, template
# space, placed on the packed grid by its affine) against their share of the volume. Measured
# with this network (0.95 accuracy): the regions hold 3.0 % of the mean |gradient| map in 0.4 %
# of the volume, 6.9 times their share (gradxinput 6.4, smoothgrad 4.0); the whole brain
# (ch2bet) 1.6 times its share. The same network after 1 epoch (chance accuracy) gives the
# regions 0.99 times their share: a map unrelated to the label. Asserted: the regions get more
# than 4 times their share, and more than twice the brain's own ratio per voxel.
ratio() { sed -n 's/^region .*(\([0-9.]*\) times its share)$/\1/p' "$1"; }
"$DF" saliency "$WORK/t.ini" --checkpoint "$WORK/run/checkpoint.h5" --data "$WORK/pt" --region "$WORK/t/label_region.nii.gz" \
    --out "$WORK/sal" --quiet >"$WORK/sal.log" 2>&1
"$DF" saliency "$WORK/t.ini" --checkpoint "$WORK/run/checkpoint.h5" --data "$WORK/pt" \
    --region "$TPL/ch2bet.nii.gz" --out "$WORK/salb" --quiet >"$WORK/salb.log" 2>&1
cat "$WORK/sal.log"
r=$(ratio "$WORK/sal.log") rb=$(ratio "$WORK/salb.log")
check "saliency: 240 maps in each subject's own space, the mean in the packed grid" bash -c "[ \$(ls '$WORK/sal' | wc -l) = 241 ] &&
    [ \"\$('$DF' info '$WORK/sal/sub-0003_saliency-grad.nii.gz' --json | grep -o '\"dims\": [^]]*]')\" = \"\$('$DF' info \$(ls '$WORK'/t/sub-0003/anat/*T1w.nii.gz) --json | grep -o '\"dims\": [^]]*]')\" ]"
check "saliency concentrates in the label regions: ${r:-none} x their share > 4" awk -v r="${r:-0}" 'BEGIN { exit !(r > 4) }'
check "... and per voxel more than twice the brain's ratio (${rb:-none})" awk -v r="${r:-0}" -v b="${rb:-9}" 'BEGIN { exit !(r > 2 * b) }'

# ---- bad input: status 2, one message naming the file, nothing left -------------------------
expect_fail() {  # NAME PATTERN OUT ARGS...
    local name=$1 pattern=$2 out=$3; shift 3
    "$DF" synth brain "$@" --out "$out" >"$WORK/out.txt" 2>"$WORK/err.txt"
    local status=$?
    if [ $status != 2 ]; then fail "$name: exit status $status, expected 2"; cat "$WORK/err.txt"; return; fi
    if ! grep -Eq -- "$pattern" "$WORK/err.txt" || [ "$(grep -c . "$WORK/err.txt")" != 1 ]; then
        fail "$name: expected one message matching /$pattern/:"; cat "$WORK/err.txt"; return; fi
    if [ "$out" != "$WORK/c1" ] && { [ -e "$out" ] || ls -a "$(dirname "$out")" | grep -q '\.tmp\.'; }; then
        fail "$name: left output behind"; return; fi
    pass "$name"
}
echo "not a volume" >"$WORK/bad.nii"
expect_fail "missing template" "synth brain: $WORK/none.nii.gz: cannot open" "$WORK/b1" --template "$WORK/none.nii.gz" --n 2
expect_fail "template that is no NIfTI file" "bad.nii: not a NIfTI file" "$WORK/b2" --template "$WORK/bad.nii" --n 2
expect_fail "a region the atlas lacks" "aal.nii.gz: region 999: no voxel of the atlas has this value" "$WORK/b3" "${Q[@]}" --regions 37,999 --n 2
expect_fail "existing folder" "c1: already exists" "$WORK/c1" "${Q[@]}" --n 2
expect_fail "--regions without --atlas" "--regions needs --atlas" "$WORK/b4" --template "$TPL/ch2bet.nii.gz" --regions 37
expect_fail "--scale out of range" "--scale 2: expected a number in" "$WORK/b5" "${G[@]}" --scale 2
finish
