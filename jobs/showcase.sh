#!/bin/sh
# showcase.sh: the main job. Trains the same 3D CNN twice on the synthetic MRI cohort, on
# RANKS ranks (default 2): once as is (pipelines/mdn-mri3d-baseline.ini) and once with
# Metadata Normalization removing age and site (pipelines/mdn-mri3d.ini), then prints
# validation accuracy and the bias-corrected dCor^2 between the learned fc1 features and each
# confounder, overall and within each class. Takes about 1.5 minutes on 2 cores.
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
