#!/usr/bin/env bash
# run.sh -- where MDN goes (issue 14): MDN after every convolution, as the MDN paper places
# it, against the showcase's placement after the last convolution and fc1, on the synthetic
# MRI cohort of ../mdn-mri3d.ini. Each variant is one way of estimating beta; README.md holds
# the measured table.
#
#   pipelines/mdn-placement/run.sh [--quick] [--variants "last every-batch-epoch"]
#                                  [--seeds "1 2"] [--epochs N] [--set section.key=value ...]
#
# Variants (placement-kernel[-eval beta][-global batch]):
#   last                    ../mdn-mri3d.ini: MDN after conv3 and fc1, dataset kernel,
#                           running beta (the showcase)
#   every-dataset           every.ini: MDN after conv1, conv2, conv3 and fc1, dataset kernel,
#                           running beta (momentum 0.1) for evaluation
#   every-dataset-epoch     the same, the evaluation beta fitted over the training split at
#                           each epoch's end (eval_beta = epoch)
#   every-batch             kernel = batch (least squares on each global batch), running beta
#   every-batch-epoch       kernel = batch, eval_beta = epoch
#   every-recursive         R-MDN (kernel = recursive, the reference's lambda 0.999)
#   every-penalty           PMDN (kernel = penalty, beta's Adam at the reference's lr 0.045)
#   every-dataset-b128      every-dataset at global batch 128 (4 times the samples per beta)
#   every-pooled            every-batch-epoch with one beta per channel after the three
#                           convolutions (pool = channel; fc1's beta per feature as before)
# What a linear MDN leaves behind in the showcase's placement (README, "Non-linear effects"):
#   last-epoch              last, the evaluation beta fitted over the training split at each
#                           epoch's end (eval_beta = epoch)
#   last-spline             last, age removed as a natural cubic spline of 4 columns
#                           (remove = age:spline4, site) instead of a line
#   last-spline-epoch       both
#   last-epoch-eval         last, the evaluation beta fitted at each epoch's end to the
#                           features evaluation sees (eval_beta = epoch_eval)
#   last-spline-epoch-eval  last-spline with eval_beta = epoch_eval
#   every-pooled-eval       every-pooled with eval_beta = epoch_eval
#   every-pooled-spline-eval  the same removing age:spline4 and site in all four MDN layers
# A slope of age per site (remove = age|site, site: docs/mdn.md), in every-pooled:
#   every-pooled-agesite    the cohort's site scales the image, age's blob with it
#   every-pooled-agesite-post  the same with fc1's MDN after its ReLU (every-post.ini): the
#                           features fc2 sees are MDN's output
# Against overfitting (README, "Why age stays in class 1"): the training augmentation of a
# random shift of up to 2 voxels per axis ([data] shift = 2), in the placement that misses
# the target without it, in its twin without the slope per site, and in the showcase:
#   every-pooled-agesite-shift, every-pooled-shift, last-shift
# MDN after fc1 alone (fc.ini, dataset kernel, running beta), without and with the shift:
#   fc, fc-shift
# Against the sites' intensity and noise differences (README, "Site on fresh volumes"): the
# shift, and every volume scaled by U(0.9, 1.1), shifted by U(-0.1, 0.1) and given Gaussian
# noise of a level drawn from U(0, 0.1) ([data] intensity_scale, intensity_shift, noise):
#   every-pooled-agesite-aug, fc-aug
# and with the evaluation beta fitted to the features evaluation computes (eval_beta =
# epoch_eval; README, "Site on fresh volumes"), in every MDN layer or in fc1's alone (the
# convolutions' refitted in training mode, eval_beta = epoch, as in the variants above):
#   every-pooled-agesite-aug-eval, every-pooled-agesite-aug-fc1eval
# and, trained the same way, the showcase's placement and MDN after fc1 alone refitted so:
#   last-aug, fc-aug-eval
# All at global batch 32 unless named, 2 ranks (RANKS), 20 epochs, Adam 1e-3 with a cosine
# schedule, the dCor report every 2 epochs and the train/eval gap every epoch.
#
# Full protocol (default): seeds 1 2 (the training seed: initialisation and batch order; the
# cohort is the same), all variants, 20 epochs (about 110 minutes on 2 cores). --quick: seed
# 1, 8 epochs, the variants last every-dataset every-batch-epoch every-pooled last-epoch-eval
# last-spline-epoch-eval every-pooled-agesite-shift last-shift (about 5 minutes on 2 cores).
# --epochs changes the epochs; --set passes a setting to every run.
#
# Environment: DECONFOUND (the binary; default ../../deconfound), OUT_DIR (runs and
# results.csv; default runs/mdn-placement), RANKS (MPI ranks; default: the cores). A run goes
# to OUT_DIR/<variant>-s<seed>/ and is not trained again once it has all its epochs (its
# result.csv line is made again from its metrics.json and dcor.json).
# results.csv: variant,placement,kernel,eval_beta,batch,ranks,val_acc,val_acc_last5,train_acc,
# dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1,dcor2_u_max,
# gap_first_mdn -- means over the seeds run: accuracies in % at the last epoch (and
# validation's mean over the last 5 epochs: it swings from epoch to epoch); per-class
# bias-corrected dCor^2 of the fc1 features (after the ReLU) with age and with site (one-hot)
# on the validation split at the end; dcor2_u_max the largest of those four over the reports
# of the second half of training; gap_first_mdn the first MDN layer's own train/eval gap at
# the last epoch (run/gap.h); seeds, how many runs the means are over. results_by_seed.csv:
# every run, with its seed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/mdn-placement}
RANKS=${RANKS:-$(nproc)}
all_variants="last every-dataset every-dataset-epoch every-batch every-batch-epoch every-recursive every-penalty every-dataset-b128 every-pooled"
all_variants="$all_variants last-epoch last-spline last-spline-epoch last-epoch-eval last-spline-epoch-eval"
all_variants="$all_variants every-pooled-eval every-pooled-spline-eval every-pooled-agesite every-pooled-agesite-post"
all_variants="$all_variants every-pooled-agesite-shift every-pooled-shift last-shift fc fc-shift"
all_variants="$all_variants every-pooled-agesite-aug fc-aug every-pooled-agesite-aug-eval every-pooled-agesite-aug-fc1eval last-aug fc-aug-eval"
variants=$all_variants seeds="1 2" epochs=20 extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) seeds="1" epochs=8
                 variants="last every-dataset every-batch-epoch every-pooled last-epoch-eval last-spline-epoch-eval every-pooled-agesite-shift last-shift" ;;
        --variants) variants=$2; shift ;;
        --seeds) seeds=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --set) extra+=(--set "$2"); shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_choose variant "$all_variants" $variants
study_counts "--seeds, --epochs" $seeds $epochs
mkdir -p "$OUT_DIR"
flags=$(study_mpirun_flags)

# The config and settings of a variant, as "placement kernel eval_beta batch" and --set args.
describe() {
    case $1 in
        last) echo "last dataset running 32" ;;
        last-epoch) echo "last dataset epoch 32" ;;
        last-spline) echo "last-spline dataset running 32" ;;
        last-spline-epoch) echo "last-spline dataset epoch 32" ;;
        last-epoch-eval) echo "last dataset epoch_eval 32" ;;
        last-spline-epoch-eval) echo "last-spline dataset epoch_eval 32" ;;
        every-dataset) echo "every dataset running 32" ;;
        every-dataset-epoch) echo "every dataset epoch 32" ;;
        every-batch) echo "every batch running 32" ;;
        every-batch-epoch) echo "every batch epoch 32" ;;
        every-recursive) echo "every recursive - 32" ;;
        every-penalty) echo "every penalty - 32" ;;
        every-dataset-b128) echo "every dataset running 128" ;;
        every-pooled) echo "every-pooled batch epoch 32" ;;
        every-pooled-eval) echo "every-pooled batch epoch_eval 32" ;;
        every-pooled-spline-eval) echo "every-pooled-spline batch epoch_eval 32" ;;
        every-pooled-agesite) echo "every-pooled-agesite batch epoch 32" ;;
        every-pooled-agesite-post) echo "every-pooled-agesite-post batch epoch 32" ;;
        every-pooled-agesite-shift|every-pooled-agesite-aug) echo "every-pooled-agesite batch epoch 32" ;;
        every-pooled-agesite-aug-eval) echo "every-pooled-agesite batch epoch_eval 32" ;;
        every-pooled-agesite-aug-fc1eval) echo "every-pooled-agesite batch epoch/fc1:epoch_eval 32" ;;
        every-pooled-shift) echo "every-pooled batch epoch 32" ;;
        last-shift|last-aug) echo "last dataset running 32" ;;
        fc|fc-shift|fc-aug) echo "fc dataset running 32" ;;
        fc-aug-eval) echo "fc dataset epoch_eval 32" ;;
    esac
}
settings() {
    local placement kernel eval_beta batch l
    read -r placement kernel eval_beta batch <<<"$(describe "$1")"
    echo "--set train.batch=$batch"
    case $1 in
        *-shift) echo "--set data.shift=2" ;;
        *-aug|*-aug-eval|*-aug-fc1eval) echo "--set data.shift=2 --set data.intensity_scale=0.1 --set data.intensity_shift=0.1 --set data.noise=0.1" ;;
    esac
    case $placement in
        fc)  # fc.ini's one MDN layer, with its defaults but the evaluation beta
            [ "$eval_beta" = running ] || echo "--set mdn_fc1.eval_beta=$eval_beta"
            return 0 ;;
        last*)  # the showcase's two MDN layers
            for l in mdn_conv3 mdn_fc1; do
                [ "$eval_beta" = running ] || echo "--set $l.eval_beta=$eval_beta"
                [ "$placement" = last-spline ] && echo "--set $l.remove=age:spline4,site"
            done
            return 0 ;;
    esac
    case $placement in every-pooled*) echo "--set mdn_conv1.pool=channel --set mdn_conv2.pool=channel --set mdn_conv3.pool=channel" ;; esac
    for l in mdn_conv1 mdn_conv2 mdn_conv3 mdn_fc1; do
        echo "--set $l.kernel=$kernel"
        [ "$placement" = every-pooled-spline ] && echo "--set $l.remove=age:spline4,site"
        case $placement in every-pooled-agesite*) echo "--set $l.remove=age|site,site" ;; esac
        case $eval_beta in
            -) ;;
            epoch/fc1:epoch_eval) [ $l = mdn_fc1 ] && echo "--set $l.eval_beta=epoch_eval" || echo "--set $l.eval_beta=epoch" ;;
            *) echo "--set $l.eval_beta=$eval_beta" ;;
        esac
    done
}

# One run: train; its checkpoint.h5 says it finished.
run_one() {
    local v=$1 s=$2 dir=$3 cfg=$here/every.ini
    case $v in last*) cfg=$here/../mdn-mri3d.ini ;; fc*) cfg=$here/fc.ini ;; *-post) cfg=$here/every-post.ini ;; esac
    mkdir -p "$dir"
    # shellcheck disable=SC2046
    if ! mpirun $flags -np "$RANKS" "$DF" train "$cfg" $(settings "$v") --set train.seed="$s" --set train.epochs="$epochs" \
         --set train.dcor_every=2 --set train.dcor_columns=age,site --set train.train_eval_gap=true \
         "${extra[@]}" --set train.out_dir="$dir" >"$dir/train.log" 2>&1; then
        echo "run.sh: $v seed $s failed; the end of $dir/train.log:" >&2
        tail -5 "$dir/train.log" >&2
        exit 1
    fi
}

# A finished run's result.csv line, from its metrics.json and dcor.json.
summarise() {
    local v=$1 s=$2 dir=$3 accs dcor gap placement kernel eval_beta batch
    accs=$(study_accuracies "$dir")  # val,val_last5,train
    gap=$(grep '"epoch": ' "$dir/metrics.json" | tail -1 | grep -o '"train_eval_gap(mdn_[a-z0-9]*)": [-0-9.e+]*' | head -1 |
        awk '{ printf "%.3f", $2 }')
    dcor=$(study_dcor_by_class "$dir" "$((epochs / 2))")
    read -r placement kernel eval_beta batch <<<"$(describe "$v")"
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$v" "$placement" "$kernel" "$eval_beta" "$batch" "$RANKS" "$s" "$accs" \
        "$dcor" "$gap" | study_publish "$dir/result.csv"
}

cpu=$(study_cpu)
echo "mdn-placement: variants $variants; seeds $seeds; $epochs epochs; $RANKS ranks; $cpu"
for s in $seeds; do
    for v in $variants; do
        dir="$OUT_DIR/$v-s$s"
        if study_finished "$dir" "$epochs"; then
            summarise "$v" "$s" "$dir"
            echo "$v seed $s: done before ($dir)"
            continue
        fi
        start=$(date +%s)
        run_one "$v" "$s" "$dir"
        summarise "$v" "$s" "$dir"
        echo "$v seed $s: $(cut -d, -f8- "$dir/result.csv") ($(( $(date +%s) - start )) s; $(grep -m1 '^blas:' "$dir/train.log"))"
    done
done

# Every finished run (this invocation's and earlier ones'), then the means over seeds; each
# file written whole, atomically.
cols="val_acc,val_acc_last5,train_acc,dcor2_age_class0,dcor2_age_class1,dcor2_site_class0,dcor2_site_class1,dcor2_u_max,gap_first_mdn"
{
    echo "variant,placement,kernel,eval_beta,batch,ranks,seed,$cols"
    for v in $all_variants; do
        study_cat "$OUT_DIR/$v"-s[0-9]*/result.csv
    done
} | study_publish "$OUT_DIR/results_by_seed.csv"
awk -F, -v cols="$cols" 'NR == 1 { print "variant,placement,kernel,eval_beta,batch,ranks," cols ",seeds"; next }
         { k = $1 "," $2 "," $3 "," $4 "," $5 "," $6; if (!(k in n)) order[++K] = k; n[k]++; for (c = 8; c <= 16; c++) sum[k, c] += $c }
         END { for (i = 1; i <= K; i++) { k = order[i]; printf "%s", k
                   for (c = 8; c <= 16; c++) printf (c <= 10 ? ",%.2f" : c == 16 ? ",%.3f" : ",%.4f"), sum[k, c] / n[k]; print "," n[k] } }' \
    "$OUT_DIR/results_by_seed.csv" | study_publish "$OUT_DIR/results.csv"
echo
echo "$OUT_DIR/results.csv ($cpu; means over the seeds run):"
column -t -s, "$OUT_DIR/results.csv"
