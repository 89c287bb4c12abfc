#!/bin/sh
# showcase.sh: the main job. Trains the same 3D CNN twice on the synthetic MRI cohort, on
# RANKS ranks (default 2): once as is (pipelines/mdn-mri3d-baseline.ini) and once with
# Metadata Normalization removing age and site (pipelines/mdn-mri3d.ini), then prints
# validation accuracy and the bias-corrected dCor^2 between the learned fc1 features and each
# confounder, overall and within each class. Act 2, when Debian's mricron-data is installed:
# a synthetic brain cohort made from its Colin27 template (deconfound synth brain), read in
# from its BIDS layout (pack --bids: reoriented, resampled, cropped), the same pair of runs
# (pipelines/brain-baseline.ini, brain-mdn.ini), where each one's saliency lies (against the
# regions that carry the label), and the two compared. About 3 minutes on 2 cores in all.
#   jobs/showcase.sh [-n RANKS] [OUT_DIR]      (OUT_DIR default: runs/showcase)
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
np=2
if [ "${1:-}" = "-n" ]; then np=$2; shift 2; fi
case "${1:-}" in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
out=${1:-runs/showcase}
for run in baseline mdn; do
    cfg=$here/pipelines/mdn-mri3d.ini
    [ $run = baseline ] && cfg=$here/pipelines/mdn-mri3d-baseline.ini
    echo "== $run: $(basename "$cfg"), $np ranks"
    "$here/jobs/local.sh" -n "$np" train "$cfg" --set "train.out_dir=$out/$run" | grep -E '^(data|run|epoch [0-9]+/[0-9]+ done|final)'
done
field() {  # field RUN COLUMN: "all class0 class1" from the last line of dcor.json
    tail -n 1 "$out/$1/dcor.json" | sed -n "s/.*\"$2\": {\"dcor2_u\": \([^,]*\), \"by_class\": \[\([^]]*\)\].*/\1 \2/p" | tr -d ','
}
acc() { grep -o '"val_acc": [0-9.]*' "$out/$1/metrics.json" | tail -n 1 | awk '{printf "%.1f %%", 100 * $2}'; }
echo
echo "Validation set: accuracy, and dCor^2 (bias-corrected) of fc1 features vs each confounder"
echo "(all / class 0 / class 1; 0 = nothing of it left; sex has no effect on the images: a control)"
printf '%-10s %-10s %-26s %-26s %-26s\n' run accuracy age site sex
for run in baseline mdn; do
    printf '%-10s %-10s' "$run" "$(acc $run)"
    for col in age site sex; do printf ' %-26s' "$(field $run $col | awk '{printf "%.3f / %.3f / %.3f", $1, $2, $3}')"; done
    printf '\n'
done

# ---- act 2: a brain cohort, BIDS in ------------------------------------------------------------
tpl=/usr/share/mricron/templates
DF=${DECONFOUND:-$here/deconfound}
if [ ! -f "$tpl/ch2.nii.gz" ]; then
    echo
    echo "(act 2, the brain cohort, needs Debian's mricron-data: apt-get install mricron-data)"
    exit 0
fi
echo
echo "== act 2: 640 synthetic subjects from Debian's Colin27 template, in BIDS layout"
rm -rf "$out/brain-bids" "$out/brain-packed" "$out"/brain-*-saliency
"$DF" synth brain --template "$tpl/ch2.nii.gz" --brain-mask "$tpl/ch2bet.nii.gz" --atlas "$tpl/aal.nii.gz" --scale 0.25 \
    --n 640 --seed 7 --out "$out/brain-bids" --quiet
"$DF" pack --bids "$out/brain-bids" --label label --confounders age,sex,site --reorient --spacing 8 --shape 24,28,24 \
    --normalize zscore --out "$out/brain-packed" --quiet
for run in baseline mdn; do
    cfg=$here/pipelines/brain-$run.ini
    echo "== brain $run: $(basename "$cfg"), $np ranks"
    "$here/jobs/local.sh" -n "$np" train "$cfg" --set "data.source=$out/brain-packed" --set "train.out_dir=$out/brain-$run" --quiet |
        grep -E '^(final)'
    "$DF" saliency "$cfg" --set "data.source=$out/brain-packed" --checkpoint "$out/brain-$run/checkpoint.h5" \
        --data "$out/brain-packed" --region "$out/brain-bids/label_region.nii.gz" --out "$out/brain-$run-saliency" --quiet |
        sed -n 's/^region .*: \(.*\)/saliency in the label regions (medial temporal lobes): \1/p'
done
echo
"$DF" compare "$out/brain-baseline" "$out/brain-mdn" | sed '/^(No paired test/,$d'
