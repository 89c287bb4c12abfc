#!/usr/bin/env bash
# run.sh -- the Biased Fashion-MNIST study: baseline, EnD, MI and MDN (removing the colour) on
# colour-biased Fashion-MNIST with the ReBias SimpleConvNet (simpleconvnet.ini; README.md).
#
#   pipelines/bfmnist/run.sh [--quick] [--rho "0.99 0.997"] [--methods "baseline end"] [--epochs N]
#                            [--set section.key=value ...]
#
# Full protocol (default): rho = 0.99, 0.995, 0.997, 0.999; all 60 000 training images; the
# 10 000 test images at rho = 0.1; batch 256, Adam lr 1e-3, weight decay 1e-4, 80 epochs with
# the lr x 0.1 every 20 (EnD's reference protocol). --quick: rho = 0.997, the first 4 000
# training and 2 000 test images, batch 64, 2 epochs (about 12 minutes on 2 cores).
# --epochs N runs the first N epochs of the full protocol (the lr still steps every 20);
# --set passes a setting to every run (after the protocol's own).
#
# Environment: DECONFOUND (the binary; default ../../deconfound), OUT_DIR (runs and
# results.csv; default runs/bfmnist), RANKS (MPI ranks; default: the cores). Each run goes to
# OUT_DIR/<method>-rho<rho>/ and is skipped when its result.csv exists, so an interrupted
# study continues where it stopped. results.csv: method,rho,unbiased_acc,conflicting_acc,
# aligned_acc,dcor2_u (the last epoch's; dcor2_u: bias-corrected dCor^2 between the bottleneck
# `feat` and the colour over the test images; NA for a group without test images);
# results_by_class.csv: the same dCor^2 per class.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/bfmnist}
RANKS=${RANKS:-$(nproc)}
rhos="0.99 0.995 0.997 0.999"
methods="baseline end mi mdn"
quick=0 epochs="" extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; rhos="0.997" ;;
        --rho) rhos=$2; shift ;;
        --methods) methods=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --set) extra+=(--set "$2"); shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_choose method "baseline end mi mdn" $methods
mkdir -p "$OUT_DIR"
flags=$(study_mpirun_flags)

sets=()
if [ $quick = 1 ]; then
    sets=(--set data.n=4000 --set data.n_test=2000 --set train.batch=64 --set train.epochs=2 --set train.log_every=1000)
elif [ -n "$epochs" ]; then
    sets=(--set train.epochs="$epochs")
fi

# The experiment file of one method: the baseline's plus the method's section. The methods'
# settings are their references' defaults (docs/debias.md), chosen before any run.
config() {
    local m=$1 out=$2
    case $m in
        baseline) cp "$here/simpleconvnet.ini" "$out" ;;
        end) { cat "$here/simpleconvnet.ini"; printf '\n[debias]\nmethod = end\nlayer = feat\nbias = colour\nalpha = 0.1\nbeta = 0.1\n'; } >"$out" ;;
        mi) { cat "$here/simpleconvnet.ini"; printf '\n[debias]\nmethod = mi\nlayer = feat\nbias = colour\nlambda = 1\nestimator_steps = 40\n'; } >"$out" ;;
        # MDN on the pooled features, before the normalisation: the colour regressed out with the
        # label kept. Per global batch (a pseudo-inverse): over the whole training set the
        # colour and label columns are collinear where no image of some colour conflicts.
        mdn) sed 's/^name = pooled$/name = pooled\n[mdn]\nname = mdn\nremove = colour\nkeep = label\nkernel = batch/' \
                 "$here/simpleconvnet.ini" >"$out" ;;
    esac
}

# The last epoch's figures of a finished run, as a results.csv line.
result_line() {
    local m=$1 rho=$2 dir=$3
    local last
    last=$(grep '"epoch":' "$dir/metrics.json" | tail -1)
    # NA where the figure does not exist (JSON null: no test image in that group)
    field() { echo "$last" | grep -o "\"$1\": [-0-9.e+nul]*" | awk '{ print $2 == "null" ? "NA" : $2 }'; }
    local dcor
    dcor=$(tail -1 "$dir/dcor.json" | grep -o '"colour": {"dcor2_u": [-0-9.e+]*' | awk '{print $NF}')
    printf '%s,%s,%s,%s,%s,%s\n' "$m" "$rho" "$(field val_acc)" "$(field val_acc_conflicting)" "$(field val_acc_aligned)" "$dcor"
}

cpu=$(study_cpu)
echo "bfmnist: methods $methods, rho $rhos$([ $quick = 1 ] && echo ' (quick)'), $RANKS ranks, $cpu"
for rho in $rhos; do
    for m in $methods; do
        dir="$OUT_DIR/$m-rho$rho"
        if [ -s "$dir/result.csv" ]; then echo "$m rho $rho: done before ($dir/result.csv)"; continue; fi
        mkdir -p "$dir"
        config "$m" "$dir/config.ini"
        echo "$m rho $rho: training ($dir/train.log)"
        start=$(date +%s)
        if ! mpirun $flags -np "$RANKS" "$DF" train "$dir/config.ini" --set data.rho="$rho" "${sets[@]}" "${extra[@]}" \
             --set train.out_dir="$dir" >"$dir/train.log" 2>&1; then
            echo "run.sh: $m rho $rho failed; the end of $dir/train.log:" >&2
            tail -5 "$dir/train.log" >&2
            exit 1
        fi
        echo "  $(grep '^blas:' "$dir/train.log" | head -1); $(( $(date +%s) - start )) s"
        result_line "$m" "$rho" "$dir" | study_publish "$dir/result.csv"
        tail -1 "$dir/dcor.json" | grep -o '"by_class": \[[^]]*\]' | tr -d '"by_clas:[] ' | tr ',' '\n' |
            awk -v m="$m" -v r="$rho" '{ printf "%s,%s,%d,%s\n", m, r, NR - 1, $1 }' >"$dir/by_class.csv"
    done
done

# Every finished run's line (this invocation's and earlier ones'), written whole, atomically.
{
    echo "method,rho,unbiased_acc,conflicting_acc,aligned_acc,dcor2_u"
    for rho in 0.99 0.995 0.997 0.999; do
        for m in baseline end mi mdn; do
            if [ -s "$OUT_DIR/$m-rho$rho/result.csv" ]; then cat "$OUT_DIR/$m-rho$rho/result.csv"; fi
        done
    done
} | study_publish "$OUT_DIR/results.csv"
{
    echo "method,rho,class,dcor2_u"
    for f in "$OUT_DIR"/*-rho*/by_class.csv; do if [ -s "$f" ]; then cat "$f"; fi; done
} | study_publish "$OUT_DIR/results_by_class.csv"
echo
echo "$OUT_DIR/results.csv ($cpu; accuracies on the test images, dCor^2 of feat vs colour):"
column -t -s, "$OUT_DIR/results.csv"
