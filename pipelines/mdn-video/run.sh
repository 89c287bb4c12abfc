#!/usr/bin/env bash
# run.sh -- MDN on video clips (issue 14): the built-in clips of ../video.ini (an object whose
# shape is the class, moving over a scene), with the confounder either the scene class
# (categorical, a shortcut at rho 0.9) or the clip's brightness (continuous, tied to the
# class; the scene then independent of it), regressed out of the features by MDN after the
# pooled features or after every convolution. README.md holds the measured table.
#
#   pipelines/mdn-video/run.sh [--quick] [--data "scene brightness"] [--methods "baseline mdn-feat"]
#                              [--seeds "1 2 3"] [--epochs N] [--set section.key=value ...]
#
# Data (1024 clips of 3x8x32x32, 768 for training, 256 for validation, 4 classes):
#   scene        rho 0.9: the scene is the class's own in 90 % of the clips; removed column
#                `background` (3 dummies)
#   brightness   rho 0.25 (the scene independent of the class) and brightness 0.4: each clip
#                times 1 + g, g = 0.4 (2y/3 - 1 + N(0,1)/2); removed column `brightness`
# Methods:
#   baseline     ../video.ini, no MDN
#   mdn-feat     feat.ini: MDN after the pooled features (64 per clip), dataset kernel
#   mdn-every    every.ini: MDN after conv1, conv2 and conv3 (one beta per channel) and after
#                the pooled features, batch kernel, evaluation beta refitted each epoch --
#                the placement ../mdn-placement found to work after convolutions
# Every run: 2 ranks (RANKS), global batch 32, Adam 2e-3 cosine, the label kept in MDN's design.
#
# Full protocol (default): both data sets, the three methods, seeds 1 2 3 (the training seed;
# the clips are the same), 12 epochs (about 20 minutes on 2 cores). --quick: seed 1, 6
# epochs (about 4 minutes).
#
# Environment: DECONFOUND (the binary; default ../../deconfound), OUT_DIR (runs and
# results.csv; default runs/mdn-video), RANKS (MPI ranks; default: the cores). A run goes to
# OUT_DIR/<data>-<method>-s<seed>/ and is not trained again once its result.csv exists.
# results.csv: data,method,val_acc,val_acc_conflicting,dcor2_u_all,dcor2_u_class_mean,
# dcor2_u_class_max,dcor2_u_max,seeds -- means over the seeds: validation accuracy (%) at the
# end and on the clips whose scene is not their class's (scene data; NA for brightness);
# bias-corrected dCor^2 of the features the classifier sees (feat, or MDN's output) with the
# removed column (one-hot for the scene) on the validation split at the end, over all clips,
# and within each class: the classes' mean and largest; dcor2_u_max the largest per-class
# value over the reports of the second half of training. results_by_seed.csv: every run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/mdn-video}
RANKS=${RANKS:-$(nproc)}
all_data="scene brightness" all_methods="baseline mdn-feat mdn-every"
data=$all_data methods=$all_methods seeds="1 2 3" epochs=12 extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) seeds="1" epochs=6 ;;
        --data) data=$2; shift ;;
        --methods) methods=$2; shift ;;
        --seeds) seeds=$2; shift ;;
        --epochs) epochs=$2; shift ;;
        --set) extra+=(--set "$2"); shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_choose data "$all_data" $data
study_choose method "$all_methods" $methods
study_counts "--seeds, --epochs" $seeds $epochs
mkdir -p "$OUT_DIR"
flags=$(study_mpirun_flags)

column_of() { [ "$1" = scene ] && echo background || echo brightness; }

# The config and --set arguments of a (data, method) pair.
config() { case $1 in baseline) echo "$here/../video.ini" ;; mdn-feat) echo "$here/feat.ini" ;; *) echo "$here/every.ini" ;; esac; }
settings() {
    local d=$1 m=$2 col l
    col=$(column_of "$d")
    if [ "$d" = scene ]; then echo "--set data.rho=0.9"; else echo "--set data.rho=0.25 --set data.brightness=0.4"; fi
    case $m in
        baseline) echo "--set train.dcor_layer=feat" ;;
        mdn-feat) echo "--set mdn_feat.remove=$col" ;;
        mdn-every)
            for l in mdn_conv1 mdn_conv2 mdn_conv3 mdn_feat; do
                echo "--set $l.remove=$col --set $l.kernel=batch --set $l.eval_beta=epoch"
            done ;;
    esac
}

run_one() {
    local d=$1 m=$2 s=$3 dir=$4
    mkdir -p "$dir"
    # shellcheck disable=SC2046
    if ! mpirun $flags -np "$RANKS" "$DF" train "$(config "$m")" $(settings "$d" "$m") --set train.seed="$s" \
         --set train.epochs="$epochs" --set train.dcor_every=2 --set train.dcor_columns="$(column_of "$d")" \
         --set train.checkpoint_every=0 --set train.log_every=100 "${extra[@]}" --set train.out_dir="$dir" >"$dir/train.log" 2>&1; then
        echo "run.sh: $d $m seed $s failed; the end of $dir/train.log:" >&2
        tail -5 "$dir/train.log" >&2
        exit 1
    fi
    local last acc conf dcor
    last=$(grep '"epoch": ' "$dir/metrics.json" | tail -1)
    acc=$(echo "$last" | grep -o '"val_acc": [-0-9.e]*' | awk '{ printf "%.2f", 100 * $2 }')
    conf=NA
    [ "$d" = scene ] && conf=$(echo "$last" | grep -o '"val_acc_conflicting": [-0-9.e]*' | awk '{ printf "%.2f", 100 * $2 }')
    # at the end: all clips, the classes' mean and largest; the largest per-class value over
    # the reports after half the epochs
    dcor=$(awk -v half="$((epochs / 2))" '{
            e = $0; sub(/.*"epoch": /, "", e); e += 0
            a = $0; sub(/.*"dcor2_u": /, "", a); all = a + 0
            t = $0; sub(/.*"by_class": \[/, "", t); sub(/\].*/, "", t)
            n = split(t, v, ", *"); sum = 0; top = -1e9
            for (c = 1; c <= n; c++) { sum += v[c]; if (v[c] + 0 > top) top = v[c] + 0 }
            mean = sum / n
            if (e > half && (!seen || top > max)) { max = top; seen = 1 } }
            END { printf "%.4f,%.4f,%.4f,%.4f", all, mean, top, max }' "$dir/dcor.json")
    printf '%s,%s,%s,%s,%s,%s\n' "$d" "$m" "$s" "$acc" "$conf" "$dcor" | study_publish "$dir/result.csv"
}

cpu=$(study_cpu)
echo "mdn-video: data $data; methods $methods; seeds $seeds; $epochs epochs; $RANKS ranks; $cpu"
for s in $seeds; do
    for d in $data; do
        for m in $methods; do
            dir="$OUT_DIR/$d-$m-s$s"
            if [ -s "$dir/result.csv" ]; then echo "$d $m seed $s: done before"; continue; fi
            start=$(date +%s)
            run_one "$d" "$m" "$s" "$dir"
            echo "$d $m seed $s: $(cut -d, -f4- "$dir/result.csv") ($(( $(date +%s) - start )) s; $(grep -m1 '^blas:' "$dir/train.log"))"
        done
    done
done

# Every finished run, then the means over seeds; each file written whole, atomically.
cols="val_acc,val_acc_conflicting,dcor2_u_all,dcor2_u_class_mean,dcor2_u_class_max,dcor2_u_max"
{
    echo "data,method,seed,$cols"
    for d in $all_data; do
        for m in $all_methods; do
            for f in "$OUT_DIR/$d-$m"-s[0-9]*/result.csv; do if [ -s "$f" ]; then cat "$f"; fi; done
        done
    done
} | study_publish "$OUT_DIR/results_by_seed.csv"
awk -F, -v cols="$cols" 'NR == 1 { print "data,method," cols ",seeds"; next }
         { k = $1 "," $2; if (!(k in n)) order[++K] = k; n[k]++; for (c = 4; c <= 9; c++) sum[k, c] += $c; if ($5 == "NA") na[k] = 1 }
         END { for (i = 1; i <= K; i++) { k = order[i]; printf "%s", k
                   for (c = 4; c <= 9; c++) if (c == 5 && na[k]) printf ",NA"; else printf (c <= 5 ? ",%.2f" : ",%.4f"), sum[k, c] / n[k]
                   print "," n[k] } }' \
    "$OUT_DIR/results_by_seed.csv" | study_publish "$OUT_DIR/results.csv"
echo
echo "$OUT_DIR/results.csv ($cpu; means over the seeds run):"
column -t -s, "$OUT_DIR/results.csv"
