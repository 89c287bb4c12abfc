#!/usr/bin/env bash
# run.sh -- the synthetic brain cohort end to end (issue 17): `deconfound synth brain` from
# Debian's Colin27 template (mricron-data), read in from its BIDS layout (`pack --bids`:
# reoriented, resampled to 8 mm, cropped to 24x28x24), then two arms trained on it
#   baseline   the small 3D CNN as is                                  ../brain-baseline.ini
#   mdn        the same with MDN after fc1 removing age and site        ../brain-mdn.ini
# each compared (`deconfound compare`: accuracy, balanced and worst-group accuracy, AUC, dCor²
# of the fc1 features with each confounder, a paired test over the seeds), and asked where it
# looks (`deconfound saliency --region`: the share of its mean |gradient| map inside the
# regions that carry the label, against their share of the volume).
#
#   pipelines/brain/run.sh [--quick] [--seeds "1 2 3"] [--n N] [--epochs E]
#
# Full protocol (default): seeds 1 2 3 (the training seed; the cohort is fixed: seed 7),
# 640 subjects at scale 0.25, 30 epochs (about 6 minutes on 2 cores). --quick: seed 1 (about
# 2.5 minutes).
#
# Environment: DECONFOUND (the binary; default ../../deconfound), OUT_DIR (runs and
# results.csv; default runs/brain), RANKS (MPI ranks; default: the cores). The cohort goes to
# OUT_DIR/data/ (made once), a run to OUT_DIR/<arm>-s<seed>/ (a run directory), its maps to
# OUT_DIR/<arm>-s<seed>-saliency/.
# results.csv: method,runs, then mean and sd over the seeds of val_acc, val_bal_acc,
# val_worst_group_acc, val_auc, dcor2[age], dcor2[site], dcor2[sex] (as `deconfound compare
# --format csv` writes them) and saliency_in_regions (the regions' share of the mean map over
# their share of the volume; 1 = no more than anywhere else). results_by_seed.csv: every run.
# compare.md: the comparison with its paired test.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/brain}
RANKS=${RANKS:-$(nproc)}
tpl=/usr/share/mricron/templates
seeds="1 2 3" n=640 epochs=30
while [ $# -gt 0 ]; do
    case $1 in
        --quick) seeds="1" ;;
        --seeds) seeds=$2; shift ;;
        --n) n=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_counts "--seeds" $seeds
study_positive "--n, --epochs" "$n" "$epochs"
[ -f "$tpl/ch2.nii.gz" ] || study_fail "$tpl/ch2.nii.gz not found: apt-get install mricron-data"
mkdir -p "$OUT_DIR/data"
flags=$(study_mpirun_flags)
echo "brain study: $(study_cpu), $RANKS ranks; $n subjects, seeds $seeds, $epochs epochs; out $OUT_DIR"

# the cohort, once
data=$OUT_DIR/data
if [ ! -d "$data/packed-$n" ]; then
    rm -rf "$data/bids-$n"
    mpirun $flags -np "$RANKS" "$DF" synth brain --template "$tpl/ch2.nii.gz" --brain-mask "$tpl/ch2bet.nii.gz" \
        --atlas "$tpl/aal.nii.gz" --scale 0.25 --n "$n" --seed 7 --out "$data/bids-$n" --quiet
    mpirun $flags -np "$RANKS" "$DF" pack --bids "$data/bids-$n" --label label --confounders age,sex,site --reorient \
        --spacing 8 --shape 24,28,24 --normalize zscore --out "$data/packed-$n" --quiet
fi

# the runs, and where each looks
for arm in baseline mdn; do
    for s in $seeds; do
        run=$OUT_DIR/$arm-s$s cfg=$top/pipelines/brain-$arm.ini
        if ! grep -q '"status": "finished"' "$run/run.json" 2>/dev/null; then
            echo "== $arm, seed $s"
            mpirun $flags -np "$RANKS" "$DF" train "$cfg" --set "data.source=$data/packed-$n" --set "train.out_dir=$run" \
                --set "train.seed=$s" --set "train.epochs=$epochs" --quiet | grep '^final'
        fi
        if [ ! -s "$run/saliency.txt" ]; then
            rm -rf "$run-saliency"
            mpirun $flags -np "$RANKS" "$DF" saliency "$cfg" --set "data.source=$data/packed-$n" --checkpoint "$run/checkpoint.h5" \
                --data "$data/packed-$n" --region "$data/bids-$n/label_region.nii.gz" --out "$run-saliency" --quiet |
                grep '^region' | study_publish "$run/saliency.txt"
        fi
    done
done

# the tables
runs=()
for arm in baseline mdn; do for s in $seeds; do runs+=("$OUT_DIR/$arm-s$s"); done; done
"$DF" compare "${runs[@]}" --format markdown --out "$OUT_DIR/compare.md"
ratio() { sed -n 's/^region .*(\([0-9.]*\) times its share)$/\1/p' "$1/saliency.txt"; }
{
    "$DF" compare "${runs[@]}" --format csv | awk -F, -v OFS=, 'NR == 1 { print $0, "saliency_in_regions_mean,saliency_in_regions_sd"; next } { print }' |
        while IFS= read -r line; do
            case $line in
                method,*) echo "$line" ;;
                *) arm=baseline; case $line in *mdn*) arm=mdn ;; esac
                   vals=$(for s in $seeds; do ratio "$OUT_DIR/$arm-s$s"; done)
                   echo "$line,$(echo "$vals" | awk '{ s += $1; q += $1 * $1; n++ } END { m = s / n; sd = n > 1 ? sqrt((q - n * m * m) / (n - 1)) : 0; printf "%.3f,%s", m, (n > 1 ? sprintf("%.3f", sd) : "") }')" ;;
            esac
        done
} | study_publish "$OUT_DIR/results.csv"
# last MDIR NAME: the last epoch's value of column NAME of a run's metrics.csv
last() { awk -F, -v k="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == k) c = i; next } { v = $c } END { print v }' "$1/metrics.csv"; }
{
    echo "arm,seed,val_acc,val_bal_acc,val_worst_group_acc,val_auc,saliency_in_regions"
    for arm in baseline mdn; do
        for s in $seeds; do
            r=$OUT_DIR/$arm-s$s
            echo "$arm,$s,$(last "$r" val_acc),$(last "$r" val_bal_acc),$(last "$r" val_worst_group_acc),$(last "$r" val_auc),$(ratio "$r")"
        done
    done
} | study_publish "$OUT_DIR/results_by_seed.csv"
cat "$OUT_DIR/compare.md"
echo
echo "saliency in the label regions (times their share of the volume), by seed:"
cat "$OUT_DIR/results_by_seed.csv"
