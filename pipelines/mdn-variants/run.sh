#!/usr/bin/env bash
# run.sh -- the MDN kernels side by side (issue 14): how beta is estimated -- the dataset
# kernel (X^T X of the training set), the batch kernel (least squares on each global batch),
# R-MDN (recursive least squares) and PMDN (beta learned under a penalty) -- at global batch
# 16, 64 and 256, on 1 and 2 ranks, on the MDN paper's 2D set and on the 3D MRI cohort.
# README.md holds the measured table and says which kernel to use when.
#
#   pipelines/mdn-variants/run.sh [--quick] [--data "mdn2d mri3d"] [--kernels "dataset batch"]
#                                 [--batches "16 64"] [--ranks "1 2"] [--set section.key=value ...]
#
# Data and networks: mdn2d is ../mdn-synthetic.ini (MDN after conv1, conv2 and fc1, removing
# cf; 2000 training and 2000 validation images of 32x32, 60 epochs); mri3d is
# ../mdn-mri3d.ini (MDN after conv3 and fc1, removing age and site; 576 training and 192
# validation volumes of 32^3, 20 epochs). The kernel is set on every MDN layer; the rest of
# each file stays (Adam, its learning rate and schedule, seed 1).
#
# Full protocol (default): both data sets, the four kernels, global batch 16, 64 and 256,
# 1 and 2 ranks (48 runs, a few hours on 2 cores). --quick: the same grid with 10 epochs of
# mdn2d and 3 epochs of mri3d on 384 volumes (about 10 minutes).
#
# Environment: DECONFOUND (the binary; default ../../deconfound), OUT_DIR (runs and
# results.csv; default runs/mdn-variants). A rank count r runs r MPI ranks with
# max(1, cores / r) OpenBLAS threads each. A run goes to
# OUT_DIR/<data>-<kernel>-b<batch>-r<ranks>/ and is skipped when its result.csv exists.
# results.csv: data,kernel,batch,ranks,val_acc,dcor2_u_class0,dcor2_u_class1,dcor2_u_max --
# validation accuracy (%) at the end; bias-corrected dCor^2 of the fc1 features (after the
# ReLU) with the removed confounder within class 0 and class 1 at the end (mri3d: the larger
# of age's and site's); dcor2_u_max the largest per-class value over the reports of the
# second half of training.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
top=$(cd "$here/../.." && pwd)
DF=${DECONFOUND:-$top/deconfound}
OUT_DIR=${OUT_DIR:-runs/mdn-variants}
data="mdn2d mri3d" kernels="dataset batch recursive penalty" batches="16 64 256" ranks="1 2"
quick=0 extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 ;;
        --data) data=$2; shift ;;
        --kernels) kernels=$2; shift ;;
        --batches) batches=$2; shift ;;
        --ranks) ranks=$2; shift ;;
        --set) extra+=(--set "$2"); shift ;;
        -h|--help) study_help "$0"; exit 0 ;;
        *) study_fail "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
study_binary "$DF"
study_choose data "mdn2d mri3d" $data
study_choose kernel "dataset batch recursive penalty" $kernels
study_positive "--batches, --ranks" $batches $ranks
mkdir -p "$OUT_DIR"
flags=$(study_mpirun_flags)
cores=$(nproc)

# The config, MDN layers, confounders and settings of a data set.
config() { case $1 in mdn2d) echo "$here/../mdn-synthetic.ini" ;; mri3d) echo "$here/../mdn-mri3d.ini" ;; esac; }
layers() { case $1 in mdn2d) echo "mdn1 mdn2 mdn3" ;; mri3d) echo "mdn_conv3 mdn_fc1" ;; esac; }
columns() { case $1 in mdn2d) echo "cf" ;; mri3d) echo "age site" ;; esac; }
sizes() {
    [ $quick = 1 ] || return 0
    case $1 in mdn2d) echo "--set train.epochs=10" ;; mri3d) echo "--set train.epochs=3 --set data.n=384" ;; esac
}

run_one() {
    local d=$1 k=$2 b=$3 r=$4 dir=$5 l sets=() epochs
    for l in $(layers "$d"); do sets+=(--set "$l.kernel=$k"); done
    mkdir -p "$dir"
    # shellcheck disable=SC2046
    if ! mpirun $flags -np "$r" "$DF" train "$(config "$d")" "${sets[@]}" --set train.batch="$b" $(sizes "$d") \
         --set train.dcor_every=2 --set train.dcor_columns="$(columns "$d" | tr ' ' ,)" "${extra[@]}" \
         --threads $(( cores / r > 0 ? cores / r : 1 )) --set train.out_dir="$dir" >"$dir/train.log" 2>&1; then
        echo "run.sh: $d $k batch $b on $r rank(s) failed; the end of $dir/train.log:" >&2
        tail -5 "$dir/train.log" >&2
        exit 1
    fi
    epochs=$(grep -c '"epoch": ' "$dir/metrics.json")
    local acc dcor
    acc=$(grep '"epoch": ' "$dir/metrics.json" | tail -1 | grep -o '"val_acc": [-0-9.e]*' | awk '{ printf "%.2f", 100 * $2 }')
    # per class, the largest over the data set's confounders; at the end, and the max over
    # the reports after half the epochs
    dcor=$(awk -v half="$((epochs / 2))" -v cols="$(columns "$d")" 'BEGIN { n = split(cols, col, " ") } {
            e = $0; sub(/.*"epoch": /, "", e); e += 0
            for (c = 0; c < 2; c++) cls[c] = -1e9
            for (i = 1; i <= n; i++) {
                t = $0; sub(".*\"" col[i] "\": {[^}]*\"by_class\": \\[", "", t); sub(/\].*/, "", t)
                split(t, v, ", *"); for (c = 0; c < 2; c++) if (v[c + 1] + 0 > cls[c]) cls[c] = v[c + 1] + 0 }
            last0 = cls[0]; last1 = cls[1]
            if (e > half) for (c = 0; c < 2; c++) if (!seen || cls[c] > max) { max = cls[c]; seen = 1 } }
            END { printf "%.4f,%.4f,%.4f", last0, last1, max }' "$dir/dcor.json")
    printf '%s,%s,%s,%s,%s,%s\n' "$d" "$k" "$b" "$r" "$acc" "$dcor" | study_publish "$dir/result.csv"
}

cpu=$(study_cpu)
echo "mdn-variants: data $data; kernels $kernels; global batch $batches; ranks $ranks$([ $quick = 1 ] && echo ' (quick)'); $cpu"
for d in $data; do
    for k in $kernels; do
        for b in $batches; do
            for r in $ranks; do
                dir="$OUT_DIR/$d-$k-b$b-r$r"
                if [ -s "$dir/result.csv" ]; then echo "$d $k batch $b ranks $r: done before"; continue; fi
                start=$(date +%s)
                run_one "$d" "$k" "$b" "$r" "$dir"
                echo "$d $k batch $b ranks $r: $(cut -d, -f5- "$dir/result.csv") ($(( $(date +%s) - start )) s; $(grep -m1 '^blas:' "$dir/train.log"))"
            done
        done
    done
done

# Every finished run, this invocation's and earlier ones', written whole and atomically.
{
    echo "data,kernel,batch,ranks,val_acc,dcor2_u_class0,dcor2_u_class1,dcor2_u_max"
    for d in mdn2d mri3d; do
        for k in dataset batch recursive penalty; do
            for f in "$OUT_DIR/$d-$k"-b*-r*/result.csv; do if [ -s "$f" ]; then cat "$f"; fi; done
        done
    done | sort -t, -k1,1 -k2,2 -s -k3,3n -k4,4n
} | study_publish "$OUT_DIR/results.csv"
echo
echo "$OUT_DIR/results.csv ($cpu):"
column -t -s, "$OUT_DIR/results.csv"
