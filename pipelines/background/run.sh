#!/usr/bin/env bash
# run.sh -- the background study (issue 13): how much a network's answer follows the
# background rather than the object, and how much CLAD, EnD and MDN take away, on synthetic
# MRI whose site imprints the background (mri.ini) and on synthetic video whose scene is
# tied to the action (../video.ini, rho = 0.9 and 0.99). README.md holds the measured tables.
#
#   pipelines/background/run.sh [--quick] [--datasets "mri video-0.9"] [--methods "baseline clad"]
#                               [--seeds "1 2"] [--n N] [--n-test N] [--epochs N]
#                               [--set section.key=value ...]
#
# Each run trains on the generator's data (its training split; the validation split gives
# the dCor report), then the trained network is evaluated on the four Background Challenge
# variants (deconfound variants) of a test set drawn from the same generator with another
# seed: original, mixed-same, mixed-rand, only-bg. BG-gap = mixed-same - mixed-rand accuracy.
# Methods: baseline; clad (lambda 1, temperature 0.2, 32 negatives per class: the reference's);
# end (bias = the background class: site / scene; alpha = beta = 0.1, the reference's); mdn
# (an [mdn] layer before the classifier removing the site / scene, label kept).
#
# Full protocol (default): seeds 1 2 3 (the training seed and the data seed), MRI 2048
# volumes of 32^3 for 20 epochs, video 2048 clips of 8x32x32 for 12 epochs, test sets of
# 1000 (77 minutes on 2 cores). --quick: seed 1, 1024 volumes/clips, 12 (MRI) and 8 (video)
# epochs, test sets of 400 (about 7 minutes). --n, --n-test and --epochs change the sizes
# and the epochs (of both data sets); --set passes a setting to every training run.
#
# Environment: DECONFOUND (the binary; default ../../deconfound), OUT_DIR (runs and
# results.csv; default runs/background), RANKS (MPI ranks; default: the cores). A run goes to
# OUT_DIR/<dataset>-<method>-s<seed>/ and is skipped when its result.csv exists, so an
# interrupted study continues. results.csv: dataset,method,original_acc,mixed_same_acc,
# mixed_rand_acc,only_bg_acc,bg_gap,dcor2_u -- means over the seeds run (accuracies in %;
# dcor2_u: bias-corrected dCor^2 between the bottleneck and the background class, one-hot,
# on the validation split at the end of training); results_by_seed.csv: every run, with the
# seed, and dCor^2 within each class.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/background}
RANKS=${RANKS:-$(nproc)}
datasets="mri video-0.9 video-0.99"
methods="baseline clad end mdn"
seeds="1 2 3"
quick=0 extra=() n_opt="" n_test_opt="" epochs_opt=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; seeds="1" ;;
        --datasets) datasets=$2; shift ;;
        --methods) methods=$2; shift ;;
        --seeds) seeds=$2; shift ;;
        --n) n_opt=$2; shift ;;
        --n-test) n_test_opt=$2; shift ;;
        --epochs) epochs_opt=$2; shift ;;
        --set) extra+=(--set "$2"); shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_choose method "baseline clad end mdn" $methods
study_choose dataset "mri video-0.9 video-0.99" $datasets
study_counts "--seeds, --n, --n-test, --epochs" $seeds $n_opt $n_test_opt $epochs_opt
mkdir -p "$OUT_DIR"
flags=$(study_mpirun_flags)
if [ $quick = 1 ]; then n=1024 n_test=400 mri_epochs=12 video_epochs=8
else n=2048 n_test=1000 mri_epochs=20 video_epochs=12; fi
n=${n_opt:-$n} n_test=${n_test_opt:-$n_test}
if [ -n "$epochs_opt" ]; then mri_epochs=$epochs_opt video_epochs=$epochs_opt; fi

# The experiment file of one method: the dataset's network plus the method's section; MDN's
# layer goes before the classifier ([linear] named fc), so it sees the bottleneck's output.
config() {
    local d=$1 m=$2 out=$3 base bias
    case $d in mri) base=$here/mri.ini bias=site ;; *) base=$here/../video.ini bias=background ;; esac
    case $m in
        baseline) cp "$base" "$out" ;;
        clad) { cat "$base"; printf '\n[debias]\nmethod = clad\nlayer = feat\nlambda = 1\ntemperature = 0.2\nqueue = 32\n'; } >"$out" ;;
        end) { cat "$base"; printf '\n[debias]\nmethod = end\nlayer = feat\nbias = %s\nalpha = 0.1\nbeta = 0.1\n' "$bias"; } >"$out" ;;
        mdn) awk -v bias="$bias" '$0 == "[linear]" { held = 1; next }
                 held && $0 == "name = fc" { print "[mdn]\nname = mdn\nremove = " bias "\nkeep = label\n" }
                 held { print "[linear]"; held = 0 } { print }' "$base" >"$out" ;;
    esac
}

# The data settings of a dataset at a seed: the generator's, for training (the config's
# [data]) and, as synth options, for the test set (seed + 1000: other subjects, same law).
data_sets() {
    local d=$1 s=$2
    case $d in
        mri) echo "--set data.n=$n --set data.seed=$s --set train.epochs=$mri_epochs" ;;
        video-*) echo "--set data.n=$n --set data.seed=$s --set data.rho=${d#video-} --set train.epochs=$video_epochs" ;;
    esac
}
test_set() {
    local d=$1 s=$2 dir=$3
    [ -s "$dir/shard-00000.h5" ] && return 0
    rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
    case $d in
        mri) "$DF" synth mri3d --out "$dir" --n "$n_test" --seed $((s + 1000)) --shape 32 --masks 1 --site_rho 0.9 \
                 --site_outside_only 1 --site_background 0.2 ;;
        video-*) "$DF" synth video --out "$dir" --n "$n_test" --seed $((s + 1000)) --rho "${d#video-}" ;;
    esac >/dev/null
}

variants="original mixed-same mixed-rand only-bg"
# One run: train, evaluate on the variants, write result.csv (a results_by_seed.csv line).
run_one() {
    local d=$1 m=$2 s=$3 dir=$4 tdir=$5 bias layer=feat
    case $d in mri) bias=site ;; *) bias=background ;; esac
    [ $m = mdn ] && layer=mdn
    mkdir -p "$dir"
    config "$d" "$m" "$dir/config.ini"
    # shellcheck disable=SC2046
    if ! mpirun $flags -np "$RANKS" "$DF" train "$dir/config.ini" $(data_sets "$d" "$s") --set train.seed="$s" \
         --set train.dcor_layer=$layer "${extra[@]}" --set train.out_dir="$dir" >"$dir/train.log" 2>&1; then
        echo "run.sh: $d $m seed $s failed; the end of $dir/train.log:" >&2
        tail -5 "$dir/train.log" >&2
        exit 1
    fi
    local accs=() v a
    for v in $variants; do
        if ! mpirun $flags -np "$RANKS" "$DF" eval "$dir/config.ini" --checkpoint "$dir/checkpoint.h5" --data "$tdir/$v.h5" \
             --features $layer --out "$dir/feat-$v.h5" --accuracy-by $bias >"$dir/eval-$v.log" 2>&1; then
            echo "run.sh: evaluating $d $m seed $s on $v failed:" >&2
            tail -3 "$dir/eval-$v.log" >&2
            exit 1
        fi
        a=$(awk '/^accuracy / { printf "%.2f", 100 * $2 }' "$dir/eval-$v.log")
        accs+=("$a")
        rm -f "$dir/feat-$v.h5"
    done
    local dcor by_class
    dcor=$(tail -1 "$dir/dcor.json" | grep -o "\"$bias\": {\"dcor2_u\": [-0-9.e+]*" | awk '{print $NF}')
    by_class=$(tail -1 "$dir/dcor.json" | grep -o "\"$bias\": {[^}]*}" | grep -o '"by_class": \[[^]]*\]' | tr -d '"by_clas:[] ' | tr ',' ' ')
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$d" "$m" "$s" "${accs[0]}" "${accs[1]}" "${accs[2]}" "${accs[3]}" \
        "$(awk -v a="${accs[1]}" -v b="${accs[2]}" 'BEGIN { printf "%.2f", a - b }')" "$dcor" "$by_class" | study_publish "$dir/result.csv"
}

cpu=$(study_cpu)
echo "background: datasets $datasets; methods $methods; seeds $seeds$([ $quick = 1 ] && echo ' (quick)'); $RANKS ranks; $cpu"
for s in $seeds; do
    for d in $datasets; do
        tdir="$OUT_DIR/test-$d-s$s"
        if [ ! -s "$tdir/only-bg.h5" ]; then
            test_set "$d" "$s" "$tdir/data"
            rm -f "$tdir"/{original,mixed-same,mixed-rand,only-bg}.h5
            "$DF" variants "$tdir/data/shard-00000.h5" --out "$tdir" --seed "$s" >/dev/null
        fi
        for m in $methods; do
            dir="$OUT_DIR/$d-$m-s$s"
            if [ -s "$dir/result.csv" ]; then echo "$d $m seed $s: done before ($dir/result.csv)"; continue; fi
            start=$(date +%s)
            run_one "$d" "$m" "$s" "$dir" "$tdir"
            echo "$d $m seed $s: $(cut -d, -f4-9 "$dir/result.csv") ($(( $(date +%s) - start )) s; $(grep -m1 '^blas:' "$dir/train.log"))"
        done
    done
done

# Every finished run (this invocation's and earlier ones'), then the means over seeds;
# each file written whole, atomically.
{
    echo "dataset,method,seed,original_acc,mixed_same_acc,mixed_rand_acc,only_bg_acc,bg_gap,dcor2_u,dcor2_u_by_class"
    for d in mri video-0.9 video-0.99; do
        for m in baseline clad end mdn; do
            for f in "$OUT_DIR/$d-$m"-s*/result.csv; do if [ -s "$f" ]; then cat "$f"; fi; done
        done
    done
} | study_publish "$OUT_DIR/results_by_seed.csv"
awk -F, 'NR == 1 { print "dataset,method,original_acc,mixed_same_acc,mixed_rand_acc,only_bg_acc,bg_gap,dcor2_u"; next }
         { k = $1 "," $2; if (!(k in n)) order[++K] = k; n[k]++; for (c = 4; c <= 9; c++) sum[k, c] += $c }
         END { for (i = 1; i <= K; i++) { k = order[i]; printf "%s", k
                   for (c = 4; c <= 8; c++) printf ",%.2f", sum[k, c] / n[k]; printf ",%.4f\n", sum[k, 9] / n[k] } }' \
    "$OUT_DIR/results_by_seed.csv" | study_publish "$OUT_DIR/results.csv"
echo
echo "$OUT_DIR/results.csv ($cpu; accuracies in % on the test variants, means over seeds $seeds):"
column -t -s, "$OUT_DIR/results.csv"
